"""Sampling speed with and without the KV cache, on the ``bigger`` config at block 256.

The classic loop re-runs the last ``block_size`` tokens for every new one; the
cache runs one position. Same model, same seed, tokens per second.
"""

from __future__ import annotations

import time

from benchmarks.common import CONFIGS, VOCAB, run_worker


def worker_sampling(tokens: int) -> dict:
    import tinygpt as tg
    from tinygpt import backend
    from tinygpt.generation import generate

    n_layer, n_head, n_embd, block, _, _ = CONFIGS["bigger"]
    backend.manual_seed(0)
    model = tg.TinyGPT(tg.GPTConfig(VOCAB, block, n_layer, n_head, n_embd))
    result = {}
    for cached in (True, False):
        t0 = time.perf_counter()
        generate(model, [[0]], tokens, seed=1, use_cache=cached)
        result["cached" if cached else "uncached"] = tokens / (time.perf_counter() - t0)
    return result


def measure(tokens: int, backend: str, device: str) -> dict:
    """Tokens/s cached and uncached, in a fresh process, and their ratio."""
    result = run_worker(["sampling", str(tokens)], backend, device)
    result["speedup"] = result["cached"] / result["uncached"]
    return result


def describe(result: dict, tokens: int, backend: str) -> str:
    return (
        f"sampling {tokens} tokens at block 256 on {backend}: cached {result['cached']:.0f} tok/s, "
        f"uncached {result['uncached']:.0f} tok/s, speed-up {result['speedup']:.1f}x"
    )


WORKERS = {"sampling": lambda tokens: worker_sampling(int(tokens))}
