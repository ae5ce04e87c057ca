"""Benchmark: tinygpt on each backend vs a PyTorch model of the same architecture, side by side.

    python scripts/bench.py                                # tinygpt on NumPy vs PyTorch eager
    python scripts/bench.py --backend torch --backend jax  # also tinygpt on torch-CPU and JAX-CPU
    python scripts/bench.py --json                         # one JSON object
    python scripts/bench.py --gpt2-load                    # peak memory of loading GPT-2 (124M) weights (tinygpt[hf])
    python scripts/bench.py --data-parallel                # tokens/s: 1 process, mpiexec -n 2, PyTorch (tinygpt[mpi])
    python scripts/bench.py --projection                   # all-reduce bytes and step time at 8-512 ranks

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
import shutil
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
    "gpt2": (12, 12, 768, 1024, 1, 2),  # GPT-2 small's shape and vocabulary (124 M parameters); --projection
}
VOCABS = {"gpt2": 50257}
RANKS = (8, 64, 512)
LINKS_GBIT = (10, 100, 400)
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


def worker_trainer(name: str) -> dict:
    """The training step ``tinygpt train`` takes (Trainer: clip folded into AdamW), in one process or
    as one rank of ``mpiexec -n N`` (DataParallel: this rank's share, gradients all-reduced)."""
    import numpy as np

    import tinygpt as tg
    from tinygpt import backend
    from tinygpt.training import distributed
    from tinygpt.training.data_parallel import DataParallel

    n_layer, n_head, n_embd, block, batch, steps = CONFIGS[name]
    world = distributed.world()
    backend.manual_seed(0)
    vocab = VOCABS.get(name, VOCAB)
    model = tg.TinyGPT(tg.GPTConfig(vocab, block, n_layer, n_head, n_embd))
    opt = tg.optim.AdamW(model.decay_groups(0.1), lr=1e-3, betas=(0.9, 0.99))
    parallel = DataParallel(world) if world.size > 1 else None
    trainer = tg.Trainer(model, tg.LanguageModelLoss(), opt, grad_clip=1.0, data_parallel=parallel)
    if parallel is not None:
        parallel.start(opt.parameters)
    ids = backend.asarray(np.random.default_rng(0).integers(0, vocab, (batch, block)))  # the global batch
    chunks, weights = parallel.share([ids]) if parallel is not None else ([ids], None)
    times, reduce_times = [], []
    warmup = 3 if steps > 2 else 1
    for i in range(steps + warmup):
        reduced = parallel.reduce_seconds if parallel is not None else 0.0
        t0 = time.perf_counter()
        trainer.train_step([(c, c) for c in chunks], weights)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            reduce_times.append((parallel.reduce_seconds if parallel is not None else 0.0) - reduced)
    ms = 1000 * statistics.median(times)
    return {
        "ms_per_step": ms,
        "tokens_per_s": batch * block / (ms / 1000),
        "allreduce_ms": 1000 * statistics.median(reduce_times),
        "ranks": world.size,
        "threads": world.threads,
        "parameters": model.num_parameters(),
        "rank": world.rank,
    }


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


def _run_worker(
    args: list[str], backend: str = "numpy", device: str = "cpu", ranks: int = 1, threads: int | None = None
) -> dict:
    env = {**os.environ, "TINYGPT_BACKEND": backend, "TINYGPT_DEVICE": device}
    if threads is not None:
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(threads)
    launcher = [_mpiexec(), "-n", str(ranks)] if ranks > 1 else []
    out = subprocess.run(
        [*launcher, sys.executable, __file__, "--worker", *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if out.returncode != 0:
        raise SystemExit(f"benchmark worker {args} failed:\n{out.stderr}")
    results = [json.loads(line) for line in out.stdout.strip().splitlines() if line.startswith("{")]
    return next(r for r in results if r.get("rank", 0) == 0)  # rank 0's view of a parallel step


def _mpiexec() -> str:
    beside = Path(sys.executable).with_name("mpiexec")  # where pip install 'tinygpt[mpi]' puts MPICH's
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    if found is None:
        raise SystemExit("--data-parallel needs mpiexec: pip install 'tinygpt[mpi]'")
    return found


def data_parallel(configs: list[str], repeat: int, threads: int, as_json: bool) -> None:
    """Tokens/s of one process (``threads`` threads), mpiexec -n 2 (the threads split) and PyTorch eager."""
    ranks = 2
    report: dict = {"machine": machine(), "threads": threads, "ranks": ranks, "configs": {}}
    for name in configs:
        runs: dict[str, list[dict]] = {"one": [], "ranks": [], "torch": []}
        for _ in range(repeat):  # alternated, best of each: load on the machine hits all alike
            runs["one"].append(_run_worker(["trainer", name], threads=threads))
            runs["ranks"].append(
                _run_worker(["trainer", name], ranks=ranks, threads=max(1, threads // ranks))
            )
            runs["torch"].append(_run_worker(["pytorch", name, str(threads)], threads=threads))
        best = {side: min(results, key=lambda r: r["ms_per_step"]) for side, results in runs.items()}
        _, _, _, block, batch, _ = CONFIGS[name]
        for side in ("torch",):
            best[side]["tokens_per_s"] = batch * block / (best[side]["ms_per_step"] / 1000)
        report["configs"][name] = best
    if as_json:
        print(json.dumps(report))
        return
    print(f"machine: {report['machine']}; float32; same global batch on every side")
    print(
        f"{'config':<8} {'1 process':>10} {'2 ranks':>10} {'torch':>10} {'2 ranks/torch':>13} "
        f"{'1 proc/torch':>12} {'all-reduce':>16}"
    )
    print(f"{'':<8} {'tok/s':>10} {'tok/s':>10} {'tok/s':>10} {'':>13} {'':>12} {'ms/step (share)':>16}")
    for name, best in report["configs"].items():
        n_layer, n_head, n_embd, block, batch, _ = CONFIGS[name]
        one, two, torch_ = (best[s]["tokens_per_s"] for s in ("one", "ranks", "torch"))
        reduce_ms = best["ranks"]["allreduce_ms"]
        share = reduce_ms / best["ranks"]["ms_per_step"]
        print(
            f"{name:<8} {one:>10.0f} {two:>10.0f} {torch_:>10.0f} {two / torch_:>13.2f} {one / torch_:>12.2f} "
            f"{reduce_ms:>7.2f} ({share:>5.1%})   ({n_layer}L {n_head}H {n_embd}C block {block} batch {batch})"
        )
    print(f"threads: 1 process {threads}, each of {ranks} ranks {max(1, threads // ranks)}, torch {threads}")


def projection(configs: list[str], as_json: bool) -> None:
    """Ring all-reduce time of each config's gradients at 8-512 ranks over 10-400 Gb/s, next to measured compute."""
    rows = {}
    for name in configs:
        measured = _run_worker(["trainer", name])  # one process, this machine's threads
        n_layer, n_head, n_embd, block, batch, _ = CONFIGS[name]
        grad_bytes = 4 * measured["parameters"]  # float32 gradients, reduced once per step
        compute_s = measured["ms_per_step"] / 1000  # one rank's step on its batch (weak scaling)
        times = {}
        for n in RANKS:
            for gbit in LINKS_GBIT:
                # A ring all-reduce sends and receives 2 (N - 1) / N of the buffer per rank.
                times[f"{n}x{gbit}"] = 2 * (n - 1) / n * grad_bytes * 8 / (gbit * 1e9)
        rows[name] = {
            "parameters": measured["parameters"],
            "bytes": grad_bytes,
            "compute_s": compute_s,
            **times,
        }
    if as_json:
        print(json.dumps({"machine": machine(), "projection": rows}))
        return
    print(f"machine: {machine()}; compute = one measured step of one process on that config's batch")
    links = "  ".join(f"{n:>3} ranks @{g:>3} Gb/s" for n in RANKS for g in LINKS_GBIT)
    print("all-reduce seconds per step (ring, bandwidth only):", links)
    for name, row in rows.items():
        n_layer, n_head, n_embd, block, batch, _ = CONFIGS[name]
        cells = "  ".join(f"{row[f'{n}x{g}']:>18.4f}" for n in RANKS for g in LINKS_GBIT)
        print(
            f"{name:<7} {row['parameters']:>12,} params {row['bytes'] / 2**20:>8.1f} MiB "
            f"compute {row['compute_s']:>8.3f} s  {cells}   ({n_layer}L {n_head}H {n_embd}C block {block} batch {batch})"
        )


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


GPT2_LOAD = """
import json, os, sys, time
from pathlib import Path
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
def peak():
    line = [l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:")][0]
    return int(line.split()[1]) / 1024
side, path = sys.argv[1:]
if side == "tinygpt":
    from tinygpt import TinyGPT
    load = TinyGPT.from_pretrained
else:
    import torch
    from transformers import GPT2LMHeadModel
    load = GPT2LMHeadModel.from_pretrained
before, start = rss(), time.perf_counter()
model = load(path)
seconds, loaded = time.perf_counter() - start, peak()
ids = [list(range(8))]
if side == "tinygpt":
    model(ids)
else:
    with torch.no_grad():
        model(torch.tensor(ids))  # transformers maps the file lazily: a forward pass touches every weight
result = {"seconds": seconds, "base_mb": before, "peak_mb": loaded, "peak_after_forward_mb": peak()}
print(json.dumps(result))
"""


def gpt2_load(as_json: bool) -> None:
    """Peak resident memory of loading random GPT-2 (124M) weights, tinygpt vs transformers, each fresh."""
    import tempfile

    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        GPT2LMHeadModel(GPT2Config()).save_pretrained(tmp)  # gpt2's shape: 12 x 768, 50257 tokens
        weights_mb = (Path(tmp) / "model.safetensors").stat().st_size / 2**20
        env = {**os.environ, "PYTHONPATH": str(HERE.parent), "HF_HUB_OFFLINE": "1"}
        report = {"machine": machine(), "weights_mb": weights_mb}
        for side in ("tinygpt", "transformers"):
            done = subprocess.run(
                [sys.executable, "-c", GPT2_LOAD, side, tmp],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            report[side] = json.loads(done.stdout.strip().splitlines()[-1])
    if as_json:
        print(json.dumps(report))
        return
    print(f"machine: {report['machine']}; gpt2 (124M) random weights, model.safetensors {weights_mb:.0f} MB")
    print(f"{'side':<14} {'load s':>7} {'RSS before MB':>14} {'peak RSS MB':>12} {'+ 1 forward':>12}")
    for side in ("tinygpt", "transformers"):
        r = report[side]
        print(
            f"{side:<14} {r['seconds']:>7.2f} {r['base_mb']:>14.0f} {r['peak_mb']:>12.0f} "
            f"{r['peak_after_forward_mb']:>12.0f}"
        )


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
        "--gpt2-load",
        action="store_true",
        help="peak memory of loading GPT-2 (124M) weights, vs transformers",
    )
    parser.add_argument(
        "--gpu",
        action="store_true",
        help="on the first GPU, on the 'gpu' config (6/6/384, block 256, batch 64): CuPy (and each "
        "--backend) vs PyTorch CUDA",
    )
    parser.add_argument(
        "--data-parallel",
        action="store_true",
        help="tokens/s: one process, mpiexec -n 2 (threads split between ranks) and PyTorch eager",
    )
    parser.add_argument(
        "--projection",
        action="store_true",
        help="gradient bytes per step and ring all-reduce time at 8/64/512 ranks over 10/100/400 Gb/s",
    )
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.gpt2_load:
        gpt2_load(args.json)
        return

    if args.worker:
        kind, *rest = args.worker
        if kind == "tinygpt":
            result = worker_tinygpt(rest[0])
        elif kind == "trainer":
            result = worker_trainer(rest[0])
        elif kind == "pytorch":
            result = worker_torch(rest[0], int(rest[1]), *rest[2:])
        else:
            result = worker_sampling(int(rest[0]))
        if result.get("rank", 0) == 0:
            print(json.dumps(result))
        return
    if args.data_parallel:
        data_parallel(args.configs, args.repeat, args.threads, args.json)
        return
    if args.projection:
        projection([*args.configs, "gpt2"] if "gpt2" not in args.configs else args.configs, args.json)
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
