"""PyTorch reference of the tinygpt model and training procedure.

Why this exists: tinygpt is written from scratch on the Array API, so we need an
independent implementation of *exactly* the same architecture, initialisation,
loss, optimiser and schedule to (a) check that tinygpt reaches the same
validation loss and (b) serve as the speed baseline in benchmarks. PyTorch is an
optional benchmark dependency; the tinygpt library never imports this file.

Run ``python scripts/torch_reference.py --help`` for the command line; import it
for ``TorchGPT``, ``train``, ``evaluate_full``, ``load_tinygpt_state`` and
``export_tinygpt_state``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------


@dataclass
class GPTConfig:
    """Model hyperparameters; the same fields and defaults as tinygpt's config."""

    vocab_size: int
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    positional: str = "learned"  # "learned" or "sinusoidal"

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}; "
                "pick n_embd as a multiple of n_head"
            )
        if self.positional not in ("learned", "sinusoidal"):
            raise ValueError(f"positional={self.positional!r} is unknown; use 'learned' or 'sinusoidal'")


def sinusoidal_table(block_size: int, n_embd: int) -> torch.Tensor:
    """Fixed sin/cos position table: pe[p, 2i] = sin(p / 10000^(2i/C)), pe[p, 2i+1] = cos."""
    pos = torch.arange(block_size, dtype=torch.float64)[:, None]  # (T, 1)
    two_i = torch.arange(0, n_embd, 2, dtype=torch.float64)  # (ceil(C/2),)
    angle = pos / (10000.0 ** (two_i / n_embd))  # (T, ceil(C/2))
    pe = torch.zeros(block_size, n_embd, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : n_embd // 2])  # odd C: one fewer cos column
    return pe.float()


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position t only sees positions <= t."""

    def __init__(self, config: GPTConfig, fused_sdpa: bool = False) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.dropout = config.dropout
        self.fused_sdpa = fused_sdpa
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=True)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=True)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        # True above the diagonal = a future position that must not be attended to.
        future = torch.triu(torch.ones(config.block_size, config.block_size, dtype=torch.bool), 1)
        self.register_buffer("future", future, persistent=False)  # (Tmax, Tmax)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend over the past (B, T, C) -> (B, T, C)."""
        B, T, C = x.shape
        H = self.n_head
        D = C // H
        q, k, v = self.qkv(x).split(C, dim=-1)  # 3 x (B, T, C), q first
        q = q.view(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        v = v.view(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        if self.fused_sdpa:
            y = F.scaled_dot_product_attention(
                q,
                k,
                v,
                is_causal=True,
                dropout_p=self.dropout if self.training else 0.0,
            )  # (B, H, T, D)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(D))  # (B, H, T, T)
            # -inf before softmax gives exactly zero weight to future tokens.
            att = att.masked_fill(self.future[:T, :T], float("-inf"))
            att = F.softmax(att, dim=-1)
            att = self.attn_dropout(att)
            y = att @ v  # (B, H, T, D)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.resid_dropout(self.proj(y))


class MLP(nn.Module):
    """Position-wise feed-forward: Linear(C, 4C) -> GELU(tanh) -> Linear(4C, C)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=True)
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=True)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, T, C)."""
        h = F.gelu(self.fc(x), approximate="tanh")  # (B, T, 4C)
        return self.dropout(self.proj(h))


class Block(nn.Module):
    """Pre-norm transformer block; normalising before each sublayer keeps the residual path clean."""

    def __init__(self, config: GPTConfig, fused_sdpa: bool = False) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd, eps=1e-5)
        self.attn = CausalSelfAttention(config, fused_sdpa=fused_sdpa)
        self.ln2 = nn.LayerNorm(config.n_embd, eps=1e-5)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, T, C)."""
        x = x + self.attn(self.ln1(x))
        x = x + self.mlp(self.ln2(x))
        return x


class TorchGPT(nn.Module):
    """The tinygpt architecture in PyTorch: token (+ position) embeddings, blocks, tied LM head."""

    def __init__(self, config: GPTConfig, fused_sdpa: bool = False) -> None:
        super().__init__()
        self.config = config
        C = config.n_embd
        self.wte = nn.Embedding(config.vocab_size, C)
        if config.positional == "learned":
            self.wpe = nn.Embedding(config.block_size, C)
        else:
            self.wpe = None
            # A buffer, not a parameter: it is neither trained nor saved.
            self.register_buffer("pe", sinusoidal_table(config.block_size, C), persistent=False)
        self.blocks = nn.ModuleList([Block(config, fused_sdpa=fused_sdpa) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(C, eps=1e-5)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2 init; residual projections are scaled down so the residual stream's variance stays O(1) with depth."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        resid_std = 0.02 / math.sqrt(2 * self.config.n_layer)
        for block in self.blocks:
            nn.init.normal_(block.attn.proj.weight, mean=0.0, std=resid_std)
            nn.init.normal_(block.mlp.proj.weight, mean=0.0, std=resid_std)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Token ids (B, T) -> next-token logits (B, T, V)."""
        T = idx.shape[1]
        if T > self.config.block_size:
            raise ValueError(
                f"sequence length {T} exceeds block_size={self.config.block_size}; "
                "crop the input to the last block_size tokens"
            )
        x = self.wte(idx)  # (B, T, C)
        if self.wpe is not None:
            x = x + self.wpe(torch.arange(T, device=idx.device))  # (T, C) broadcast
        else:
            x = x + self.pe[:T]  # (T, C) broadcast
        for block in self.blocks:
            x = block(x)  # (B, T, C)
        x = self.ln_f(x)  # (B, T, C)
        return x @ self.wte.weight.T  # (B, T, V), weights tied to the embedding

    def num_parameters(self) -> int:
        """Number of trainable parameters, the tied embedding counted once."""
        return sum(p.numel() for p in self.parameters())


def lm_loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of logits[:, :-1] against tokens[:, 1:]; the only place the shift happens."""
    V = logits.shape[-1]
    pred = logits[:, :-1, :].reshape(-1, V)  # (B*(T-1), V)
    target = tokens[:, 1:].reshape(-1)  # (B*(T-1),)
    return F.cross_entropy(pred, target)


# ---------------------------------------------------------------------------
# tinygpt weights <-> torch weights
# ---------------------------------------------------------------------------


def _linear_weight_names(model: TorchGPT) -> set[str]:
    """Names of nn.Linear weights: tinygpt stores these as (in, out), torch as (out, in)."""
    return {f"{name}.weight" for name, module in model.named_modules() if isinstance(module, nn.Linear)}


def load_tinygpt_state(model: TorchGPT, state: dict[str, np.ndarray]) -> None:
    """Copy a tinygpt state dict (same names, Dense weights as (in, out)) into the torch model."""
    own = dict(model.named_parameters())
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise KeyError(
            f"state does not match the model: missing {missing}, unexpected {unexpected}; "
            "check that the configs (n_layer, positional) agree"
        )
    transposed = _linear_weight_names(model)
    with torch.no_grad():
        for name, param in own.items():
            value = np.asarray(state[name], dtype=np.float32)
            if name in transposed:
                value = value.T  # (in, out) -> (out, in)
            if tuple(value.shape) != tuple(param.shape):
                raise ValueError(
                    f"{name}: got shape {tuple(value.shape)} after layout change, "
                    f"model expects {tuple(param.shape)}"
                )
            param.copy_(torch.from_numpy(np.ascontiguousarray(value)))


def export_tinygpt_state(model: TorchGPT) -> dict[str, np.ndarray]:
    """The model's parameters as a tinygpt state dict: float32 NumPy, Dense weights as (in, out)."""
    transposed = _linear_weight_names(model)
    state = {}
    for name, param in model.named_parameters():
        value = param.detach().cpu().numpy().astype(np.float32)
        if name in transposed:
            value = np.ascontiguousarray(value.T)  # (out, in) -> (in, out)
        state[name] = value
    return state


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


def encode_text(text: str, val_fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Character-level ids of text split into (train, val) exactly as tinygpt splits it."""
    from tinygpt.data import split_text

    text = text.replace("\r\n", "\n")
    vocab = sorted(set(text))
    index = {ch: i for i, ch in enumerate(vocab)}
    train_text, val_text = split_text(text, val_fraction)

    def encode(part: str) -> np.ndarray:
        return np.fromiter((index[ch] for ch in part), dtype=np.int64, count=len(part))

    return encode(train_text), encode(val_text), vocab


def load_shakespeare_text() -> str:
    """The same Shakespeare text tinygpt trains on (``tinygpt.data.shakespeare_text``)."""
    from tinygpt.data import shakespeare_text

    return shakespeare_text()


def load_shakespeare_ids() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(train_ids, val_ids, vocab) of the Shakespeare corpus, 90% / 10% split."""
    return encode_text(load_shakespeare_text())


def load_text_ids(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(train_ids, val_ids, vocab) of any UTF-8 text file, 90% / 10% split."""
    text = Path(path).read_bytes().decode("utf-8")
    if not text:
        raise ValueError(f"{path} is empty; give a non-empty UTF-8 text file")
    return encode_text(text)


def sample_windows(
    ids: np.ndarray, block_size: int, batch_size: int, rng: np.random.Generator
) -> torch.Tensor:
    """batch_size windows ids[i : i + block_size], i uniform in [0, len(ids) - block_size]."""
    if len(ids) < block_size:
        raise ValueError(f"only {len(ids)} tokens but block_size={block_size}; use a longer text")
    starts = rng.integers(0, len(ids) - block_size, size=batch_size, endpoint=True)
    windows = np.stack([ids[i : i + block_size] for i in starts])  # (B, T)
    return torch.from_numpy(windows.astype(np.int64))


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


def lr_at(it: int, lr: float, min_lr: float, warmup_iters: int, max_iters: int) -> float:
    """nanoGPT schedule: linear warmup, cosine decay from lr to min_lr, then min_lr."""
    if it < warmup_iters:
        return lr * (it + 1) / (warmup_iters + 1)
    if it > max_iters:
        return min_lr
    ratio = (it - warmup_iters) / max(1, max_iters - warmup_iters)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


def make_optimizer(
    model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float]
) -> torch.optim.AdamW:
    """AdamW that decays matrices (weights, embeddings) but not biases or LayerNorm gains."""
    params = list(model.parameters())  # tied weight appears once
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=1e-8)


@torch.no_grad()
def estimate_loss(
    model: TorchGPT,
    ids: np.ndarray,
    batch_size: int,
    eval_iters: int,
    rng: np.random.Generator,
) -> float:
    """Mean lm_loss over eval_iters random batches of windows (a cheap, noisy estimate)."""
    was_training = model.training
    model.eval()
    T = model.config.block_size
    losses = [
        lm_loss(model(x), x).item()
        for x in (sample_windows(ids, T, batch_size, rng) for _ in range(eval_iters))
    ]
    model.train(was_training)
    return float(np.mean(losses))


@torch.no_grad()
def evaluate_full(model: TorchGPT, ids: np.ndarray, block_size: int, batch_size: int = 64) -> float:
    """Exact loss over every non-overlapping window ids[k*T : k*T + T], averaged over all predictions."""
    was_training = model.training
    model.eval()
    n_windows = len(ids) // block_size
    if n_windows == 0:
        raise ValueError(f"only {len(ids)} tokens, fewer than one window of {block_size}")
    windows = np.asarray(ids[: n_windows * block_size], dtype=np.int64).reshape(
        n_windows, block_size
    )  # (N, T)
    total = 0.0
    for start in range(0, n_windows, batch_size):
        x = torch.from_numpy(windows[start : start + batch_size])  # (b, T)
        # Every window has T-1 predictions, so weighting by window count is exact.
        total += lm_loss(model(x), x).double().item() * x.shape[0]
    model.train(was_training)
    return total / n_windows


def train(
    config: GPTConfig,
    train_ids: np.ndarray,
    val_ids: np.ndarray,
    *,
    batch_size: int = 12,
    max_iters: int = 2000,
    lr: float = 1e-3,
    min_lr: float = 1e-4,
    warmup_iters: int = 100,
    weight_decay: float = 0.1,
    beta1: float = 0.9,
    beta2: float = 0.99,
    grad_clip: float = 1.0,
    eval_interval: int = 250,
    eval_iters: int = 50,
    seed: int = 1337,
    threads: int | None = None,
    fused_sdpa: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
    """Train a TorchGPT with the tinygpt recipe; returns losses, timings and the eval log.

    eval_iters counts batches of batch_size windows (as in nanoGPT); each eval
    reuses the same windows per iteration number, drawn from their own generator,
    so eval settings never change the training batches. ms_per_iter is the median
    time of a training step (batch, forward, backward, clip, update), evals
    excluded. The trained model is returned under "model".
    """
    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)  # init and dropout
    batch_rng = np.random.default_rng(seed)  # training windows
    T = config.block_size

    model = TorchGPT(config, fused_sdpa=fused_sdpa)
    model.train()
    optimizer = make_optimizer(model, lr, weight_decay, (beta1, beta2))
    log(
        f"torch {torch.__version__}: {model.num_parameters():,} parameters, "
        f"{torch.get_num_threads()} threads, "
        f"{'fused sdpa' if fused_sdpa else 'explicit'} attention"
    )

    evals: list[dict] = []

    def run_eval(it: int) -> None:
        # Separate generators so eval settings never change the training batches.
        eval_rng = np.random.default_rng([seed, it])
        train_loss = estimate_loss(model, train_ids, batch_size, eval_iters, eval_rng)
        val_loss = estimate_loss(model, val_ids, batch_size, eval_iters, eval_rng)
        evals.append({"iter": it, "train_loss": train_loss, "val_loss": val_loss})
        log(f"iter {it:5d}: train loss {train_loss:.4f}, val loss {val_loss:.4f}")

    step_times: list[float] = []
    t_start = time.perf_counter()
    for it in range(max_iters):
        if eval_interval > 0 and it % eval_interval == 0:
            run_eval(it)
        t0 = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = lr_at(it, lr, min_lr, warmup_iters, max_iters)
        x = sample_windows(train_ids, T, batch_size, batch_rng)  # (B, T)
        loss = lm_loss(model(x), x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        step_times.append(time.perf_counter() - t0)
    run_eval(max_iters)
    val_full = evaluate_full(model, val_ids, T)
    wall_s = time.perf_counter() - t_start
    ms_per_iter = 1000.0 * statistics.median(step_times) if step_times else 0.0
    log(
        f"full validation loss {val_full:.4f} over {len(val_ids) // T} windows; "
        f"{ms_per_iter:.2f} ms/iter (median), {wall_s:.1f} s wall"
    )
    return {
        "final_val_loss_full": val_full,
        "final_train_loss": evals[-1]["train_loss"],
        "final_val_loss": evals[-1]["val_loss"],
        "ms_per_iter": ms_per_iter,
        "wall_s": wall_s,
        "evals": evals,
        "num_parameters": model.num_parameters(),
        "threads": torch.get_num_threads(),
        "fused_sdpa": fused_sdpa,
        "torch_version": torch.__version__,
        "config": asdict(config),
        "model": model,
    }


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line options; defaults are the tinygpt defaults."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--text", help="UTF-8 text file (default: the Shakespeare plays)")
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-embd", type=int, default=128)
    p.add_argument("--block-size", type=int, default=64)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--positional", choices=["learned", "sinusoidal"], default="learned")
    p.add_argument("--batch-size", type=int, default=12)
    p.add_argument("--max-iters", type=int, default=2000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--min-lr", type=float, default=1e-4)
    p.add_argument("--warmup-iters", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.99)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--eval-interval", type=int, default=250)
    p.add_argument("--eval-iters", type=int, default=50)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--threads", type=int, default=None)
    attn = p.add_mutually_exclusive_group()
    attn.add_argument(
        "--sdpa",
        action="store_true",
        help="use F.scaled_dot_product_attention instead of matmul+mask+softmax",
    )
    attn.add_argument(
        "--compare-sdpa",
        action="store_true",
        help="train twice, explicit then fused attention, and report both",
    )
    p.add_argument("--json", action="store_true", help="print one final JSON line")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Train the reference model from the command line."""
    args = parse_args(argv)
    if args.text:
        train_ids, val_ids, vocab = load_text_ids(args.text)
        source = args.text
    else:
        train_ids, val_ids, vocab = load_shakespeare_ids()
        source = "shakespeare"
    log = (lambda s: print(s, file=sys.stderr, flush=True)) if args.json else print
    log(f"corpus {source}: {len(train_ids):,} train / {len(val_ids):,} val tokens, vocab {len(vocab)}")
    config = GPTConfig(
        vocab_size=len(vocab),
        block_size=args.block_size,
        n_layer=args.n_layer,
        n_head=args.n_head,
        n_embd=args.n_embd,
        dropout=args.dropout,
        positional=args.positional,
    )
    hparams = {
        "batch_size": args.batch_size,
        "max_iters": args.max_iters,
        "lr": args.lr,
        "min_lr": args.min_lr,
        "warmup_iters": args.warmup_iters,
        "weight_decay": args.weight_decay,
        "beta1": args.beta1,
        "beta2": args.beta2,
        "grad_clip": args.grad_clip,
        "eval_interval": args.eval_interval,
        "eval_iters": args.eval_iters,
        "seed": args.seed,
        "threads": args.threads,
    }
    variants = [False, True] if args.compare_sdpa else [args.sdpa]
    results = {}
    for fused in variants:
        result = train(config, train_ids, val_ids, fused_sdpa=fused, log=log, **hparams)
        result.pop("model")
        result["hparams"] = hparams
        results["sdpa" if fused else "explicit"] = result
    if args.compare_sdpa:
        for name, r in results.items():
            log(f"{name:8s}: {r['ms_per_iter']:.2f} ms/iter, full val loss {r['final_val_loss_full']:.4f}")
    if args.json:
        out = results if args.compare_sdpa else next(iter(results.values()))
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
