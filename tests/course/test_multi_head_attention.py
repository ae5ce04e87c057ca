"""The multi_head_attention exercise: its planted bugs fail, naming the fault (its solution and starter: test_exercises.py)."""

from __future__ import annotations

from tests.course.helpers import (
    fails_only_the_milestone,
    numpy_session,
    plant,
    planted_bugs_fail,
    solution,
)

NAME = "multi_head_attention"
SPLIT = "    return xp.permute_dims(xp.reshape(x, (bsz, t, n_head, c // n_head)), (0, 2, 1, 3))\n"
MERGE = "    return xp.reshape(xp.permute_dims(y, (0, 2, 1, 3)), (bsz, t, h * d))\n"
WHERE = "    return xp.where(cols <= rows, zeros, xp.full((t, t), -math.inf, dtype=b.float_dtype, device=b.device))\n"
SCALE = "    scale = 1.0 / math.sqrt(q.shape[-1])\n    scores = xp.matmul(q, xp.matrix_transpose(k)) * scale  # (B, H, T, T)\n"
PROBS = "    probs = softmax(scores + causal_mask(q.shape[-2]))\n"
QKV = (
    "    q = split_heads(qkv[:, :, :c], n_head)  # (B, H, T, D)\n"
    "    k = split_heads(qkv[:, :, c : 2 * c], n_head)\n"
    "    v = split_heads(qkv[:, :, 2 * c :], n_head)\n"
)
GV = "    gv = xp.matmul(xp.matrix_transpose(probs), gy)\n"
GS = "    gs = probs * (gp - xp.sum(gp * probs, axis=-1, keepdims=True))\n"
GQ_GK = "    gq = xp.matmul(gs, k) * scale\n    gk = xp.matmul(xp.matrix_transpose(gs), q) * scale\n"
LAYOUT = "    return (xp.concat([merge_heads(gq), merge_heads(gk), merge_heads(gv)], axis=-1),)\n"
CACHE = "    q, k, v, probs = cache\n"

# (what the student got wrong, text in the solution, the wrong version, words the failure must contain)
BUGS = [
    # Heads.
    (
        "heads split by a reshape without the transpose",
        SPLIT,
        "    return xp.reshape(x, (bsz, n_head, t, c // n_head))\n",
        "a reshape straight to (B, H, T, D) cuts the sequence",
    ),
    (
        "heads split along the wrong axis (every H-th feature)",
        SPLIT,
        "    return xp.permute_dims(xp.reshape(x, (bsz, t, c // n_head, n_head)), (0, 3, 1, 2))\n",
        "not every H-th feature",
    ),
    (
        "heads merged by a reshape without the transpose",
        MERGE,
        "    return xp.reshape(y, (bsz, t, h * d))\n",
        "move the head axis back first",
    ),
    # The forward pass.
    (
        "missing 1/sqrt(d) in the forward",
        SCALE,
        SCALE.replace(" * scale  #", "  #"),
        "divide the scores by sqrt(D)",
    ),
    (
        "1/sqrt(C) instead of 1/sqrt(D)",
        "    scale = 1.0 / math.sqrt(q.shape[-1])\n    scores",
        "    scale = 1.0 / math.sqrt(c)\n    scores",
        "not sqrt(C)",
    ),
    (
        "causal mask off by one (diagonal masked)",
        WHERE,
        WHERE.replace("cols <= rows", "cols < rows"),
        "a query sees itself",
    ),
    (
        "causal mask off by one (one future position)",
        WHERE,
        WHERE.replace("cols <= rows", "cols <= rows + 1"),
        "lets one future position in",
    ),
    ("no mask", PROBS, "    probs = softmax(scores)\n", "query i reads keys j > i (the future)"),
    (
        "softmax over the queries",
        PROBS,
        "    s = scores + causal_mask(q.shape[-2])\n"
        "    e = xp.exp(s - xp.max(s, axis=-2, keepdims=True))\n"
        "    probs = e / xp.sum(e, axis=-2, keepdims=True)\n",
        "the softmax runs over the keys",
    ),
    (
        "k and v swapped in the qkv layout",
        QKV,
        QKV.replace(":, c : 2 * c]", ":, TMP]")
        .replace(":, 2 * c :]", ":, c : 2 * c]")
        .replace("TMP", "2 * c :"),
        "laid out [q | k | v]",
    ),
    # The backward pass.
    (
        "missing 1/sqrt(d) in the backward",
        GQ_GK,
        GQ_GK.replace(" * scale", ""),
        "multiplied by 1/sqrt(D) too",
    ),
    ("softmax backward missing the -p*sum(p*g) term", GS, "    gs = probs * gp\n", "misses its second term"),
    (
        "mask missing in the backward (weights recomputed without it)",
        CACHE,
        "    q, k, v, _ = cache\n"
        "    probs = softmax(xp.matmul(q, xp.matrix_transpose(k)) / math.sqrt(q.shape[-1]))\n",
        "weights recomputed without the mask",
    ),
    (
        "dv and dk swapped",
        LAYOUT,
        LAYOUT.replace("merge_heads(gk), merge_heads(gv)", "merge_heads(gv), merge_heads(gk)"),
        "dk before dv",
    ),
    (
        "dq and dk swapped",
        LAYOUT,
        LAYOUT.replace("merge_heads(gq), merge_heads(gk)", "merge_heads(gk), merge_heads(gq)"),
        "dq first",
    ),
    (
        "gk without the transpose",
        GQ_GK,
        GQ_GK.replace("xp.matmul(xp.matrix_transpose(gs), q)", "xp.matmul(gs, q)"),
        "transpose gs",
    ),
    ("gv without the transpose", GV, "    gv = xp.matmul(probs, gy)\n", "transpose probs"),
    (
        "a bare array instead of a tuple",
        LAYOUT,
        "    return xp.concat([merge_heads(gq), merge_heads(gk), merge_heads(gv)], axis=-1)\n",
        "(mind the comma)",
    ),
]


test_a_planted_bug_fails_naming_the_fault = planted_bugs_fail(NAME, BUGS)


@numpy_session
def test_a_cache_kept_in_a_global_fails_only_the_milestone(tmp_path):
    # Right when backward follows its own forward at once (the unit checks), wrong inside a model,
    # where both attention layers run forward before either runs backward.
    source = plant(
        solution(NAME),
        "    return merge_heads(xp.matmul(probs, v)), (q, k, v, probs)\n",
        "    global LAST\n    LAST = (q, k, v, probs)\n    return merge_heads(xp.matmul(probs, v)), None\n",
    )
    source = plant(source, CACHE, "    q, k, v, probs = LAST\n")
    fails_only_the_milestone(
        NAME, source, tmp_path, "the gradient of blocks.0.attn.qkv", "state kept between calls"
    )
