"""Exercise: the TinyGPT forward pass (token and position embeddings, the blocks, ln_f, the tied head).

The reference is ``tinygpt.TinyGPT`` with learned positions: the student's
``GPTModel`` has its parameter names, gets the same weights, and must give the
same logits and the same gradients (the token table's gradient sums the head's
and the lookup's). Known wrong assemblies (no positions, positions from 1, no
final norm, blocks reversed or only one of them ...) are recomputed from the
reference's own parts and named when the student's logits match one.
"""

from __future__ import annotations

from typing import Any

from tinygpt import backend
from tinygpt import functional as F
from tinygpt.course import checks as C
from tinygpt.course.errors import CheckFailed
from tinygpt.course.exercise import Exercise
from tinygpt.course.milestone import train_and_compare
from tinygpt.course.student import Student
from tinygpt.layers import Module, Parameter
from tinygpt.models import GPTConfig, TinyGPT
from tinygpt.tensor import Tensor, no_grad

EXERCISE = Exercise(
    name="gpt_model",
    title="The TinyGPT forward pass",
    teaches="token and learned position embeddings, stacking blocks, the final norm, a head tied to the embedding",
    minutes=35,
)

Array = Any
B, T = 2, 6  # the checks' batch (JAX compiles each new shape: most checks share these)
CONFIG = {"vocab_size": 11, "block_size": 8, "n_layer": 2, "n_head": 2, "n_embd": 16}
ABSENT = CONFIG["vocab_size"] - 1  # the checks' ids never contain this token

NAMES_HINT = (
    "name the parts as TinyGPT does: wte, wpe, blocks (a list of TransformerBlock) and ln_f "
    "(the grader copies weights by name)"
)
TIED = (
    "the head is tied: logits = x @ self.wte.weight.T reads the token table itself; TinyGPT has no "
    "separate head weight"
)
PIPELINE = (
    "the shapes along the way: ids (B, T) -> self.wte(ids) (B, T, C) -> + self.wpe(0..T-1) (T, C) -> "
    "the blocks, in order -> self.ln_f (B, T, C) -> x @ self.wte.weight.T: (B, T, C) @ (C, V) -> (B, T, V)"
)
GRAPH = (
    "build the logits from Tensors only: .data, backend arrays or a new Tensor(...) cut the autograd "
    "graph, and the gradient stops there"
)
NO_POSITIONS = "add the position vectors: x = self.wte(ids) + self.wpe(positions), positions 0 .. T-1"
POSITIONS_FROM_1 = "positions start at 0: xp.arange(T), not 1 .. T"
POSITIONS_FROM_WTE = "position vectors come from their own table: self.wpe(positions), not self.wte"
NO_LN_F = "apply the final layer norm after the last block: x = self.ln_f(x), then the head"
LN_F_FIRST = "the final layer norm comes after the blocks, right before the head"
REVERSED = "apply the blocks in order: for block in self.blocks: x = block(x)"
FIRST_ONLY = "apply every block, each to the previous one's output: for block in self.blocks: x = block(x)"
LAST_ONLY = (
    "feed each block the previous block's output: x = block(x) inside the loop (only the last block's "
    "output reaches the head)"
)
EMBEDDING_ONLY = (
    "the head's gradient does not reach wte: use the Parameter itself, x @ self.wte.weight.T, "
    "not a copy of its data"
)
HEAD_ONLY = "the lookup's gradient does not reach wte: embed with self.wte(ids), the table Parameter itself"


# Building, loading, calling ------------------------------------------------------------------
def _config(**changes: Any) -> GPTConfig:
    return GPTConfig(**{**CONFIG, **changes})


def _ids(shape: tuple[int, int], seed: int) -> Array:
    """Token ids of ``shape``, all below ABSENT (so that token never occurs)."""
    return backend.Generator(seed).integers(0, ABSENT, shape)


def _same_parameters(student: Student, model: Module, reference: TinyGPT) -> None:
    """The student's model has exactly TinyGPT's parameter names and shapes."""

    def hint(missing: list[str], unexpected: list[str]) -> str:
        if any(not n.startswith(("wte.", "wpe.", "blocks.", "ln_f.")) for n in unexpected):
            return TIED
        if any(n.startswith("blocks.") for n in missing) and not any(
            n.startswith("blocks.") for n in unexpected
        ):
            return (
                f"the model has n_layer = {reference.config.n_layer} blocks, each its own: self.blocks = "
                "[TransformerBlock(c.n_embd, c.n_head, rng=rng) for _ in range(c.n_layer)]"
            )
        return NAMES_HINT

    C.expect_parameters(
        student,
        model,
        reference,
        "GPTModel",
        hint=hint,
        shape_hint=lambda name: (
            "wpe is a table of block_size position vectors: Embedding(c.block_size, c.n_embd)"
            if name.startswith("wpe.")
            else NAMES_HINT
        ),
    )


def _pair(student: Student, seed: int, **changes: Any) -> tuple[Module, TinyGPT]:
    """The student's model and TinyGPT with the same random weights (the current float dtype)."""
    config = _config(**changes)
    reference = TinyGPT(config, rng=backend.Generator(seed))
    model = C.make_module(student, "GPTModel", config)
    _same_parameters(student, model, reference)
    state = C.random_state(reference, seed)
    C.load_state(reference, state)
    C.load_state(model, state)
    return model, reference


def _forward(student: Student, model: Module, ids: Array, hint: str = PIPELINE) -> Tensor:
    try:
        out = student.invoke("GPTModel.forward", model, ids)
    except CheckFailed as exc:
        if " raised " in exc.message:  # the student's code crashed: a shape on the way is wrong
            exc.hint = hint
        raise
    C.expect(
        isinstance(out, Tensor),
        f"GPTModel.forward should return the logits as a Tensor, got {type(out).__name__}",
        "return x @ self.wte.weight.T: a Tensor, so that gradients flow back. " + GRAPH,
    )
    return out


def _assemblies(ref: TinyGPT, ids: Array) -> dict[str, Array]:
    """What each known wrong assembly of the model outputs for ids, from the reference's own parts."""
    b = backend.current()
    t = ids.shape[1]
    table = ref.wpe.weight
    tok = ref.wte(ids)

    def run(x: Tensor, blocks: list[Any]) -> Tensor:
        for block in blocks:
            x = block(x)
        return x

    def head(x: Tensor) -> Array:
        return (x @ ref.wte.weight.T).data

    with no_grad():
        x = tok + table[0:t]
        wrong = {
            NO_POSITIONS: head(ref.ln_f(run(tok, ref.blocks))),
            POSITIONS_FROM_WTE: head(ref.ln_f(run(tok + ref.wte.weight[0:t], ref.blocks))),
            NO_LN_F: head(run(x, ref.blocks)),
            LN_F_FIRST: head(run(ref.ln_f(x), ref.blocks)),
            REVERSED: head(ref.ln_f(run(x, ref.blocks[::-1]))),
            FIRST_ONLY: head(ref.ln_f(run(x, ref.blocks[:1]))),
            LAST_ONLY: head(ref.ln_f(run(x, ref.blocks[-1:]))),
        }
        if t < ref.config.block_size:
            ones = b.xp.arange(1, t + 1, dtype=b.int_dtype, device=b.device)
            wrong[POSITIONS_FROM_1] = head(ref.ln_f(run(tok + F.embedding(ones, table), ref.blocks)))
    return wrong


def _logits_match(student: Student, model: Module, reference: TinyGPT, ids: Array, what: str) -> None:
    with no_grad():
        want = reference(ids).data
        got = _forward(student, model, ids).data
    C.compare(
        got,
        want,
        what,
        mistakes=lambda: _assemblies(reference, ids),
        rtol=1e-7,
        atol=1e-9,
        hint="self.wte(ids) + self.wpe(0..T-1), every block in order, self.ln_f, then x @ self.wte.weight.T "
        "(the table itself, read at every call)",
    )


def _path_gradients(ref: TinyGPT, ids: Array, g: Array) -> dict[str, Array]:
    """wte's gradient with only the lookup's contribution, and with only the head's."""
    t = ids.shape[1]
    out = {}
    for hint, lookup_detached in ((EMBEDDING_ONLY, False), (HEAD_ONLY, True)):
        ref.zero_grad()
        table = ref.wte.weight
        frozen = Tensor.wrap(table.data)
        x = F.embedding(ids, frozen if lookup_detached else table) + ref.wpe.weight[0:t]
        for block in ref.blocks:
            x = block(x)
        logits = ref.ln_f(x) @ (table if lookup_detached else frozen).T
        logits.backward(g)
        out[hint] = table.grad_data
    ref.zero_grad()
    return out


# The checks -------------------------------------------------------------------------------------
@EXERCISE.check(
    "GPTModel has TinyGPT's parameter names and shapes (no head weight); logits (B, T, V)", kind="shape"
)
def shapes(student: Student) -> None:
    config = _config()
    model = C.make_module(student, "GPTModel", config)
    _same_parameters(student, model, TinyGPT(config, rng=backend.Generator(0)))
    out = _forward(student, model, _ids((B, T), seed=1))
    C.expect_array(
        out.data,
        f"GPTModel(vocab_size=11, n_embd=16)(ids ({B}, {T})) logits",
        shape=(B, T, 11),
        dtype=backend.current().float_dtype,
        hint=PIPELINE,
    )


@EXERCISE.check("GPTModel's logits match TinyGPT's with the same weights (float64)")
def values(student: Student) -> None:
    with C.float64():
        model, reference = _pair(student, seed=10)
        _logits_match(student, model, reference, _ids((B, T), seed=11), f"logits for ids ({B}, {T})")


@EXERCISE.check("GPTModel edge cases: T = 1; T = block_size; one sequence", kind="edge")
def edge_cases(student: Student) -> None:
    block = CONFIG["block_size"]
    with C.float64():
        model, reference = _pair(student, seed=20)
        _logits_match(student, model, reference, _ids((B, 1), seed=21), f"logits for ids ({B}, 1)")
        ids = _ids((1, block), seed=22)
        with no_grad():
            want = reference(ids).data
            got = _forward(
                student,
                model,
                ids,
                hint=f"a prompt of exactly block_size = {block} tokens fits: positions 0 .. {block - 1} "
                f"(xp.arange(T)); refuse only T > block_size",
            ).data
        C.compare(
            got,
            want,
            f"logits for one sequence of block_size = {block} tokens",
            mistakes=lambda: _assemblies(reference, ids),
            rtol=1e-7,
            atol=1e-9,
        )


@EXERCISE.check("GPTModel refuses a prompt longer than block_size with a ValueError", kind="edge")
def too_long(student: Student) -> None:
    block = CONFIG["block_size"]
    model = C.make_module(student, "GPTModel", _config())
    ids = _ids((1, block + 1), seed=30)
    refuse = (
        "check first: if T > self.config.block_size: raise ValueError(f'{T} tokens exceed "
        "block_size={self.config.block_size}; crop the prompt to its last block_size tokens')"
    )
    label = f"GPTModel.forward(ids (1, {block + 1}))"
    exc = C.expect_raises(
        student,
        label,
        model,
        ids,
        why=f"block_size is {block}: there is no position vector for {block + 1} tokens",
        hint=refuse,
    )
    C.expect(
        "block" in str(exc).lower(),
        f"{label} raised ValueError({str(exc)[:160]!r}), which does not name block_size",
        refuse,
    )


@EXERCISE.check("GPTModel is causal, and its head reads the token table (tied weights)", kind="property")
def properties(student: Student) -> None:
    with C.float64():
        model, reference = _pair(student, seed=40)
        ids = _ids((B, T), seed=41)
        with no_grad():
            C.check_causal(
                lambda a: _forward(student, model, a).data,
                ids,
                "GPTModel",
                hint="only the blocks' causal attention may mix positions: everything else works per position",
            )
            before = C.host(_forward(student, model, ids).data)
            state = reference.state_dict()
            state["wte.weight"] = state["wte.weight"].copy()
            state["wte.weight"][ABSENT] += 1.0
            C.load_state(model, state)
            C.load_state(reference, state)
            after = _forward(student, model, ids).data
            moved = abs(C.host(after)[..., ABSENT] - before[..., ABSENT]).max()
            C.expect(
                moved > 0,
                f"changing wte.weight[{ABSENT}] (token {ABSENT}, absent from the input) left logits[..., {ABSENT}] "
                "unchanged",
                TIED,
            )
            C.compare(
                after,
                reference(ids).data,
                f"logits after wte.weight[{ABSENT}] changed",
                rtol=1e-7,
                atol=1e-9,
                hint=TIED,
            )


@EXERCISE.check(
    "GPTModel's gradient of the token table matches finite differences (float64)", kind="gradient"
)
def finite_differences(student: Student) -> None:
    with C.float64():
        model, reference = _pair(student, seed=50)
        ids = _ids((B, T), seed=51)
        g = C.random_array((B, T, CONFIG["vocab_size"]), seed=52)
        params = C.parameters(student, model, "GPTModel")
        wte = params["wte.weight"]
        out = _forward(student, model, ids)
        C.expect(
            out.requires_grad, "GPTModel's logits do not require grad: no gradient reaches the weights", GRAPH
        )
        student.invoke("backward through your GPTModel", out.backward, g)
        C.expect(
            wte.grad_data is not None,
            "after backward through your GPTModel, wte.weight has no gradient",
            GRAPH,
        )
        table = wte.data

        def loss(a: Array) -> Array:
            wte.data = a
            with no_grad():
                return backend.current().xp.sum(_forward(student, model, ids).data * g)

        try:
            C.check_gradient(
                loss,
                [table],
                [wte.grad_data],
                ["the gradient of wte.weight"],
                samples=8,
                hint=GRAPH,
                mistakes=lambda: {h: [grad] for h, grad in _path_gradients(reference, ids, g).items()},
            )
        finally:
            wte.data = table


@EXERCISE.check("GPTModel's parameter gradients are TinyGPT's (wte gets both paths)", kind="gradient")
def parameter_gradients(student: Student) -> None:
    with C.float64():
        model, reference = _pair(student, seed=60)
        ids = _ids((B, T), seed=61)
        g = C.random_array((B, T, CONFIG["vocab_size"]), seed=62)
        out = _forward(student, model, ids)
        C.expect(out.requires_grad, "GPTModel's logits do not require grad", GRAPH)
        student.invoke("backward through your GPTModel", out.backward, g)
        reference(ids).backward(g)
        params = C.parameters(student, model, "GPTModel")
        for name, p in reference.named_parameters():
            got = params[name].grad_data
            if got is None:
                raise CheckFailed(
                    f"{name} got no gradient from backward through your GPTModel",
                    f"is {name.rsplit('.', 1)[0]} used in forward? " + GRAPH,
                )
            want = p.grad_data
            if name == "wte.weight":
                C.compare(
                    got,
                    want,
                    "the gradient of wte.weight (the lookup's plus the head's)",
                    mistakes=lambda: _path_gradients(reference, ids, g),
                    rtol=1e-7,
                    atol=1e-9,
                    hint=TIED,
                )
            else:
                C.compare(got, want, f"the gradient of {name}", rtol=1e-7, atol=1e-9, hint=GRAPH)


@EXERCISE.check("milestone: your GPTModel trains on Shakespeare like the library's TinyGPT", kind="milestone")
def milestone(student: Student) -> str:
    def plug(model: TinyGPT) -> None:
        mine = C.make_module(student, "GPTModel", model.config)
        _same_parameters(student, mine, model)
        for name, p in model.named_parameters():
            _set_parameter(mine, name, p)  # the optimizer trains TinyGPT's Parameters: now also the student's
        model.forward = lambda ids, caches=None: _forward(student, mine, ids)  # type: ignore[method-assign]

    return train_and_compare(plug=plug, what="your GPTModel")


def _set_parameter(module: Module, name: str, value: Parameter) -> None:
    """Make ``module``'s parameter at the dotted ``name`` (``blocks.0.ln1.weight``) the Parameter ``value``."""
    *path, last = name.split(".")
    owner: Any = module
    for part in path:
        owner = owner[int(part)] if isinstance(owner, list | tuple) else getattr(owner, part)
    setattr(owner, last, value)
