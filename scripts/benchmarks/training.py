"""The training step: tinygpt on each backend vs PyTorch eager on the same model (``bench.py``, ``--gpu``).

Median milliseconds per training step (forward + backward + clip + AdamW) and peak
memory the step adds (above the process after imports, model construction and a
first matmul, so BLAS's own buffers are not counted; on a GPU, what the memory pool
took), each side in its own process, alternated, best of ``--repeat``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

from benchmarks import sampling
from benchmarks.common import CONFIGS, SCRIPTS, VOCAB, machine, peak_mb, rss_mb, run_worker


def worker_tinygpt(name: str) -> dict:
    import numpy as np

    import tinygpt as tg
    from tinygpt import backend

    n_layer, n_head, n_embd, block, batch, steps = CONFIGS[name]
    backend.tune_allocator()  # as the Trainer and the CLI do
    backend.manual_seed(0)
    free_before = backend.available_memory()
    model = tg.TinyGPT(tg.GPTConfig(VOCAB, block, n_layer, n_head, n_embd))
    opt = tg.optim.AdamW(model.decay_groups(0.1), lr=1e-3, betas=(0.9, 0.99))
    loss_fn = tg.LanguageModelLoss()
    ids = backend.asarray(np.random.default_rng(0).integers(0, VOCAB, (batch, block)))
    np.ones((1024, 1024), np.float32) @ np.ones((1024, 1024), np.float32)  # BLAS threads allocate buffers
    base = rss_mb()
    times = []
    for i in range(steps + 3):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = loss_fn(model(ids), ids)
        loss.backward()
        tg.optim.clip_grad_norm(model.parameters(), 1.0)
        opt.step()
        loss.item()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    if os.environ.get("TINYGPT_DEVICE", "cpu") != "cpu":
        return {"ms_per_step": 1000 * statistics.median(times), "peak_mb": _gpu_taken_mb(free_before)}
    return {"ms_per_step": 1000 * statistics.median(times), "peak_mb": peak_mb() - base}


def _gpu_taken_mb(free_before: int | None) -> float:
    """--gpu: device memory the array library took (CuPy: its pool's size, which keeps freed blocks)."""
    from tinygpt import backend

    if backend.current().name == "cupy":
        import cupy

        return cupy.get_default_memory_pool().total_bytes() / 2**20
    return ((free_before or 0) - (backend.available_memory() or 0)) / 2**20  # JAX preallocates: ~0


def worker_torch_cuda() -> dict:
    """Whether PyTorch can be the --gpu reference here: {"why_not": None}, or the reason it cannot."""
    try:
        import torch
    except ImportError:
        return {"why_not": "torch is not installed"}
    return {"why_not": None if torch.cuda.is_available() else "torch sees no CUDA GPU"}


def worker_torch(name: str, threads: int, device: str = "cpu") -> dict:
    import torch

    sys.path.insert(0, str(SCRIPTS))
    from torch_reference import GPTConfig, TorchGPT, lm_loss, make_optimizer

    torch.set_num_threads(threads)
    n_layer, n_head, n_embd, block, batch, steps = CONFIGS[name]
    torch.manual_seed(0)
    model = TorchGPT(GPTConfig(VOCAB, block, n_layer, n_head, n_embd)).to(device)
    opt = make_optimizer(model, lr=1e-3, weight_decay=0.1, betas=(0.9, 0.99))
    ids = torch.randint(0, VOCAB, (batch, block)).to(device)
    torch.ones(1024, 1024) @ torch.ones(1024, 1024)  # BLAS threads allocate buffers
    base = rss_mb()
    times = []
    for i in range(steps + 3):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = lm_loss(model(ids), ids)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss.item()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    if device != "cpu":
        return {
            "ms_per_step": 1000 * statistics.median(times),
            "peak_mb": torch.cuda.max_memory_allocated() / 2**20,
        }
    return {"ms_per_step": 1000 * statistics.median(times), "peak_mb": peak_mb() - base}


def run(
    configs: list[str],
    extra_backends: list[str],
    repeat: int,
    threads: int,
    sample_tokens: int,
    gpu: bool,
    no_torch: bool,
    as_json: bool,
) -> None:
    """The table: each config, tinygpt on NumPy (CuPy with ``gpu``) and each extra backend, and PyTorch."""
    from tinygpt.backend import LIBRARIES

    if gpu and not no_torch and (why := run_worker(["torch-cuda"])["why_not"]):
        print(f"no PyTorch CUDA reference ({why}): timing tinygpt alone", flush=True)
        no_torch = True
    first = "cupy" if gpu else "numpy"
    sides = [first, *(b for b in dict.fromkeys(extra_backends) if b != first)]
    devices = {b: (LIBRARIES[b].gpu_device or "cpu") if gpu else "cpu" for b in sides}
    torch_device = "cuda" if gpu else "cpu"
    report: dict = {"machine": machine(), "threads": threads, "backends": devices, "training": {}}
    for name in ["gpu"] if gpu else configs:
        # Alternate the sides and keep each one's best run: other load on the
        # machine then hits all alike instead of skewing one.
        runs: dict[str, list[dict]] = {side: [] for side in sides}
        if not no_torch:
            runs["pytorch"] = []
        for _ in range(repeat):
            for side in sides:
                runs[side].append(run_worker(["tinygpt", name], side, devices[side]))
            if not no_torch:
                runs["pytorch"].append(run_worker(["pytorch", name, str(threads), torch_device]))
        report["training"][name] = {side: min(r, key=lambda x: x["ms_per_step"]) for side, r in runs.items()}
    report["sampling"] = sampling.measure(sample_tokens, first, devices[first])

    if as_json:
        print(json.dumps(report))
        return
    print(f"machine: {report['machine']}; threads {threads}; float32")
    print(f"{'config':<8} {'side':<22} {'ms/step':>9} {'vs ' + first:>9} {'vs PyTorch':>10} {'peak MB':>8}")
    for name, row in report["training"].items():
        n_layer, n_head, n_embd, block, batch, _ = CONFIGS[name]
        base = row[first]["ms_per_step"]
        reference = row["pytorch"]["ms_per_step"] if "pytorch" in row else None
        for side, r in row.items():
            label = (
                f"PyTorch eager ({torch_device})"
                if side == "pytorch"
                else f"tinygpt {side} ({devices[side]})"
            )
            versus = f"{r['ms_per_step'] / reference:>10.2f}" if reference else f"{'-':>10}"
            print(
                f"{name:<8} {label:<22} {r['ms_per_step']:>9.1f} {r['ms_per_step'] / base:>9.2f} "
                f"{versus} {r['peak_mb']:>8.0f}"
            )
        print(f"{'':<8} ({n_layer}L {n_head}H {n_embd}C block {block} batch {batch})")
    print(sampling.describe(report["sampling"], sample_tokens, first))


WORKERS = {
    "tinygpt": worker_tinygpt,
    "torch-cuda": worker_torch_cuda,
    "pytorch": lambda name, threads, *device: worker_torch(name, int(threads), *device),
}
