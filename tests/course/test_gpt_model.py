"""The gpt_model exercise: its planted bugs fail, naming the fault (its solution and starter: test_exercises.py)."""

from __future__ import annotations

from tests.course.helpers import (
    fails_only_the_milestone,
    numpy_session,
    plant,
    planted_bugs_fail,
    solution,
)

NAME = "gpt_model"
EMBED = "        x = self.wte(ids) + self.wpe(positions)  # (B, T, C) + (T, C)\n"
LOOP = "        for block in self.blocks:\n            x = block(x)\n"
LN_F = "        x = self.ln_f(x)\n"
HEAD = "        return x @ self.wte.weight.T  # (B, T, C) @ (C, V): the tied head\n"
CHECK = "        if t > self.config.block_size:\n"
REFUSAL = (
    CHECK
    + """            raise ValueError(
                f"{t} tokens exceed block_size={self.config.block_size}; crop the prompt to its last "
                f"{self.config.block_size} tokens"
            )
"""
)
BLOCKS = "        self.blocks = [TransformerBlock(c.n_embd, c.n_head, rng=rng) for _ in range(c.n_layer)]\n"

# (what the student got wrong, text in the solution, the wrong version, words the failure must contain)
BUGS = [
    ("positions not added", EMBED, "        x = self.wte(ids)\n", "add the position vectors"),
    ("positions indexed from 1", "b.xp.arange(t, ", "b.xp.arange(1, t + 1, ", "positions start at 0"),
    (
        "positions read from wte",
        EMBED,
        "        x = self.wte(ids) + self.wte(positions)\n",
        "their own table",
    ),
    ("final LayerNorm missing", LN_F, "", "apply the final layer norm"),
    ("final LayerNorm before the blocks", EMBED + LOOP + LN_F, EMBED + LN_F + LOOP, "comes after the blocks"),
    (
        "untied head",
        "        self.ln_f = LayerNorm(c.n_embd)\n",
        "        self.ln_f = LayerNorm(c.n_embd)\n        self.head = Embedding(c.vocab_size, c.n_embd, rng=rng)\n",
        "the head is tied",
    ),
    (
        "wrong transpose in the head",
        HEAD,
        "        return x @ self.wte.weight\n",
        "x @ self.wte.weight.T: (B, T, C) @ (C, V)",
    ),
    (
        "blocks applied in reverse",
        "        for block in self.blocks:\n",
        "        for block in self.blocks[::-1]:\n",
        "apply the blocks in order",
    ),
    (
        "only the first block",
        "        for block in self.blocks:\n",
        "        for block in self.blocks[:1]:\n",
        "apply every block",
    ),
    (
        "each block reads the embeddings",
        LOOP + LN_F,
        "        for block in self.blocks:\n            y = block(x)\n        x = self.ln_f(y)\n",
        "feed each block the previous block's output",
    ),
    (
        "one block repeated",
        BLOCKS,
        "        self.blocks = [TransformerBlock(c.n_embd, c.n_head, rng=rng)] * c.n_layer\n",
        "blocks, each its own",
    ),
    ("a long prompt not refused", REFUSAL, "", "so refuse it with a ValueError"),
    (
        "a long prompt cropped silently",
        REFUSAL,
        CHECK + "            ids = ids[:, -self.config.block_size :]\n            t = ids.shape[1]\n",
        "there is no position vector for 9 tokens",
    ),
    ("refusal off by one", CHECK, "        if t >= self.config.block_size:\n", "refuse only T > block_size"),
    (
        "head cut from the graph",
        HEAD,
        "        return x @ Tensor.wrap(self.wte.weight.data).T\n",
        "the head's gradient does not reach wte",
    ),
    (
        "lookup cut from the graph",
        EMBED,
        "        x = Tensor.wrap(self.wte(ids).data) + self.wpe(positions)\n",
        "the lookup's gradient does not reach wte",
    ),
]


test_a_planted_bug_fails_naming_the_fault = planted_bugs_fail(NAME, BUGS)


@numpy_session
def test_the_milestone_trains_the_students_model(tmp_path):
    # Right on the checks' small batches, the head cut from the graph on the milestone's batch of 16:
    # only the milestone, which runs the student's own model (not the library's), notices.
    source = plant(
        solution(NAME),
        HEAD,
        "        if ids.shape[0] == 16:\n            return x @ Tensor.wrap(self.wte.weight.data).T\n" + HEAD,
    )
    fails_only_the_milestone(NAME, source, tmp_path)
