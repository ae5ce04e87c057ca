"""The transformer_block exercise: its planted bugs fail, naming the fault (its solution and starter: test_exercises.py)."""

from __future__ import annotations

from tests.course.helpers import (
    planted_bugs_fail,
)

NAME = "transformer_block"
ATTN = "        x = x + self.attn(self.ln1(x), cache=cache)\n"
MLP = "        return x + self.mlp(self.ln2(x))\n"
FORWARD = ATTN + MLP
MLP_FORWARD = "        return self.proj(self.act(self.fc(x)))\n"

# (what the student got wrong, text in the solution, the wrong version, words the failure must contain)
BUGS = [
    (
        "post-norm instead of pre-norm",
        FORWARD,
        "        x = self.ln1(x + self.attn(x, cache=cache))\n        return self.ln2(x + self.mlp(x))\n",
        "pre-norm: normalise what each sublayer reads",
    ),
    (
        "residual missing around attention",
        ATTN,
        "        x = self.attn(self.ln1(x), cache=cache)\n",
        "the residual is missing",
    ),
    (
        "residual missing around the MLP",
        MLP,
        "        return self.mlp(self.ln2(x))\n",
        "the residual is missing",
    ),
    (
        "ln1 reused for the MLP",
        MLP,
        "        return x + self.mlp(self.ln1(x))\n",
        "each branch has its own norm",
    ),
    (
        "one LayerNorm object for both branches",
        "        self.ln2 = LayerNorm(n_embd)\n",
        "        self.ln2 = self.ln1\n",
        "ln1 and ln2 are one LayerNorm",
    ),
    (
        "MLP width C instead of 4C",
        "        self.fc = Dense(n_embd, 4 * n_embd, rng=rng)\n        self.act = GELU()\n        self.proj = Dense(4 * n_embd, n_embd, rng=rng)\n",
        "        self.fc = Dense(n_embd, n_embd, rng=rng)\n        self.act = GELU()\n        self.proj = Dense(n_embd, n_embd, rng=rng)\n",
        "widens each position to 4C features",
    ),
    (
        "ReLU instead of GELU",
        MLP_FORWARD,
        "        return self.proj(self.fc(x).relu())\n",
        "GELU (self.act = GELU()), not ReLU",
    ),
    ("no activation", MLP_FORWARD, "        return self.proj(self.fc(x))\n", "apply the activation between"),
    (
        "activation after proj",
        MLP_FORWARD,
        "        return self.act(self.proj(self.fc(x)))\n",
        "between fc and proj",
    ),
    (
        "residual added to the normalised input",
        FORWARD,
        "        h = self.ln1(x)\n        x = h + self.attn(h, cache=cache)\n        h = self.ln2(x)\n        return h + self.mlp(h)\n",
        "not to the normalised input",
    ),
    (
        "MLP before attention",
        FORWARD,
        "        x = x + self.mlp(self.ln2(x))\n        return x + self.attn(self.ln1(x), cache=cache)\n",
        "attention comes first",
    ),
    (
        "both branches read the same x (parallel)",
        FORWARD,
        "        h = x + self.attn(self.ln1(x), cache=cache)\n        return h + self.mlp(self.ln2(x))\n",
        "after attention's change was added",
    ),
    (
        "cache not handed on",
        ATTN,
        "        x = x + self.attn(self.ln1(x))\n",
        "hand the cache on to the attention",
    ),
    (
        "the cache argument dropped",
        '    def forward(self, x: Tensor, cache: KVCache | None = None) -> Tensor:\n        """x (B, T, C) Tensor -> (B, T, C) Tensor: x + attn(ln1(x)), then x + mlp(ln2(x))."""\n'
        + ATTN,
        "    def forward(self, x: Tensor) -> Tensor:\n        x = x + self.attn(self.ln1(x))\n",
        "pass cache to self.attn",
    ),
    (
        "parts named otherwise",
        "        self.mlp = MLP(n_embd, rng=rng)\n",
        "        self.ff = MLP(n_embd, rng=rng)\n        self.mlp = self.ff\n",
        "name the parts as the library does",
    ),
    (
        "the residual stream leaves the graph",
        ATTN,
        "        x = Tensor.wrap(x.data) + self.attn(self.ln1(x), cache=cache)\n",
        "cut the autograd graph",
    ),
    (
        "the output leaves the graph",
        MLP,
        "        return Tensor.wrap((x + self.mlp(self.ln2(x))).data)\n",
        "does not require grad",
    ),
]


test_a_planted_bug_fails_naming_the_fault = planted_bugs_fail(NAME, BUGS)
