"""Exercise: autoregressive generation: temperature, top-k, the inverse-CDF draw, the loop, the KV cache.

The references are ``tinygpt.generation``: ``filter_logits`` for the
probabilities, and ``generate(..., use_cache=False)`` for the tokens. The
student draws with ``rng.uniform((B, 1))``, once per step: that is the number
``backend.Generator.categorical`` (what the library samples with) draws, so on
the same seed the student's tokens are the library's, exactly. The KV-cache
part is a stretch check: skipped while the student has not written it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tinygpt import backend
from tinygpt import functional as F
from tinygpt.course import checks as C
from tinygpt.course.errors import CheckFailed
from tinygpt.course.exercise import Exercise
from tinygpt.course.student import Student
from tinygpt.generation import filter_logits
from tinygpt.generation import generate as library_generate
from tinygpt.models import GPTConfig, TinyGPT
from tinygpt.tensor import Tensor, no_grad

EXERCISE = Exercise(
    name="generation",
    title="Generation: temperature, top-k, sampling and the KV cache",
    teaches="temperature before the softmax; top-k; drawing by the inverse CDF; the autoregressive loop and "
    "its context crop; the KV cache (stretch)",
    minutes=40,
)

Array = Any

# Hints, in the student's terms ------------------------------------------------------------------------
TEMP_POW = (
    "apply the temperature to the logits, before the softmax: softmax(logits / T); probabilities ** (1 / T) "
    "would need renormalising"
)
TEMP_DIVIDED = (
    "apply the temperature to the logits, before the softmax: softmax(logits / T), not softmax(logits) / T"
)
TEMP_TIMES = "divide the logits by the temperature (T < 1 sharpens): softmax(logits / T)"
TEMP_IGNORED = "use the temperature: softmax(logits / temperature)"
TOPK_PLUS = "top-k keeps k tokens: the k-th largest is sorted[:, k - 1] (index k keeps k + 1)"
TOPK_MINUS = "top-k keeps k tokens: keep every logit >= the k-th largest, sorted[:, k - 1 : k]"
TOPK_IGNORED = "use top_k: set every logit below the k-th largest of its row to -inf"
TOPK_SMALLEST = "keep the k *largest* logits: sort in descending order (descending=True)"
TOPK_NOT_RENORMALISED = (
    "cut before the softmax (logits to -inf), or renormalise after zeroing: each row must sum to 1"
)
TOPK_ZERO_LOGIT = "set the cut logits to -inf, not 0: exp(0) = 1 still gives them probability"
TIES = (
    "keep every token whose logit is >= the k-th largest: tokens tied with the k-th value are all kept "
    "(tinygpt.generation.filter_logits), not exactly k picked by position"
)
WRONG_AXIS = "the softmax runs over the last axis (each row, one sequence's vocabulary, sums to 1)"
NO_MAX = (
    "subtract each row's maximum before exp: logits / a small temperature are large, and exp(1000) is inf"
)
TOPK_ALL = "top_k >= V keeps every token (there is nothing to cut): check top_k < V before sorting"
GREEDY = "temperature == 0 means greedy: return xp.argmax(logits, axis=-1), without dividing by 0"
ARGMAX_ALWAYS = (
    "sample from the probabilities; the argmax (the most likely token) is for temperature == 0 only"
)
FROM_LOGITS = (
    "draw from the probabilities (next_token_probs), not from the logits: the cumulative sum of logits is "
    "no distribution"
)
IGNORES_OPTIONS = "draw from next_token_probs(logits, temperature, top_k): the temperature and top-k apply"
OFF_BY_ONE = (
    "the token is the number of tokens whose cumulative probability is still below u (xp.sum(cdf < u)), "
    "not one more"
)
COUNT_BELOW = (
    "the token is the number of tokens whose cumulative probability is strictly below u: xp.sum(cdf < u), "
    "not cdf <= u (as the library draws)"
)
COUNT_ABOVE = "count the tokens whose cumulative probability is *below* u: xp.sum(cdf < u, axis=-1)"
ONE_DRAW = "draw exactly one uniform number per row and call, u = rng.uniform((B, 1)), before anything else"
CROP = "crop the context: the model sees the last block_size tokens, ids[:, max(0, T - block_size):]"
STALE = "give the model the tokens generated so far: crop the updated ids at every step, not the prompt once"
LAST_POSITION = "the next token's logits are the last position's: model(context).data[:, -1, :]"
RESEED = (
    "make the generator once, before the loop: backend.Generator(seed) every step repeats the same numbers"
)
FIRST_BLOCK = "the model sees the *last* block_size tokens (the most recent context), ids[:, -block_size:]"
SHORT_BLOCK = "the model sees the last block_size tokens, all of them: ids[:, max(0, T - block_size):]"
KEEP_ALL = "return every token: crop only what the model sees, never ids itself"
APPEND = "append each new token to ids: xp.concat([ids, xp.reshape(nxt, (-1, 1))], axis=1)"
CACHE_ONE = "after the prompt, feed only the new token, (B, 1): the caches hold every earlier position"
CACHE_FALLBACK = (
    "when T + max_new_tokens > block_size, return generate(...) instead: a cache holds block_size positions"
)


# References and known mistakes ------------------------------------------------------------------------
def _softmax(z: Array, axis: int = -1) -> Array:
    """The library's softmax over ``axis`` of a raw array (what a mistake would give)."""
    return F.softmax(Tensor.wrap(z), axis=axis).data


def _keep_top(z: Array, k: int, fill: float = -float("inf"), descending: bool = True) -> Array:
    """``z`` with every value below the row's k-th largest (or above the k-th smallest) set to ``fill``."""
    xp = backend.current().xp
    kth = xp.sort(z, axis=-1, descending=descending)[:, k - 1 : k]
    return xp.where(z < kth if descending else z > kth, fill, z)


def _probs_mistakes(logits: Array, temperature: float, top_k: int | None) -> dict[str, Array]:
    """hint -> the probabilities that mistake gives for these arguments."""
    xp = backend.current().xp
    v = logits.shape[-1]
    k = top_k if top_k is not None and top_k < v else 0
    cut = k > 0
    z = _keep_top(logits / temperature, k) if cut else logits / temperature
    plain = _softmax(_keep_top(logits, k) if cut else logits)
    out = {
        TEMP_POW: plain ** (1.0 / temperature),
        TEMP_DIVIDED: plain / temperature,
        TEMP_DIVIDED + " (and only once)": _softmax(z) / temperature,
        TEMP_TIMES: filter_logits(logits * temperature * temperature, temperature, top_k),
        TEMP_IGNORED: filter_logits(logits, 1.0, top_k),
        WRONG_AXIS: _softmax(z, axis=0),
    }
    if cut:
        assert top_k is not None
        scaled = logits / temperature
        out[TOPK_PLUS] = filter_logits(logits, temperature, top_k + 1)
        if top_k > 1:
            out[TOPK_MINUS] = filter_logits(logits, temperature, top_k - 1)
        out[TOPK_IGNORED] = filter_logits(logits, temperature, None)
        out[TOPK_SMALLEST] = _softmax(_keep_top(scaled, top_k, descending=False))
        full = _softmax(scaled)
        out[TOPK_NOT_RENORMALISED] = xp.where(z == -float("inf"), 0.0, full)
        out[TOPK_ZERO_LOGIT] = _softmax(_keep_top(scaled, top_k, fill=0.0))
        order = xp.argsort(scaled, axis=-1, descending=True, stable=True)
        rank = xp.argsort(order, axis=-1, stable=True)
        out[TIES] = _softmax(xp.where(rank < top_k, scaled, -float("inf")))
    return out


def _draws(probs: Array, u: Array) -> Array:
    """Inverse-CDF draws from rows of ``probs`` (B, V) given uniforms ``u`` (B, 1): what the library draws."""
    b = backend.current()
    xp = b.xp
    cdf = xp.cumulative_sum(probs, axis=-1)
    below = xp.sum(xp.astype(cdf < u, b.int_dtype), axis=-1)
    return xp.clip(below, 0, probs.shape[-1] - 1)


def _sample_mistakes(logits: Array, temperature: float, top_k: int | None, seed: int) -> dict[str, Array]:
    """hint -> the tokens that mistake draws, with the uniforms Generator(seed) gives first."""
    b = backend.current()
    xp = b.xp
    u = backend.Generator(seed).uniform((logits.shape[0], 1))
    probs = filter_logits(logits, temperature, top_k)
    right = _draws(probs, u)
    v = logits.shape[-1]
    cdf = xp.cumulative_sum(probs, axis=-1)
    out = {
        ARGMAX_ALWAYS: xp.astype(xp.argmax(logits, axis=-1), b.int_dtype),
        FROM_LOGITS: _draws(logits, u),
        IGNORES_OPTIONS: _draws(_softmax(logits), u),
        OFF_BY_ONE: xp.clip(right + 1, 0, v - 1),
        COUNT_ABOVE: xp.clip(xp.sum(xp.astype(cdf > u, b.int_dtype), axis=-1), 0, v - 1),
    }
    shifted = f"{ONE_DRAW}: yours draws more numbers than that"
    for skip in (1, 2, logits.shape[0]):  # numbers drawn before u shift the stream
        rng = backend.Generator(seed)
        rng.uniform((skip,))
        out[shifted] = _draws(probs, rng.uniform((logits.shape[0], 1)))
        if not C.matches(out[shifted], right):
            break
    return out


def _library_draws(logits: Array, temperature: float, top_k: int | None, rng: backend.Generator) -> Array:
    return rng.categorical(filter_logits(logits, temperature, top_k))


def _logits(shape: tuple[int, int], seed: int, scale: float = 2.0) -> Array:
    return C.random_array(shape, seed, scale=scale)


# The model ------------------------------------------------------------------------------------------
TINY = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16)


def _tiny_model() -> TinyGPT:
    """A small random TinyGPT; its weights scaled up so the next-token distributions are far from uniform."""
    model = TinyGPT(TINY, rng=backend.Generator(3))
    model.wte.weight.data = model.wte.weight.data * 12.0
    return model


def _ids(rows: Any) -> Array:
    return backend.asarray(rows, dtype=backend.current().int_dtype)


def _prompt(batch: int, length: int, seed: int) -> Array:
    """Random token ids (B, T) of the index dtype."""
    ids = backend.Generator(seed).integers(0, TINY.vocab_size, (batch, length))
    return backend.current().xp.astype(ids, backend.current().int_dtype)


def _library_tokens(
    model: TinyGPT, ids: Array, n: int, temperature: float, top_k: int | None, seed: int
) -> Array:
    if temperature == 0:
        rows = library_generate(model, ids, n, greedy=True, use_cache=False)
    else:
        rows = library_generate(
            model, ids, n, temperature=temperature, top_k=top_k, seed=seed, use_cache=False
        )
    return _ids(rows)


def _mistaken_tokens(
    model: TinyGPT, ids: Array, n: int, temperature: float, top_k: int | None, seed: int, mistake: str
) -> Array:
    """The tokens a generate with ``mistake`` produces (the library's draws otherwise)."""
    xp = backend.current().xp
    block = model.config.block_size
    rng = backend.Generator(seed)
    prompt = ids
    with no_grad():
        for _ in range(n):
            if mistake == "reseed":
                rng = backend.Generator(seed)
            source = prompt if mistake == "stale" else ids
            t = source.shape[1]
            start = {"first_block": 0, "short_block": max(0, t - block + 1)}.get(mistake, max(0, t - block))
            context = source[:, : min(t, block)] if mistake == "first_block" else source[:, start:]
            out = model(context).data
            logits = out[:, 0, :] if mistake == "first_position" else out[:, -1, :]
            if temperature == 0:
                nxt = xp.argmax(logits, axis=-1)
            else:
                nxt = _library_draws(logits, temperature, top_k, rng)
            nxt = xp.reshape(xp.astype(nxt, ids.dtype), (-1, 1))
            kept = ids[:, max(0, ids.shape[1] - block) :] if mistake == "cropped_return" else ids
            ids = xp.concat([kept, nxt], axis=1)
    return ids


GENERATE_MISTAKES = {
    "stale": STALE,
    "first_position": LAST_POSITION,
    "reseed": RESEED,
    "first_block": FIRST_BLOCK,
    "short_block": SHORT_BLOCK,
    "cropped_return": KEEP_ALL,
}


def _call_generate(student: Student, name: str, model: TinyGPT, ids: Array, n: int, *options: Any) -> Array:
    try:
        return student.call(name, model, ids, n, *options)
    except CheckFailed as exc:
        if "exceed block_size" in exc.message or "KV cache full" in exc.message:
            if name == "generate":
                hint = CROP
            else:
                hint = CACHE_FALLBACK if ids.shape[1] + n > model.config.block_size else CACHE_ONE
            raise CheckFailed(exc.message, hint) from None
        raise


def _check_tokens(
    got: Array,
    want: Array,
    what: str,
    prompt: Array,
    n: int,
    mistakes: Callable[[], dict[str, Array]] | None = None,
    hint: str = "",
) -> None:
    """``got`` is ``want``: the shape (with a hint for each way it goes wrong), the prompt, every token.

    ``mistakes()`` (hint -> the tokens that mistake gives) is only computed when a token differs:
    each is a whole generation run, slow on JAX.
    """
    b = backend.current()
    batch, t = prompt.shape
    C.expect_array(got, what, dtype=b.int_dtype)
    shape = tuple(got.shape)
    if shape != (batch, t + n):
        hint = (
            APPEND
            if shape == (batch, t)
            else "return the prompt followed by the new tokens"
            if shape == (batch, n)
            else KEEP_ALL
            if len(shape) == 2 and shape[1] < t + n
            else "return ids of shape (B, T + max_new_tokens)"
        )
        raise CheckFailed(f"{what} should have shape {(batch, t + n)}, got {shape}", hint)
    C.compare(
        got[:, :t], prompt, f"{what}: the first T = {t} tokens (the prompt, unchanged)", 0, 0, hint=KEEP_ALL
    )
    C.compare(
        got,
        want,
        what,
        0,
        0,
        hint=hint or "crop, take the last position's logits, sample_next with one generator made from seed",
        mistakes=mistakes,
    )


def _generate_mistakes(
    model: TinyGPT, prompt: Array, n: int, temperature: float, top_k: int | None, seed: int
) -> Callable[[], dict[str, Array]]:
    return lambda: {
        hint: _mistaken_tokens(model, prompt, n, temperature, top_k, seed, mistake)
        for mistake, hint in GENERATE_MISTAKES.items()
    }


# Probabilities --------------------------------------------------------------------------------------------
@EXERCISE.check("next_token_probs returns probabilities (B, V) of the logits' dtype", kind="shape")
def probs_shape(student: Student) -> None:
    logits = _logits((4, 10), 1)
    C.expect_array(
        student.call("next_token_probs", logits, 1.0, None),
        "next_token_probs(logits (4, 10) float32, 1.0, None)",
        shape=logits.shape,
        dtype=logits.dtype,
    )


@EXERCISE.check("next_token_probs matches generation.filter_logits: temperature, then top-k, then softmax")
def probs_values(student: Student) -> None:
    with C.float64():
        logits = _logits((5, 12), 2)
        for temperature, top_k in ((1.0, None), (0.5, None), (2.0, None), (1.0, 3), (0.7, 5)):
            C.compare(
                student.call("next_token_probs", logits, temperature, top_k),
                filter_logits(logits, temperature, top_k),
                f"next_token_probs(logits (5, 12), temperature={temperature}, top_k={top_k})",
                rtol=1e-9,
                atol=1e-12,
                hint="z = logits / temperature; logits below the k-th largest to -inf; softmax over the last axis",
                mistakes=lambda logits=logits, temperature=temperature, top_k=top_k: _probs_mistakes(
                    logits, temperature, top_k
                ),
            )


@EXERCISE.check(
    "next_token_probs edge cases: logits of 1000, a tiny temperature, top_k = 1, top_k >= V, ties at the "
    "k-th value, one row",
    kind="edge",
)
def probs_edges(student: Student) -> None:
    with C.float64():
        big = _logits((3, 7), 3) + 1000.0
        tied = backend.asarray([[3.0, 1.0, 1.0, 0.0, 1.0, -2.0], [0.5, 0.5, 0.5, 0.5, 2.0, 0.1]])
        cases = [
            ("logits near 1000", big, 1.0, None, NO_MAX),
            ("temperature 0.001 (a one-hot row at the argmax)", _logits((3, 7), 4), 1e-3, None, NO_MAX),
            ("top_k = 1 (greedy: one-hot at the argmax)", _logits((3, 7), 5), 0.8, 1, TOPK_MINUS),
            ("top_k = V = 7 (nothing cut)", _logits((3, 7), 6), 1.0, 7, TOPK_ALL),
            ("top_k = 10 > V = 7 (nothing cut)", _logits((3, 7), 7), 1.0, 10, TOPK_ALL),
            ("ties at the k-th value, top_k = 2", tied, 1.0, 2, TIES),
            ("one row (B = 1)", _logits((1, 9), 8), 0.9, 4, ""),
        ]
        for what, logits, temperature, top_k, hint in cases:
            try:
                got = student.call("next_token_probs", logits, temperature, top_k)
            except CheckFailed as exc:
                if not hint or " raised " not in exc.message:
                    raise
                raise CheckFailed(exc.message, hint) from None
            C.compare(
                got,
                filter_logits(logits, temperature, top_k),
                f"next_token_probs for {what}",
                rtol=1e-9,
                atol=1e-12,
                hint=hint,
                mistakes=lambda logits=logits, temperature=temperature, top_k=top_k: _probs_mistakes(
                    logits, temperature, top_k
                ),
            )


# Sampling ----------------------------------------------------------------------------------------------------
def _sample(
    student: Student, logits: Array, temperature: float, top_k: int | None, rng: backend.Generator
) -> Array:
    got = student.call("sample_next", logits, temperature, top_k, rng)
    b = backend.current()
    C.expect_array(
        got,
        f"sample_next(logits {tuple(logits.shape)}, ...)",
        shape=(logits.shape[0],),
        dtype=b.int_dtype,
        hint="one token id per row, xp.astype(..., backend.current().int_dtype)",
    )
    return got


@EXERCISE.check("sample_next returns one id per row, (B,), of the index dtype, within [0, V)", kind="shape")
def sample_shape(student: Student) -> None:
    logits = _logits((6, 10), 9)
    got = C.host(_sample(student, logits, 1.0, None, backend.Generator(0)))
    C.expect(
        bool(((got >= 0) & (got < 10)).all()),
        f"sample_next returned ids {got.tolist()}, not all within [0, V) = [0, 10)",
        "cap the id at V - 1: xp.minimum(ids, V - 1)",
    )


@EXERCISE.check("sample_next is greedy (the argmax) for temperature 0 and for top_k = 1")
def greedy(student: Student) -> None:
    xp = backend.current().xp
    with C.float64():
        logits = _logits((8, 10), 10)
        want = xp.astype(xp.argmax(logits, axis=-1), backend.current().int_dtype)
        try:
            got = _sample(student, logits, 0.0, None, backend.Generator(0))
        except CheckFailed as exc:
            if " raised " not in exc.message:
                raise
            raise CheckFailed(exc.message, GREEDY) from None
        C.compare(got, want, "sample_next(logits (8, 10), temperature=0) (greedy)", 0, 0, hint=GREEDY)
        C.compare(
            _sample(student, logits, 1.0, 1, backend.Generator(0)),
            want,
            "sample_next(logits (8, 10), temperature=1, top_k=1)",
            0,
            0,
            hint="with top_k = 1 only the most likely token keeps a probability",
            mistakes=_sample_mistakes(logits, 1.0, 1, 0),
        )


@EXERCISE.check(
    "sample_next's draws follow the probabilities: 20,000 draws, chi-square test, no cut token ever drawn",
    kind="property",
)
def statistics(student: Student) -> None:
    xp = backend.current().xp
    draws, temperature, top_k = 20_000, 1.3, 4
    with C.float64():
        row = backend.asarray([[1.0, -0.5, 2.0, 0.3, 1.6, -1.0]])
        logits = xp.broadcast_to(row, (draws, 6))
        got = C.host(_sample(student, logits, temperature, top_k, backend.Generator(11)))
        probs = C.host(filter_logits(row, temperature, top_k))[0]
    counts = [int((got == v).sum()) for v in range(6)]
    shown = ", ".join(f"{c / draws:.3f}" for c in counts)
    expected = ", ".join(f"{p:.3f}" for p in probs)
    for v, (count, p) in enumerate(zip(counts, probs, strict=True)):
        C.expect(
            not (p == 0 and count),
            f"token {v} has probability 0 after top_k={top_k}, but sample_next drew it {count} times in {draws}",
            "draw from next_token_probs(logits, temperature, top_k): its cut tokens have probability 0",
        )
    if counts[int(probs.argmax())] == draws:
        raise CheckFailed(
            f"all {draws} draws are the most likely token {int(probs.argmax())} (its probability is "
            f"{probs.max():.3f})",
            ARGMAX_ALWAYS,
        )
    chi2 = sum((c - draws * p) ** 2 / (draws * p) for c, p in zip(counts, probs, strict=True) if p > 0)
    bound = 30.0  # 3 degrees of freedom: a correct sampler exceeds it with probability about 1e-6
    C.expect(
        chi2 <= bound,
        f"over {draws} draws, the tokens' frequencies are [{shown}], the probabilities [{expected}] "
        f"(chi-square {chi2:.1f}, at most {bound:.0f} expected)",
        "the token is the first whose cumulative probability exceeds u, with u uniform in [0, 1): "
        "xp.sum(cdf < u, axis=-1)",
    )


@EXERCISE.check("sample_next draws the library's tokens from the same generator (two calls in a row)")
def same_draws(student: Student) -> None:
    with C.float64():
        temperature, top_k = 0.9, 6
        first, second = _logits((200, 9), 12), _logits((200, 9), 13)
        reference = backend.Generator(7)
        want = [_library_draws(z, temperature, top_k, reference) for z in (first, second)]
        rng = backend.Generator(7)
        got = _sample(student, first, temperature, top_k, rng)
        C.compare(
            got,
            want[0],
            f"sample_next(logits (200, 9), temperature={temperature}, top_k={top_k}, rng=Generator(7)) tokens",
            0,
            0,
            hint="u = rng.uniform((B, 1)) once; the token is xp.sum(cdf < u, axis=-1) with cdf the cumulative sum "
            "of next_token_probs",
            mistakes=_sample_mistakes(first, temperature, top_k, 7),
        )
        C.compare(
            _sample(student, second, temperature, top_k, rng),
            want[1],
            "the tokens of a second sample_next call with the same rng",
            0,
            0,
            hint=ONE_DRAW,
        )


class _Fixed:
    """A stand-in generator whose uniform numbers all equal ``value``: to put u where a check needs it."""

    def __init__(self, value: float) -> None:
        self.value = value

    def uniform(self, shape: Any, low: float = 0.0, high: float = 1.0, dtype: Any = None) -> Array:
        b = backend.current()
        return b.xp.full(tuple(shape), self.value, dtype=dtype or b.float_dtype, device=b.device)


@EXERCISE.check(
    "sample_next edge cases: u just below 1 gives the last token (an id below V); u exactly on a boundary of "
    "the cumulative sum",
    kind="edge",
)
def sample_ends(student: Student) -> None:
    b = backend.current()
    xp = b.xp
    cap = "rounding leaves the last cumulative probability a hair below 1: cap the id at V - 1, xp.minimum(ids, V - 1)"
    with C.float64():
        for v, u, want, what, hint in (
            # Seven equal probabilities: in float64 their cumulative sum ends at 0.9999999999999998, below u.
            (7, 1.0 - 2.0**-53, 6, "7 equal logits, u = 1 - 2**-53", cap),
            # Four equal probabilities: the cumulative sum is exactly [0.25, 0.5, 0.75, 1]; 0.5 is not below 0.5.
            (4, 0.5, 1, "4 equal logits, u = 0.5 (the cumulative sum is [0.25, 0.5, 0.75, 1])", COUNT_BELOW),
        ):
            logits = xp.zeros((3, v), dtype=b.float_dtype, device=b.device)
            got = _sample(student, logits, 1.0, None, _Fixed(u))  # type: ignore[arg-type]
            C.compare(
                got,
                xp.full((3,), want, dtype=b.int_dtype, device=b.device),
                f"sample_next({what})",
                0,
                0,
                hint=hint,
                mistakes={ARGMAX_ALWAYS: xp.zeros((3,), dtype=b.int_dtype, device=b.device)},
            )


# Generation ----------------------------------------------------------------------------------------------
def _generate_case(
    student: Student,
    name: str,
    model: TinyGPT,
    batch: int,
    t: int,
    n: int,
    temperature: float,
    top_k: int | None,
    seed: int,
) -> None:
    prompt = _prompt(batch, t, seed + 100)
    want = _library_tokens(model, prompt, n, temperature, top_k, seed)
    mistakes = _generate_mistakes(model, prompt, n, temperature, top_k, seed)
    got = _call_generate(student, name, model, prompt, n, temperature, top_k, seed)
    _check_tokens(
        got,
        want,
        f"{name}(model, ids ({batch}, {t}), {n}, temperature={temperature}, top_k={top_k}, seed={seed}) "
        f"(block_size {model.config.block_size})",
        prompt,
        n,
        mistakes,
    )


@EXERCISE.check("generate returns (B, T + max_new_tokens) ids: the prompt, then the new tokens", kind="shape")
def generate_shape(student: Student) -> None:
    with C.float64():  # as the other generation checks: on JAX, each new shape compiles once
        model = _tiny_model()
        prompt = _prompt(2, 3, 20)
        mistakes = _generate_mistakes(model, prompt, 3, 1.0, None, 0)
        got = _call_generate(student, "generate", model, prompt, 3, 1.0, None, 0)
        want = _library_tokens(model, prompt, 3, 1.0, None, 0)
        _check_tokens(got, want, "generate(model, ids (2, 3), 3)", prompt, 3, mistakes)


@EXERCISE.check("generate gives generation.generate's tokens on a TinyGPT (float64, same seed; greedy too)")
def generate_values(student: Student) -> None:
    with C.float64():
        model = _tiny_model()
        for batch, t, n, temperature, top_k, seed in (
            (2, 1, 5, 1.0, None, 0),  # B = 2 throughout: on JAX each new (B, T) compiles once
            (2, 3, 4, 0.8, 3, 5),
            (2, 2, 5, 0.0, None, 0),
        ):
            _generate_case(student, "generate", model, batch, t, n, temperature, top_k, seed)


@EXERCISE.check(
    "generate crops the context to block_size: a prompt longer than the block, and text growing past it",
    kind="edge",
)
def generate_crop(student: Student) -> None:
    with C.float64():
        model = _tiny_model()
        _generate_case(student, "generate", model, 2, 6, 7, 1.0, 4, 3)  # grows past the block of 8
        _generate_case(student, "generate", model, 2, 11, 5, 0.9, None, 4)  # starts past it


# The KV cache (stretch) -----------------------------------------------------------------------------------------
def _counting(model: TinyGPT) -> list[int]:
    """Record how many positions each run of ``model`` processes (the width of every residual stream)."""
    widths: list[int] = []
    original: Callable[..., Any] = model.residual_stream

    def counted(ids: Any, caches: Any = None) -> Any:
        data = getattr(ids, "data", ids)
        widths.append(int(data.shape[1]) if hasattr(data, "shape") else len(data[0]))
        return original(ids, caches)

    model.residual_stream = counted  # type: ignore[method-assign]
    return widths


@EXERCISE.check(
    "stretch: generate_cached gives generate's tokens, running the prompt once and then one token at a time",
    stretch=True,
)
def cached(student: Student) -> None:
    with C.float64():
        model = _tiny_model()
        widths = _counting(model)
        batch, t, n = 2, 3, 5
        prompt = _prompt(batch, t, 30)
        want = _library_tokens(model, prompt, n, 0.9, 4, 6)
        widths.clear()
        got = _call_generate(student, "generate_cached", model, prompt, n, 0.9, 4, 6)
        _check_tokens(got, want, f"generate_cached(model, ids ({batch}, {t}), {n}, 0.9, 4, 6)", prompt, n)
        C.expect(
            bool(widths) and widths[0] == t and all(w == 1 for w in widths[1:]) and len(widths) >= n,
            f"generate_cached ran the model on {widths} positions per call; expected the prompt's {t} once, then "
            f"one position per new token ({[t] + [1] * (n - 1)})",
            CACHE_ONE,
        )
        # Past the block, the cache cannot hold everything: the uncached loop takes over.
        _generate_case(student, "generate_cached", model, 2, 6, 5, 1.0, None, 7)
