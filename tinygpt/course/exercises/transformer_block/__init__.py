"""Exercise: the pre-norm transformer block, built from the library's layers.

The reference is ``tinygpt.layers.TransformerBlock`` (and its ``MLP``). Both
blocks get the same weights by parameter name; the student's outputs and
autograd gradients must be the library's. Known wirings that go wrong (post-
norm, a missing residual, one norm for both branches ...) are recomputed from
the library's own parts and named when the student's output matches one.
"""

from __future__ import annotations

from typing import Any

from tinygpt import backend, layers
from tinygpt.course import checks as C
from tinygpt.course.errors import CheckFailed
from tinygpt.course.exercise import Exercise
from tinygpt.course.milestone import replace_modules, train_and_compare
from tinygpt.course.student import Student
from tinygpt.layers import KVCache, Module
from tinygpt.layers import TransformerBlock as LibraryBlock
from tinygpt.tensor import Tensor, no_grad

EXERCISE = Exercise(
    name="transformer_block",
    title="The pre-norm transformer block",
    teaches="residual branches, pre-norm vs post-norm, the 4C MLP; reusing the vision demo's Dense layers",
    minutes=35,
)

Array = Any
NAMES_HINT = (
    "name the parts as the library does: ln1, attn, ln2, mlp in the block; fc, act, proj in the MLP "
    "(the grader copies weights by name)"
)
WIDTH = (
    "the MLP widens each position to 4C features and projects back: Dense(C, 4 * C), GELU, Dense(4 * C, C)"
)
SHARED_NORM = "each branch has its own norm: the MLP reads ln2(x), with ln2 = a second LayerNorm(n_embd)"
GRAPH = (
    "build the output from the layers' Tensors only: .data, backend arrays or a new Tensor(...) cut the "
    "autograd graph, and the gradient stops there"
)

# What each known wrong wiring is told (the matching output is recomputed from the library's parts).
POST_NORM = (
    "pre-norm: normalise what each sublayer reads, not the sum: x + attn(ln1(x)), then x + mlp(ln2(x)) "
    "(ln(x + attn(x)) is post-norm, the original Transformer's order)"
)
NO_RESIDUAL_ATTN = "add attention's output to the stream: x = x + attn(ln1(x)) (the residual is missing)"
NO_RESIDUAL_MLP = "add the MLP's output to the stream: return x + mlp(ln2(x)) (the residual is missing)"
NO_RESIDUALS = "both branches are added to the stream: x = x + attn(ln1(x)), then x + mlp(ln2(x))"
NORMED_RESIDUAL = (
    "add each branch to x itself, not to the normalised input: x + attn(ln1(x)), not ln1(x) + attn(ln1(x))"
)
MLP_FIRST = "attention comes first, then the MLP: x = x + attn(ln1(x)); return x + mlp(ln2(x))"
PARALLEL = (
    "the MLP reads the stream after attention's change was added: x = x + attn(ln1(x)), then "
    "x + mlp(ln2(x)) with that new x"
)
ATTN_ONLY = "the block has two branches: after attention, add mlp(ln2(x)) too"
MLP_ONLY = "the block has two branches: first x = x + attn(ln1(x)), then the MLP"
RELU = "the MLP's activation is GELU (self.act = GELU()), not ReLU"
NO_ACT = "apply the activation between the two Dense layers: proj(act(fc(x)))"
ACT_LAST = "the activation sits between fc and proj: proj(act(fc(x))), not act(proj(fc(x)))"


# Building, loading, calling ------------------------------------------------------------------
def _same_parameters(student: Student, obj: Module, reference: Module, what: str) -> None:
    """The student's module has exactly the reference's parameter names and shapes."""
    shared = getattr(obj, "ln1", None) is not None and getattr(obj, "ln1", None) is getattr(obj, "ln2", None)
    C.expect_parameters(
        student,
        obj,
        reference,
        what,
        hint=lambda missing, unexpected: (
            "ln1 and ln2 are one LayerNorm: " + SHARED_NORM if shared else NAMES_HINT
        ),
        shape_hint=lambda name: (
            WIDTH if name.startswith(("fc.", "proj.", "mlp.fc.", "mlp.proj.")) else NAMES_HINT
        ),
    )


def _forward(student: Student, obj: Module, x: Tensor, what: str, **options: Any) -> Tensor:
    out = student.invoke(f"{what}.forward", obj, x, **options)
    C.expect(
        isinstance(out, Tensor),
        f"{what}.forward should return a Tensor, got {type(out).__name__}",
        "return what the layers give you (Tensors): " + GRAPH,
    )
    return out


def _pair(student: Student, c: int, h: int, seed: int) -> tuple[Module, LibraryBlock]:
    """The student's block and the library's, with the same random weights (current float dtype)."""
    reference = LibraryBlock(c, h, rng=backend.Generator(seed))
    block = C.make_module(student, "TransformerBlock", c, h)
    _same_parameters(student, block, reference, "TransformerBlock")
    state = C.random_state(reference, seed)
    C.load_state(reference, state)
    C.load_state(block, state)
    return block, reference


def _wirings(lib: LibraryBlock, x: Tensor) -> dict[str, Array]:
    """What each known wrong wiring of the block outputs for x, computed from the library's own parts."""
    ln1, ln2, mlp = lib.ln1, lib.ln2, lib.mlp

    def attn(h: Tensor) -> Tensor:
        return lib.attn(h)

    with no_grad():
        after_attn = x + attn(ln1(x))
        h1 = ln1(x)
        normed = h1 + attn(h1)
        h2 = ln2(normed)
        post = ln1(x + attn(x))
        only_attn_out = attn(ln1(x))
        mlp_first = x + mlp(ln2(x))
        wrong = {
            POST_NORM: ln2(post + mlp(post)),
            NO_RESIDUAL_ATTN: only_attn_out + mlp(ln2(only_attn_out)),
            NO_RESIDUAL_MLP: mlp(ln2(after_attn)),
            NO_RESIDUALS: mlp(ln2(only_attn_out)),
            SHARED_NORM: after_attn + mlp(ln1(after_attn)),
            NORMED_RESIDUAL: h2 + mlp(h2),
            NORMED_RESIDUAL + " (around the attention)": normed + mlp(ln2(normed)),
            NORMED_RESIDUAL + " (around the MLP)": ln2(after_attn) + mlp(ln2(after_attn)),
            MLP_FIRST: mlp_first + attn(ln1(mlp_first)),
            PARALLEL: after_attn + mlp(ln2(x)),
            ATTN_ONLY: after_attn,
            MLP_ONLY: x + mlp(ln2(x)),
        }
    return {hint: out.data for hint, out in wrong.items()}


def _mlp_mistakes(lib: layers.MLP, x: Tensor) -> dict[str, Array]:
    with no_grad():
        hidden = lib.fc(x)
        return {
            RELU: lib.proj(hidden.relu()).data,
            NO_ACT: lib.proj(hidden).data,
            ACT_LAST: lib.proj(hidden).gelu().data,
        }


# The checks -------------------------------------------------------------------------------------
@EXERCISE.check("MLP has the library's parameter names and shapes (C -> 4C -> C)", kind="shape")
def mlp_shapes(student: Student) -> None:
    mlp = C.make_module(student, "MLP", 16)
    _same_parameters(student, mlp, layers.MLP(16, rng=backend.Generator(0)), "MLP")
    x = Tensor(C.random_array((2, 6, 16), seed=1))
    out = _forward(student, mlp, x, "MLP")
    C.expect_array(out.data, "MLP(16)(x (2, 6, 16) float32)", shape=(2, 6, 16), dtype=x.dtype)


@EXERCISE.check("MLP matches the library's MLP with the same weights (float64)")
def mlp_values(student: Student) -> None:
    with C.float64():
        reference = layers.MLP(16, rng=backend.Generator(0))
        mlp = C.make_module(student, "MLP", 16)
        _same_parameters(student, mlp, reference, "MLP")
        state = C.random_state(reference, 10)
        C.load_state(reference, state)
        C.load_state(mlp, state)
        x = Tensor(C.random_array((2, 6, 16), seed=11, scale=2.0))
        with no_grad():
            want = reference(x).data
        C.compare(
            _forward(student, mlp, x, "MLP").data,
            want,
            "MLP(x (2, 6, 16))",
            mistakes=lambda: _mlp_mistakes(reference, x),
            rtol=1e-7,
            atol=1e-9,
            hint="proj(act(fc(x))) with act = GELU()",
        )


@EXERCISE.check("TransformerBlock has the library's parameter names and shapes", kind="shape")
def block_shapes(student: Student) -> None:
    block = C.make_module(student, "TransformerBlock", 16, 2)
    _same_parameters(student, block, LibraryBlock(16, 2, rng=backend.Generator(0)), "TransformerBlock")
    x = Tensor(C.random_array((2, 6, 16), seed=2))
    out = _forward(student, block, x, "TransformerBlock")
    C.expect_array(out.data, "TransformerBlock(16, 2)(x (2, 6, 16) float32)", shape=(2, 6, 16), dtype=x.dtype)


@EXERCISE.check("TransformerBlock matches the library's block with the same weights (float64)")
def block_values(student: Student) -> None:
    with C.float64():
        block, reference = _pair(student, 16, 2, seed=20)
        x = Tensor(C.random_array((2, 6, 16), seed=21, scale=2.0, shift=0.5))
        with no_grad():
            want = reference(x).data
        C.compare(
            _forward(student, block, x, "TransformerBlock").data,
            want,
            "TransformerBlock(x (2, 6, 16))",
            mistakes=lambda: _wirings(reference, x),
            rtol=1e-7,
            atol=1e-9,
            hint="x = x + attn(ln1(x)); return x + mlp(ln2(x))",
        )


@EXERCISE.check("TransformerBlock edge cases: T = 1; one head", kind="edge")
def edge_cases(student: Student) -> None:
    with C.float64():
        for c, h, shape in ((16, 2, (2, 1, 16)), (16, 1, (2, 6, 16))):
            block, reference = _pair(student, c, h, seed=30 + c + h)
            x = Tensor(C.random_array(shape, seed=31, scale=2.0))
            with no_grad():
                want = reference(x).data
            C.compare(
                _forward(student, block, x, "TransformerBlock").data,
                want,
                f"TransformerBlock({c}, {h})(x {shape})",
                mistakes=lambda: _wirings(reference, x),  # noqa: B023 - called at once
                rtol=1e-7,
                atol=1e-9,
            )


@EXERCISE.check("TransformerBlock with a KV cache, one token at a time, gives the same outputs", kind="edge")
def kv_cache(student: Student) -> None:
    xp = backend.current().xp
    with C.float64():
        block, reference = _pair(student, 16, 2, seed=40)
        x = Tensor(C.random_array((2, 6, 16), seed=41, scale=2.0))
        with no_grad():
            whole = reference(x).data
        cache = KVCache(2, 2, 6, 8)
        steps = []
        for t in range(6):
            try:
                out = _forward(student, block, x[:, t : t + 1, :], "TransformerBlock", cache=cache)
            except CheckFailed as exc:
                if "cache" in exc.message:
                    exc.hint = "keep the starter's signature forward(self, x, cache=None) and pass cache to self.attn"
                raise
            steps.append(C.to_backend(C.host(out.data), whole))
        C.compare(
            xp.concat(steps, axis=1),
            whole,
            "TransformerBlock run one token at a time with a KV cache, vs the whole sequence at once",
            rtol=1e-7,
            atol=1e-9,
            hint="hand the cache on to the attention: self.attn(self.ln1(x), cache=cache)",
        )


@EXERCISE.check(
    "TransformerBlock is causal as a whole; with both branches zeroed it returns x", kind="property"
)
def properties(student: Student) -> None:
    xp = backend.current().xp
    with C.float64():
        block, reference = _pair(student, 16, 2, seed=50)
        x = C.random_array((2, 6, 16), seed=51)
        with no_grad():
            C.check_causal(
                lambda a: _forward(student, block, Tensor.wrap(a), "TransformerBlock").data,
                x,
                "TransformerBlock",
                hint="the block may only mix positions through its causal attention: use MultiHeadAttention "
                "(causal by default) and keep every other step per position",
            )
        for module in (block, reference):
            for name, p in module.named_parameters():
                if name.startswith(("attn.proj.", "mlp.proj.")):
                    p.data = xp.zeros(p.shape, dtype=p.dtype, device=backend.current().device)
        stream = Tensor.wrap(x)
        with no_grad():
            got = _forward(student, block, stream, "TransformerBlock").data
        C.compare(
            got,
            x,
            "with attn.proj and mlp.proj zeroed (both branches output 0) the block should return x exactly",
            rtol=0,
            atol=0,
            hint="the residual path: the stream x passes through the block untouched, and each branch adds to it",
            mistakes=lambda: _wirings(reference, stream),
        )


@EXERCISE.check(
    "TransformerBlock's gradient of x (autograd) matches finite differences (float64)", kind="gradient"
)
def finite_differences(student: Student) -> None:
    xp = backend.current().xp
    with C.float64():
        block, _ = _pair(student, 16, 2, seed=60)
        x = C.random_array((2, 6, 16), seed=61)
        g = C.random_array((2, 6, 16), seed=62)
        leaf = Tensor.wrap(x, requires_grad=True)
        out = _forward(student, block, leaf, "TransformerBlock")
        C.expect(
            out.requires_grad,
            "TransformerBlock's output does not require grad: no gradient can reach x or the weights",
            GRAPH,
        )
        student.invoke("backward through your TransformerBlock", out.backward, g)
        C.expect(
            leaf.grad_data is not None,
            "after backward through your TransformerBlock, x has no gradient",
            GRAPH,
        )

        def loss(a: Array) -> Array:
            with no_grad():
                return xp.sum(_forward(student, block, Tensor.wrap(a), "TransformerBlock").data * g)

        C.check_gradient(loss, [x], [leaf.grad_data], ["the gradient of x"], samples=6, hint=GRAPH)


@EXERCISE.check("TransformerBlock's parameter gradients are the library block's", kind="gradient")
def parameter_gradients(student: Student) -> None:
    with C.float64():
        block, reference = _pair(student, 16, 2, seed=70)
        x = C.random_array((2, 6, 16), seed=71, scale=2.0)
        g = C.random_array((2, 6, 16), seed=72)
        mine, theirs = Tensor.wrap(x, requires_grad=True), Tensor.wrap(x, requires_grad=True)
        out = _forward(student, block, mine, "TransformerBlock")
        C.expect(out.requires_grad, "TransformerBlock's output does not require grad", GRAPH)
        student.invoke("backward through your TransformerBlock", out.backward, g)
        reference(theirs).backward(g)
        params = C.parameters(student, block, "TransformerBlock")
        for name, p in reference.named_parameters():
            got = params[name].grad_data
            if got is None:
                raise CheckFailed(
                    f"{name} got no gradient from backward through your TransformerBlock",
                    SHARED_NORM
                    if name.startswith("ln2.")
                    else f"is {name.split('.')[0]} used in forward? " + GRAPH,
                )
            C.compare(got, p.grad_data, f"the gradient of {name}", rtol=1e-7, atol=1e-9, hint=GRAPH)
        C.compare(mine.grad_data, theirs.grad_data, "the gradient of x", rtol=1e-7, atol=1e-9, hint=GRAPH)


@EXERCISE.check(
    "milestone: a TinyGPT with your TransformerBlock in every layer trains on Shakespeare like the library's",
    kind="milestone",
)
def milestone(student: Student) -> str:
    def make(old: LibraryBlock) -> Module:
        block = C.make_module(student, "TransformerBlock", old.ln1.weight.shape[0], old.attn.n_head)
        _same_parameters(student, block, old, "TransformerBlock")
        C.load_state(block, old.state_dict())
        return block

    return train_and_compare(
        plug=lambda model: replace_modules(model, LibraryBlock, make),
        what="your TransformerBlock in every layer",
    )
