"""Benchmark: tinygpt on each backend vs a PyTorch model of the same architecture, side by side.

    python scripts/bench.py                                # tinygpt on NumPy vs PyTorch eager
    python scripts/bench.py --backend torch --backend jax  # also tinygpt on torch-CPU and JAX-CPU
    python scripts/bench.py --json                         # one JSON object

Each measurement runs in its own subprocess (so peak memory is per framework)
with the same thread count, float32, batch and model. Reported: median
milliseconds per training step (forward + backward + clip + AdamW), their
ratio, peak resident memory added by training (above the process after
imports, model construction and a first small matmul, so BLAS's own buffers
are not counted), and sampling speed with and without the KV cache. Informational only: nothing here gates CI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

CONFIGS = {
    # name: (n_layer, n_head, n_embd, block_size, batch_size, timed steps)
    "small": (4, 4, 128, 64, 12, 40),
    "bigger": (6, 6, 384, 256, 8, 6),
    "gpu": (6, 6, 384, 256, 64, 20),  # nanoGPT's shakespeare_char size; for --gpu
}
VOCAB = 84  # the Shakespeare corpus's character count
HERE = Path(__file__).resolve().parent


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    """Peak resident memory of this process image (VmHWM; ru_maxrss can carry the parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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
    base = _rss_mb()
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
        # Device memory: what the library's memory pool took from the GPU (JAX preallocates: ~0).
        taken = (free_before or 0) - (backend.available_memory() or 0)
        return {"ms_per_step": 1000 * statistics.median(times), "peak_mb": taken / 2**20}
    return {"ms_per_step": 1000 * statistics.median(times), "peak_mb": _peak_mb() - base}


def worker_torch(name: str, threads: int, device: str = "cpu") -> dict:
    import torch

    sys.path.insert(0, str(HERE))
    from torch_reference import GPTConfig, TorchGPT, lm_loss, make_optimizer

    torch.set_num_threads(threads)
    n_layer, n_head, n_embd, block, batch, steps = CONFIGS[name]
    torch.manual_seed(0)
    model = TorchGPT(GPTConfig(VOCAB, block, n_layer, n_head, n_embd)).to(device)
    opt = make_optimizer(model, lr=1e-3, weight_decay=0.1, betas=(0.9, 0.99))
    ids = torch.randint(0, VOCAB, (batch, block)).to(device)
    torch.ones(1024, 1024) @ torch.ones(1024, 1024)  # BLAS threads allocate buffers
    base = _rss_mb()
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
    return {"ms_per_step": 1000 * statistics.median(times), "peak_mb": _peak_mb() - base}


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


def _run_worker(args: list[str], backend: str = "numpy", device: str = "cpu") -> dict:
    env = {**os.environ, "TINYGPT_BACKEND": backend, "TINYGPT_DEVICE": device}
    out = subprocess.run(
        [sys.executable, __file__, "--worker", *args], capture_output=True, text=True, check=False, env=env
    )
    if out.returncode != 0:
        raise SystemExit(f"benchmark worker {args} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> str:
    cpu = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib import metadata

    versions = []
    for package in ("numpy", "torch", "jax"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            pass
    versions = ", ".join(versions)
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {versions}"


def main() -> None:
    from tinygpt.backend import BACKENDS, LIBRARIES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--configs", nargs="+", default=["small", "bigger"], choices=list(CONFIGS))
    parser.add_argument(
        "--backend",
        action="append",
        choices=BACKENDS,
        default=[],
        help="also time tinygpt on this backend (repeatable); the default backend is always timed",
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--sample-tokens", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3, help="runs per side; the best is kept")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch side")
    parser.add_argument(
        "--gpu",
        action="store_true",
        help="on the first GPU, on the 'gpu' config (6/6/384, block 256, batch 64): CuPy (and each "
        "--backend) vs PyTorch CUDA",
    )
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        kind, *rest = args.worker
        if kind == "tinygpt":
            result = worker_tinygpt(rest[0])
        elif kind == "pytorch":
            result = worker_torch(rest[0], int(rest[1]), *rest[2:])
        else:
            result = worker_sampling(int(rest[0]))
        print(json.dumps(result))
        return

    first = "cupy" if args.gpu else "numpy"
    sides = [first, *(b for b in dict.fromkeys(args.backend) if b != first)]
    devices = {b: (LIBRARIES[b].gpu_device or "cpu") if args.gpu else "cpu" for b in sides}
    torch_device = "cuda" if args.gpu else "cpu"
    report: dict = {"machine": machine(), "threads": args.threads, "backends": devices, "training": {}}
    configs = ["gpu"] if args.gpu else args.configs
    for name in configs:
        # Alternate the sides and keep each one's best run: other load on the
        # machine then hits all alike instead of skewing one.
        runs: dict[str, list[dict]] = {side: [] for side in sides}
        if not args.no_torch:
            runs["pytorch"] = []
        for _ in range(args.repeat):
            for side in sides:
                runs[side].append(_run_worker(["tinygpt", name], side, devices[side]))
            if not args.no_torch:
                runs["pytorch"].append(_run_worker(["pytorch", name, str(args.threads), torch_device]))
        report["training"][name] = {side: min(r, key=lambda x: x["ms_per_step"]) for side, r in runs.items()}
    sampling = _run_worker(["sampling", str(args.sample_tokens)], first, devices[first])
    sampling["speedup"] = sampling["cached"] / sampling["uncached"]
    report["sampling"] = sampling

    if args.json:
        print(json.dumps(report))
        return
    print(f"machine: {report['machine']}; threads {args.threads}; float32")
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
    s = report["sampling"]
    print(
        f"sampling {args.sample_tokens} tokens at block 256 on {first}: cached {s['cached']:.0f} tok/s, "
        f"uncached {s['uncached']:.0f} tok/s, speed-up {s['speedup']:.1f}x"
    )


if __name__ == "__main__":
    main()
