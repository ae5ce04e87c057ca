"""The integration milestone: the student's pieces plugged into the real TinyGPT must train like the library's.

Two identical small TinyGPTs (same seed, same weights) train on the same
Shakespeare windows for the same number of steps: one as the library builds
it, one with the student's pieces plugged in (``plug``), with the student's loss
(``loss_fn``) or trained by the student's step (``make_step``). The losses must
agree: before any update (the forward pass) to float32 rounding, and at the end
within ``tolerance``. Where the student's code computes gradients, one float64
backward pass through both models comes first (``compare_gradients``): AdamW
divides every gradient by its own running RMS, so a training run cannot see a
gradient that is wrong by a factor.

An exercise author only says what to plug in:

    @EXERCISE.check("trains a TinyGPT like the library's LayerNorm", kind="milestone")
    def milestone(student):
        op = graph_op(student, "layer_norm_forward", "layer_norm_backward")
        return train_and_compare(plug=lambda model: replace_modules(model, LayerNorm, ...))

Student functions that work on raw arrays join the autograd graph through
``graph_op``: the house convention is ``forward(*inputs, **options) -> (out,
cache)`` and ``backward(grad_out, cache) -> (one gradient per input)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tinygpt import backend
from tinygpt.course.checks import compare, expect_array, expect_tuple
from tinygpt.course.errors import CheckFailed
from tinygpt.course.student import Student
from tinygpt.data import load_corpus, sample_windows, token_array
from tinygpt.errors import TinyGPTError
from tinygpt.layers import Module
from tinygpt.losses import LanguageModelLoss
from tinygpt.models import GPTConfig, TinyGPT
from tinygpt.optim import AdamW, clip_scale
from tinygpt.tensor import Tensor
from tinygpt.tokenizers import CharTokenizer

Array = Any
StepFn = Callable[[Any], float]  # one training step on ids (B, T); returns the loss before the update
LossFn = Callable[[Tensor, Any], Tensor]  # logits (B, T, V), ids (B, T) -> the mean next-token loss


@dataclass(frozen=True)
class Milestone:
    """The run both models make: a tiny TinyGPT, a fixed seed, a fixed number of AdamW steps."""

    steps: int = 150
    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 32
    block_size: int = 32
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    characters: int = 200_000  # the start of the corpus: enough text for 60 steps, quick to encode
    tolerance: float = 0.02  # on the mean loss of the last ``window`` steps, in nats
    window: int = 10


def corpus_ids(settings: Milestone) -> tuple[CharTokenizer, Array]:
    """The default corpus (Shakespeare, ``tinygpt.data.load_corpus``), cut and tokenized."""
    try:
        text = load_corpus("shakespeare")[: settings.characters]
    except TinyGPTError as exc:
        raise CheckFailed(f"the milestone trains on Shakespeare, which is missing: {exc}") from None
    tokenizer = CharTokenizer.from_text(text)
    return tokenizer, token_array(tokenizer.encode(text))


def new_model(vocab_size: int, settings: Milestone) -> TinyGPT:
    """The tiny TinyGPT of the milestone, initialised from ``settings.seed`` (the same weights every time)."""
    config = GPTConfig(
        vocab_size=vocab_size,
        block_size=settings.block_size,
        n_layer=settings.n_layer,
        n_head=settings.n_head,
        n_embd=settings.n_embd,
    )
    return TinyGPT(config, rng=backend.Generator(settings.seed))


def library_step(model: TinyGPT, settings: Milestone, loss_fn: LossFn | None = None) -> StepFn:
    """The library's training step: forward, next-token loss, backward, global-norm clipping, AdamW.

    ``loss_fn(logits, ids)`` replaces ``LanguageModelLoss`` (the lm_loss exercise plugs the student's in).
    """
    optimizer = AdamW(
        model.decay_groups(settings.weight_decay), lr=settings.lr, weight_decay=settings.weight_decay
    )
    loss_fn = loss_fn or LanguageModelLoss()

    def step(ids: Array) -> float:
        optimizer.zero_grad()
        loss = loss_fn(model(ids), ids)
        loss.backward()
        _, scale = clip_scale(optimizer.parameters, settings.grad_clip)
        optimizer.step(grad_scale=scale)
        return float(loss.item())

    return step


def train(step: StepFn, ids: Array, settings: Milestone) -> list[float]:
    """``settings.steps`` losses of ``step`` on seeded random windows (the same windows for every model)."""
    rng = backend.Generator(settings.seed + 1)
    losses = []
    for i in range(settings.steps):
        loss = step(sample_windows(ids, settings.block_size, settings.batch_size, rng))
        if not math.isfinite(loss):
            raise CheckFailed(
                f"the training loss became {loss} at step {i} of {settings.steps}",
                "a NaN or inf reached the loss: look for a division by a value that can be 0, a log of 0, "
                "or an exp of a large number",
            )
        losses.append(loss)
    return losses


def train_and_compare(
    plug: Callable[[TinyGPT], Any] | None = None,
    make_step: Callable[[TinyGPT, Milestone], StepFn] | None = None,
    loss_fn: LossFn | None = None,
    settings: Milestone = Milestone(),
    what: str = "your pieces",
) -> str:
    """Train the library's TinyGPT and one with the student's pieces; fail unless the losses agree.

    ``plug(model)`` substitutes the student's modules or functions into the
    model (see ``replace_modules``); ``loss_fn(logits, ids)`` the student's loss;
    ``make_step(model, settings)`` returns the student's training step (default:
    ``library_step``). When the student's code is in the model's forward and
    backward (``plug`` or ``loss_fn``), ``compare_gradients`` runs first: the
    training run cannot see a gradient's scale. Returns a one-line summary for
    the check's report.
    """
    notes = []
    if plug is not None or loss_fn is not None:
        notes.append(compare_gradients(plug, settings, what, loss_fn=loss_fn))
    tokenizer, ids = corpus_ids(settings)
    reference = new_model(tokenizer.vocab_size, settings)
    want = train(library_step(reference, settings), ids, settings)
    model = new_model(tokenizer.vocab_size, settings)
    if plug is not None:
        plug(model)
    got = train(
        make_step(model, settings) if make_step else library_step(model, settings, loss_fn), ids, settings
    )
    if abs(got[0] - want[0]) > 1e-3 * max(1.0, abs(want[0])):
        raise CheckFailed(
            f"before any training step, TinyGPT with {what} has loss {got[0]:.5f}; with the library's it has "
            f"{want[0]:.5f}",
            "the forward pass differs once it runs inside the model: check shapes other than the checks' own, "
            "e.g. (B, T, C) inputs with B, T > 1",
        )
    k = min(settings.window, settings.steps)
    mean_got, mean_want = sum(got[-k:]) / k, sum(want[-k:]) / k
    if abs(mean_got - mean_want) > settings.tolerance:
        first = next(
            (i for i, (a, b) in enumerate(zip(got, want, strict=True)) if abs(a - b) > settings.tolerance), 0
        )
        raise CheckFailed(
            f"after {settings.steps} training steps on Shakespeare, TinyGPT with {what} reaches loss "
            f"{mean_got:.4f} (mean of the last {k} steps); with the library's it reaches {mean_want:.4f} "
            f"(tolerance {settings.tolerance}); the losses first differ by more than that at step {first}",
            "the forward pass agrees but training does not: the gradients your pieces send back are wrong "
            "inside the model (check the backward on (B, T, C) inputs)",
        )
    notes.append(
        f"after {settings.steps} steps on Shakespeare: loss {mean_got:.4f}, the library's {mean_want:.4f} "
        f"(tolerance {settings.tolerance})"
    )
    return "; ".join(notes)


def compare_gradients(
    plug: Callable[[TinyGPT], Any] | None = None,
    settings: Milestone = Milestone(),
    what: str = "your pieces",
    rtol: float = 1e-6,
    atol: float = 1e-9,
    loss_fn: LossFn | None = None,
) -> str:
    """One forward and backward pass through the milestone's TinyGPT in float64: with the student's pieces
    plugged in (``plug``, and/or the student's ``loss_fn`` in place of ``LanguageModelLoss``), every
    parameter's gradient must equal the library model's.

    Sharper than the training run, which cannot see a gradient's scale (AdamW
    divides each gradient by its own running RMS) and whose loss a wrong
    gradient in one layer may barely move: a backward that is right alone but
    wrong inside a model (state kept in a global, one layer's cache read by
    another) is named here, by the first parameter whose gradient differs,
    counting back from the loss.
    """
    tokenizer, ids = corpus_ids(settings)
    with backend.default_float("float64"):
        reference = new_model(tokenizer.vocab_size, settings)
        model = new_model(tokenizer.vocab_size, settings)
        if plug is not None:
            plug(model)
        batch = sample_windows(
            ids, settings.block_size, settings.batch_size, backend.Generator(settings.seed + 1)
        )
        for m, loss in ((reference, LanguageModelLoss()), (model, loss_fn or LanguageModelLoss())):
            m.zero_grad()
            loss(m(batch), batch).backward()
        got, expected = dict(model.named_parameters()), dict(reference.named_parameters())
        names = list(expected)
        for name in reversed(names):  # from the loss back: the first wrong gradient the backward pass made
            want, param = expected[name].grad_data, got.get(name)
            if param is None or want is None:
                raise RuntimeError(f"parameter {name} is missing after plugging: a bug in the exercise")
            if param.grad_data is None:
                raise CheckFailed(
                    f"after one backward pass through TinyGPT with {what}, {name} got no gradient",
                    "no gradient flowed back through your pieces to this parameter",
                )
            compare(
                param.grad_data,
                want,
                f"after one backward pass through TinyGPT with {what} (float64), the gradient of {name} "
                "(the first wrong one, counting back from the loss)",
                rtol=rtol,
                atol=atol,
                hint="every check of your backward passed alone, but inside the model it differs: look for state "
                "kept between calls (a global cache, one layer's cache read by another: in a model every layer "
                "runs forward before any runs backward), or for code that depends on the shape (the model's "
                f"batch is (B, T) = ({settings.batch_size}, {settings.block_size}))",
            )
    return f"one backward pass in float64: the gradients of all {len(names)} parameters agree"


# Plugging the student's code in --------------------------------------------------------------------
def graph_op(student: Student, forward: str, backward: str) -> Callable[..., Tensor]:
    """The student's raw-array ``forward``/``backward`` pair as one autograd operation on Tensors.

    ``op(*inputs, **options)`` calls ``forward(*arrays, **options) -> (out, cache)``,
    each Tensor input as its array and anything else (integer token ids) as it
    is; when gradients flow back, ``backward(grad_out, cache)`` must return a
    tuple with one gradient per Tensor input, each of that input's shape and dtype.
    """

    def apply(*inputs: Any, **options: Any) -> Tensor:
        tensors = tuple(x for x in inputs if isinstance(x, Tensor))
        out, cache = expect_tuple(
            student.call(forward, *[x.data if isinstance(x, Tensor) else x for x in inputs], **options),
            2,
            forward,
            "a pair (out, cache)",
            "return the output and whatever your backward needs, as a pair",
        )
        expect_array(out, f"the output of {forward} inside the model")

        def grads(g: Array) -> Sequence[Array]:
            result = expect_tuple(
                student.call(backward, g, cache),
                len(tensors),
                backward,
                f"a tuple of {len(tensors)} gradient(s), one per float input of {forward}",
                "mind the comma of a one-element tuple: (grad,)",
            )
            for i, (grad, x) in enumerate(zip(result, tensors, strict=True)):
                expect_array(
                    grad, f"gradient {i} of {backward} inside the model", shape=x.shape, dtype=x.dtype
                )
            return list(result)

        return Tensor.from_op(out, tensors, grads)

    apply.__name__ = forward
    return apply


def replace_modules(model: Module, kind: type[Module], make: Callable[[Any], Module]) -> int:
    """Replace every ``kind`` module inside ``model`` by ``make(old)``; returns how many were replaced.

    ``make`` should hand the old module's Parameters to the new one, so the
    optimizer trains the same tensors (the new module lists them as attributes).
    """
    count = 0
    for module in list(model.modules()):
        for name, value in list(vars(module).items()):
            if isinstance(value, kind):
                setattr(module, name, make(value))
                count += 1
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, kind):
                        value[i] = make(item)
                        count += 1
    if not count:
        raise RuntimeError(
            f"the model has no {kind.__name__} to replace"
        )  # a bug in the exercise, not the student's
    return count
