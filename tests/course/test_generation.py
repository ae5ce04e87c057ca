"""The generation exercise: its planted bugs fail, naming the fault (its solution and starter: test_exercises.py)."""

from __future__ import annotations

from tests.course.helpers import (
    grade_source,
    numpy_session,
    planted_bugs_fail,
    solution,
)
from tinygpt.course import registry
from tinygpt.course.notebooks import script

NAME = "generation"
KTH = "        kth = xp.sort(z, axis=-1, descending=True)[:, top_k - 1 : top_k]\n"
SOFTMAX = "    e = xp.exp(z - xp.max(z, axis=-1, keepdims=True))\n    return e / xp.sum(e, axis=-1, keepdims=True)\n"
DRAW = "    below = xp.sum(xp.astype(cdf < u, b.int_dtype), axis=-1)\n"
CROP = "            context = ids[:, max(0, ids.shape[1] - block) :]\n"
BODY = (
    "    z = logits / temperature\n    if top_k is not None and top_k < z.shape[-1]:\n"
    + KTH
    + "        z = xp.where(z < kth, -xp.inf, z)\n"
    + SOFTMAX
)
APPEND = "            ids = xp.concat([ids, xp.reshape(nxt, (-1, 1))], axis=1)\n"

# (what the student got wrong, text in the solution, the wrong version, words the failure must contain)
BUGS = [
    (
        "top-k keeps k + 1",
        KTH,
        KTH.replace("[:, top_k - 1 : top_k]", "[:, top_k : top_k + 1]"),
        "index k keeps k + 1",
    ),
    (
        "top-k keeps exactly k by position (ties dropped)",
        KTH + "        z = xp.where(z < kth, -xp.inf, z)\n",
        "        order = xp.argsort(z, axis=-1, descending=True, stable=True)\n"
        "        rank = xp.argsort(order, axis=-1, stable=True)\n"
        "        z = xp.where(rank < top_k, z, -xp.inf)\n",
        "tokens tied with the k-th value are all kept",
    ),
    (
        "top-k cut to a logit of 0, not -inf",
        "        z = xp.where(z < kth, -xp.inf, z)\n",
        "        z = xp.where(z < kth, 0.0, z)\n",
        "not 0",
    ),
    (
        "top-k indexing past V",
        "    if top_k is not None and top_k < z.shape[-1]:\n",
        "    if top_k is not None:\n",
        "top_k >= V keeps every token",
    ),
    ("temperature ignored", "    z = logits / temperature\n", "    z = logits\n", "use the temperature"),
    (
        "temperature applied after the softmax (power, not renormalised)",
        BODY,
        BODY.replace("    z = logits / temperature\n", "    z = logits\n").replace(
            "    return e / xp.sum(e, axis=-1, keepdims=True)\n",
            "    return (e / xp.sum(e, axis=-1, keepdims=True)) ** (1.0 / temperature)\n",
        ),
        "probabilities ** (1 / T) would need renormalising",
    ),
    (
        "temperature dividing the probabilities",
        BODY,
        BODY.replace("    z = logits / temperature\n", "    z = logits\n").replace(
            "    return e / xp.sum(e, axis=-1, keepdims=True)\n",
            "    return e / xp.sum(e, axis=-1, keepdims=True) / temperature\n",
        ),
        "not softmax(logits) / T",
    ),
    (
        "no max subtraction",
        SOFTMAX,
        SOFTMAX.replace("xp.exp(z - xp.max(z, axis=-1, keepdims=True))", "xp.exp(z)"),
        "subtract each row's maximum",
    ),
    ("softmax over the batch axis", SOFTMAX, SOFTMAX.replace("axis=-1", "axis=0"), "over the last axis"),
    (
        "argmax always",
        "    probs = next_token_probs(logits, temperature, top_k)\n",
        "    return xp.astype(xp.argmax(logits, axis=-1), b.int_dtype)\n",
        "the argmax (the most likely token) is for temperature == 0 only",
    ),
    (
        "sampling from the logits instead of the probabilities",
        "    cdf = xp.cumulative_sum(probs, axis=-1)\n",
        "    cdf = xp.cumulative_sum(logits, axis=-1)\n",
        "not from the logits",
    ),
    (
        "no cap at V - 1",
        "    return xp.minimum(below, logits.shape[-1] - 1)\n",
        "    return below\n",
        "cap the id at V - 1",
    ),
    ("a boundary u counted as below", DRAW, DRAW.replace("cdf < u", "cdf <= u"), "strictly below u"),
    ("off by one in the draw", DRAW, DRAW.replace("axis=-1)\n", "axis=-1) + 1\n"), "not one more"),
    (
        "temperature 0 divides by zero",
        "    if temperature == 0:\n        return xp.astype(xp.argmax(logits, axis=-1), b.int_dtype)\n",
        "",
        "temperature == 0 means greedy",
    ),
    (
        "two draws per call",
        "    u = rng.uniform((logits.shape[0], 1))\n",
        "    rng.uniform((1,))\n    u = rng.uniform((logits.shape[0], 1))\n",
        "exactly one uniform number per row and call",
    ),
    ("no context crop", CROP, "            context = ids\n", "crop the context"),
    (
        "crop keeps the first block",
        CROP,
        "            context = ids[:, :block]\n",
        "the *last* block_size tokens",
    ),
    (
        "crop one token short",
        CROP,
        "            context = ids[:, max(0, ids.shape[1] - block + 1) :]\n",
        "the last block_size tokens, all of them",
    ),
    ("the new token not appended", APPEND, "", "append each new token to ids"),
    (
        "the new token appended to the cropped context",
        CROP
        + "            logits = model(context).data[:, -1, :]\n            nxt = sample_next(logits, temperature, top_k, rng)\n"
        + APPEND,
        CROP
        + "            logits = model(context).data[:, -1, :]\n            nxt = sample_next(logits, temperature, top_k, rng)\n"
        "            ids = xp.concat([context, xp.reshape(nxt, (-1, 1))], axis=1)\n",
        "crop only what the model sees",
    ),
    (
        "the first position's logits",
        "            logits = model(context).data[:, -1, :]\n",
        "            logits = model(context).data[:, 0, :]\n",
        "the last position's",
    ),
    (
        "a new generator every step",
        "            nxt = sample_next(logits, temperature, top_k, rng)\n",
        "            nxt = sample_next(logits, temperature, top_k, backend.Generator(seed))\n",
        "make the generator once",
    ),
    (
        "the KV cache fed the whole sequence again",
        "                logits = model.next_token_logits(nxt, caches).data\n",
        "                logits = model.next_token_logits(ids, caches).data\n",
        "feed only the new token",
    ),
    (
        "the KV cache without the fallback past the block",
        "    if ids.shape[1] + max_new_tokens > model.config.block_size:\n",
        "    if False:\n",
        "a cache holds block_size positions",
    ),
]


@numpy_session
def test_the_kv_cache_is_a_stretch_skipped_while_not_written(tmp_path):
    # The solution with the starter's generate_cached: the exercise passes, the stretch says it was skipped.
    written, stub = solution(NAME), script(registry.get(NAME))
    head = "def generate_cached("
    body = stub[stub.index(head) : stub.index("# %% [markdown]", stub.index(head))]
    source = (
        written[: written.index(head)]
        + body
        + written[written.index("# %% [markdown]", written.index(head)) :]
    )
    verdict = grade_source(NAME, source, tmp_path)
    assert verdict.passed, verdict.report()
    assert verdict.results[-1].note == "skipped (stretch): generate_cached is not written yet (optional)"


test_a_planted_bug_fails_naming_the_fault = planted_bugs_fail(NAME, BUGS)
