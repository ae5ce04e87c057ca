"""Peak resident memory of loading GPT-2 (124M) weights: tinygpt vs transformers, each in a fresh process.

Random weights of gpt2's shape are saved by transformers once; each side then loads the
same directory (``tinygpt.load_model`` / ``GPT2LMHeadModel.from_pretrained``) and runs
one forward pass, since transformers maps the file lazily. ``--gpt2-load``.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from benchmarks.common import SCRIPTS, machine, peak_mb, rss_mb, run_worker

SIDES = ("tinygpt", "transformers")


def worker_gpt2_load(side: str, path: str) -> dict:
    """Load ``path`` on ``side``: seconds, resident memory before, peak after loading and after one forward."""
    if side == "tinygpt":
        from tinygpt import load_model

        load = load_model
    else:
        import torch
        from transformers import GPT2LMHeadModel

        load = GPT2LMHeadModel.from_pretrained
    before, start = rss_mb(), time.perf_counter()
    model = load(path)
    seconds, loaded = time.perf_counter() - start, peak_mb()
    ids = [list(range(8))]
    if side == "tinygpt":
        model(ids)
    else:
        with torch.no_grad():
            model(torch.tensor(ids))  # transformers maps the file lazily: a forward pass touches every weight
    return {"seconds": seconds, "base_mb": before, "peak_mb": loaded, "peak_after_forward_mb": peak_mb()}


def run(as_json: bool) -> None:
    """Write the weights once, load them on each side in its own process, print the table."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        GPT2LMHeadModel(GPT2Config()).save_pretrained(tmp)  # gpt2's shape: 12 x 768, 50257 tokens
        weights_mb = (Path(tmp) / "model.safetensors").stat().st_size / 2**20
        env = {"PYTHONPATH": str(SCRIPTS.parent), "HF_HUB_OFFLINE": "1"}
        report = {"machine": machine(), "weights_mb": weights_mb}
        for side in SIDES:
            report[side] = run_worker(["gpt2-load", side, tmp], env=env)
    if as_json:
        print(json.dumps(report))
        return
    print(f"machine: {report['machine']}; gpt2 (124M) random weights, model.safetensors {weights_mb:.0f} MB")
    print(f"{'side':<14} {'load s':>7} {'RSS before MB':>14} {'peak RSS MB':>12} {'+ 1 forward':>12}")
    for side in SIDES:
        r = report[side]
        print(
            f"{side:<14} {r['seconds']:>7.2f} {r['base_mb']:>14.0f} {r['peak_mb']:>12.0f} "
            f"{r['peak_after_forward_mb']:>12.0f}"
        )


WORKERS = {"gpt2-load": worker_gpt2_load}
