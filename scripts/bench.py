"""Benchmark: tinygpt on each backend vs a PyTorch model of the same architecture, side by side.

    python scripts/bench.py                                # tinygpt on NumPy vs PyTorch eager
    python scripts/bench.py --backend torch --backend jax  # also tinygpt on torch-CPU and JAX-CPU
    python scripts/bench.py --json                         # one JSON object
    python scripts/bench.py --gpt2-load                    # peak memory of loading GPT-2 (124M) weights (tinygpt[hf])
    python scripts/bench.py --data-parallel                # tokens/s: 1 process, mpiexec -n 2, PyTorch (tinygpt[mpi])
    python scripts/bench.py --projection                   # all-reduce bytes and step time at 8-512 ranks
    python scripts/bench.py --gpt2                         # GPT-2 (124M) sampling vs transformers (tinygpt[hf])

Each measurement runs in its own subprocess (so peak memory is per framework)
with the same thread count, float32, batch and model. Reported: median
milliseconds per training step (forward + backward + clip + AdamW), their
ratio, peak resident memory added by training (above the process after
imports, model construction and a first small matmul, so BLAS's own buffers
are not counted), and sampling speed with and without the KV cache. Informational only: nothing here gates CI.
"""

from __future__ import annotations

import argparse
import contextlib
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
        return {"ms_per_step": 1000 * statistics.median(times), "peak_mb": _gpu_taken_mb(free_before)}
    return {"ms_per_step": 1000 * statistics.median(times), "peak_mb": _peak_mb() - base}


def _gpu_taken_mb(free_before: int | None) -> float:
    """--gpu: device memory the array library took (CuPy: its pool's size, which keeps freed blocks)."""
    from tinygpt import backend

    if backend.current().name == "cupy":
        import cupy

        return cupy.get_default_memory_pool().total_bytes() / 2**20
    return ((free_before or 0) - (backend.available_memory() or 0)) / 2**20  # JAX preallocates: ~0


def _torch_cuda() -> str | None:
    """--gpu: why PyTorch CUDA cannot be the reference here (None when it can): tinygpt is then timed alone."""
    probe = "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 3)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    if done.returncode == 0:
        return None
    return "torch sees no CUDA GPU" if done.returncode == 3 else "torch is not installed"


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


# GPT-2 (124M) sampling: tinygpt vs transformers on the same random weights ----------------------------
GPT2_PROMPT, GPT2_NEW, GPT2_PREFILL = 32, 256, 1024  # prompt tokens, greedy new tokens, prefill prompt
GPT2_SEED = 0


def _gpt2_names(n_layer: int) -> dict[str, str]:
    """tinygpt parameter name -> GPT2LMHeadModel state-dict name (both store weights (in, out))."""
    names = {"wte.weight": "transformer.wte.weight", "wpe.weight": "transformer.wpe.weight"}
    parts = {"ln1": "ln_1", "attn.qkv": "attn.c_attn", "attn.proj": "attn.c_proj", "ln2": "ln_2"}
    parts |= {"mlp.fc": "mlp.c_fc", "mlp.proj": "mlp.c_proj"}
    for i in range(n_layer):
        for ours, theirs in parts.items():
            for kind in ("weight", "bias"):
                names[f"blocks.{i}.{ours}.{kind}"] = f"transformer.h.{i}.{theirs}.{kind}"
    names |= {"ln_f.weight": "transformer.ln_f.weight", "ln_f.bias": "transformer.ln_f.bias"}
    return names


def worker_gpt2_weights(directory: str) -> dict:
    """Random gpt2-shaped weights (tinygpt's GPT-2 init) written as a Hugging Face GPT-2 directory."""
    import numpy as np
    from safetensors.numpy import save_file

    import tinygpt as tg
    from tinygpt import backend

    n_layer, n_head, n_embd, block, _, _ = CONFIGS["gpt2"]
    backend.manual_seed(GPT2_SEED)
    model = tg.TinyGPT(tg.GPTConfig(VOCABS["gpt2"], block, n_layer, n_head, n_embd))
    names = _gpt2_names(n_layer)
    tensors = {
        names[n]: np.ascontiguousarray(p.numpy(), dtype=np.float32) for n, p in model.named_parameters()
    }
    save_file(tensors, str(Path(directory) / "model.safetensors"), metadata={"format": "pt"})
    config = {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": VOCABS["gpt2"],
        "n_positions": block,
        "n_ctx": block,
        "n_embd": n_embd,
        "n_layer": n_layer,
        "n_head": n_head,
        "activation_function": "gelu_new",
        "layer_norm_epsilon": 1e-5,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
    }
    (Path(directory) / "config.json").write_text(json.dumps(config))
    return {"parameters": model.num_parameters()}


def _gpt2_prompts() -> tuple[list[int], list[int]]:
    import numpy as np

    rng = np.random.default_rng(1)
    vocab = VOCABS["gpt2"]
    return rng.integers(0, vocab, GPT2_PROMPT).tolist(), rng.integers(0, vocab, GPT2_PREFILL).tolist()


def worker_gpt2_tinygpt(directory: str) -> dict:
    """Greedy sampling with the KV cache and a 1024-token prefill, on the backend the environment names."""
    from safetensors import safe_open

    import tinygpt as tg
    from tinygpt import backend
    from tinygpt.generation import generate

    n_layer, n_head, n_embd, block, _, _ = CONFIGS["gpt2"]
    free_before = backend.available_memory()
    model = tg.TinyGPT(tg.GPTConfig(VOCABS["gpt2"], block, n_layer, n_head, n_embd))
    parameters = dict(model.named_parameters())
    with safe_open(str(Path(directory) / "model.safetensors"), framework="numpy") as weights:
        for name, theirs in _gpt2_names(n_layer).items():  # the same bytes transformers loads
            parameters[name].data = backend.asarray(weights.get_tensor(theirs), copy=False)  # a fresh array
    loaded_mb = _rss_mb()
    _reset_peak()  # peak MB is then the sampling's, weights included, not the loading's
    # As the CLI does, but after loading: the random weights just replaced go back to the system.
    backend.tune_allocator()
    model.eval()
    prompt, long_prompt = _gpt2_prompts()
    generate(model, [prompt], 8, greedy=True)  # warm-up: first-call allocations, BLAS buffers
    prefill = []
    with tg.no_grad():
        for _ in range(3):
            t0 = time.perf_counter()
            logits = model.next_token_logits([long_prompt], model.new_caches(1))
            backend.to_numpy(logits.data[:, :1])  # waits for the device
            prefill.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    out = generate(model, [prompt], GPT2_NEW, greedy=True)[0][GPT2_PROMPT:]
    seconds = time.perf_counter() - t0
    peak = _gpt2_peak_mb(free_before)
    return _gpt2_result(seconds, prefill, peak, loaded_mb, out)


def worker_gpt2_transformers(directory: str, threads: int, device: str = "cpu") -> dict:
    """The same measurements with transformers' GPT2LMHeadModel.generate (KV cache on, greedy)."""
    import torch
    from transformers import GPT2LMHeadModel

    torch.set_num_threads(threads)
    model = GPT2LMHeadModel.from_pretrained(directory, dtype=torch.float32).to(device).eval()
    loaded_mb = _rss_mb()
    _reset_peak()
    prompt, long_prompt = _gpt2_prompts()
    ids = torch.tensor([prompt], device=device)
    long_ids = torch.tensor([long_prompt], device=device)
    options = {"do_sample": False, "use_cache": True, "pad_token_id": 0}

    def sync() -> None:
        if device != "cpu":
            torch.cuda.synchronize()

    with torch.inference_mode():
        model.generate(ids, max_new_tokens=8, min_new_tokens=8, **options)  # warm-up
        prefill = []
        for _ in range(3):
            sync()
            t0 = time.perf_counter()
            model(long_ids, use_cache=True, logits_to_keep=1)  # what generate's prefill runs
            sync()
            prefill.append(time.perf_counter() - t0)
        sync()
        t0 = time.perf_counter()
        out = model.generate(ids, max_new_tokens=GPT2_NEW, min_new_tokens=GPT2_NEW, **options)
        sync()
        seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**20 if device != "cpu" else _peak_mb()
    return _gpt2_result(seconds, prefill, peak, loaded_mb, out[0, GPT2_PROMPT:].tolist())


def _gpt2_result(
    seconds: float, prefill: list[float], peak_mb: float, loaded_mb: float, tokens: list
) -> dict:
    return {
        "seconds": seconds,  # GPT2_NEW greedy tokens after the prompt, generate's own prefill included
        "prefill_ms": 1000 * min(prefill),
        "peak_mb": peak_mb,
        "loaded_mb": loaded_mb,  # resident memory with the weights loaded, before any sampling
        "tokens": tokens,
    }


def _reset_peak() -> None:
    """Restart the process's peak resident memory (VmHWM) from its current size (Linux 4.0+)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _gpt2_peak_mb(free_before: int | None) -> float:
    """Peak memory: the process's peak resident set on a CPU; on a GPU, what the memory pool took."""
    if os.environ.get("TINYGPT_DEVICE", "cpu") == "cpu":
        return _peak_mb()
    from tinygpt import backend

    return ((free_before or 0) - (backend.available_memory() or 0)) / 2**20


def worker_bandwidth(device: str = "cpu") -> dict:
    """Read bandwidth (bytes/s): the best of several passes over 512 MiB, with this process's threads.

    On the CPU: BLAS's matrix-vector product over a (N, 768) matrix (what decoding is made of)
    and a BLAS dot product, best of 5 each; on a GPU: torch's sum over the buffer.
    """
    n = 768 * (512 * 2**20 // (4 * 768))  # float32 elements in about 512 MiB, rows of 768
    if device != "cpu":
        import torch

        a = torch.randn(n, dtype=torch.float32, device=device)
        best = float("inf")
        for _ in range(10):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            a.sum()
            torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
        return {"bytes_per_s": 4 * n / best, "how": "torch.sum on the GPU"}
    import numpy as np

    # Random values: pages of one repeated value may be merged by the host (KSM), and then read from cache.
    a = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
    matrix, x = a.reshape(-1, 768), np.ones(768, dtype=np.float32)
    ways = {"matrix-vector product": lambda: matrix @ x, "dot product": lambda: a @ a}
    best = {}
    for name, fn in ways.items():
        best[name] = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    how = min(best, key=lambda k: best[k])
    return {"bytes_per_s": a.nbytes / best[how], "how": f"NumPy {how} over 512 MiB"}


def gpt2_sampling(repeat: int, threads: int, gpu: bool, as_json: bool) -> None:
    """GPT-2 (124M) greedy sampling with the KV cache: tinygpt vs transformers, same weights and threads."""
    import importlib.util
    import tempfile

    if importlib.util.find_spec("transformers") is None:
        raise SystemExit("--gpt2 compares with transformers: pip install transformers (or 'tinygpt[bench]')")
    n_layer, n_head, n_embd, block, _, _ = CONFIGS["gpt2"]
    side = "cupy" if gpu else "numpy"
    device = "cuda" if gpu else "cpu"
    runs: dict[str, list[dict]] = {"tinygpt": [], "transformers": []}
    bandwidth = []
    with tempfile.TemporaryDirectory(prefix="tinygpt-bench-gpt2-") as directory:
        info = _run_worker(["gpt2-weights", directory], threads=threads)
        for _ in range(repeat):  # alternated, best of each: load on the machine hits both alike
            bandwidth.append(_run_worker(["bandwidth", device], threads=threads))
            tiny_device = "cuda" if gpu else "cpu"
            runs["tinygpt"].append(
                _run_worker(["gpt2-tinygpt", directory], side, tiny_device, threads=threads)
            )
            runs["transformers"].append(
                _run_worker(["gpt2-transformers", directory, str(threads), device], threads=threads)
            )
    # The median run: this shared VM's bandwidth varies between runs (seen: 35-60 GB/s).
    bw = sorted(bandwidth, key=lambda r: r["bytes_per_s"])[len(bandwidth) // 2]
    bw["all"] = sorted(r["bytes_per_s"] for r in bandwidth)
    # Decoding one token reads every weight once (of the position table, one row).
    weight_bytes = 4 * (info["parameters"] - block * n_embd + n_embd)
    limit_ms = 1000 * weight_bytes / bw["bytes_per_s"]
    report: dict = {
        "machine": machine(),
        "threads": threads,
        "device": device,
        "bandwidth": bw,
        "weight_bytes": weight_bytes,
        "limit_ms_per_token": limit_ms,
        "sides": {},
        "spread": {},
    }
    for name, results in runs.items():
        best = min(results, key=lambda r: r["seconds"])
        ms = 1000 * best["seconds"] / GPT2_NEW
        report["sides"][name] = {
            "tokens_per_s": GPT2_NEW / best["seconds"],
            "ms_per_token": ms,
            "prefill_ms": min(r["prefill_ms"] for r in results),
            "peak_mb": max(r["peak_mb"] for r in results),
            "loaded_mb": max(r["loaded_mb"] for r in results),
            "x_limit": ms / limit_ms,
            "tokens": best["tokens"],
        }
        report["spread"][name] = sorted(GPT2_NEW / r["seconds"] for r in results)
    tiny, hf = report["sides"]["tinygpt"], report["sides"]["transformers"]
    report["ratio"] = tiny["tokens_per_s"] / hf["tokens_per_s"]
    same = [a == b for a, b in zip(tiny["tokens"], hf["tokens"], strict=True)]
    report["greedy_identical"] = all(same)
    report["first_difference"] = None if all(same) else same.index(False)
    if as_json:
        print(json.dumps(report))
        return
    print(f"machine: {report['machine']}; threads {threads}; float32; device {device}")
    print(
        f"GPT-2 124M shape ({n_layer}L {n_head}H {n_embd}C, vocab {VOCABS['gpt2']}), random weights, batch 1: "
        f"{GPT2_PROMPT}-token prompt + {GPT2_NEW} greedy tokens with the KV cache; best of {repeat}"
    )
    print(
        f"read bandwidth {bw['bytes_per_s'] / 1e9:.1f} GB/s, median of "
        f"{', '.join(f'{b / 1e9:.1f}' for b in bw['all'])} ({bw['how']}); weights {weight_bytes / 1e6:.0f} MB "
        f"per token -> limit {limit_ms:.2f} ms/token ({1000 / limit_ms:.0f} tokens/s)"
    )
    print(
        f"{'side':<28} {'tokens/s':>9} {'ms/token':>9} {'prefill 1024 ms':>16} {'peak MB':>8} "
        f"{'loaded MB':>10} {'x limit':>8}"
    )
    labels = {"tinygpt": f"tinygpt ({side})", "transformers": f"transformers generate ({device})"}
    for name, r in report["sides"].items():
        print(
            f"{labels[name]:<28} {r['tokens_per_s']:>9.1f} {r['ms_per_token']:>9.2f} {r['prefill_ms']:>16.0f} "
            f"{r['peak_mb']:>8.0f} {r['loaded_mb']:>10.0f} {r['x_limit']:>8.2f}"
        )
    print(f"tinygpt / transformers tokens/s: {report['ratio']:.2f}x")
    spread = "; ".join(f"{n} " + ", ".join(f"{t:.1f}" for t in v) for n, v in report["spread"].items())
    print(f"all runs, tokens/s: {spread}")
    if report["greedy_identical"]:
        print(f"greedy outputs identical: yes, all {GPT2_NEW} tokens")
    else:
        print(f"greedy outputs identical: NO, first difference at new token {report['first_difference']}")


GPT2_WORKERS = {
    "gpt2-weights": worker_gpt2_weights,
    "gpt2-tinygpt": worker_gpt2_tinygpt,
    "gpt2-transformers": lambda d, t, device="cpu": worker_gpt2_transformers(d, int(t), device),
    "bandwidth": worker_bandwidth,
}


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
    parser.add_argument(
        "--gpt2",
        action="store_true",
        help="GPT-2 (124M) greedy sampling with the KV cache and a 1024-token prefill: tinygpt vs "
        "transformers' generate on the same random weights, with the machine's read-bandwidth limit "
        "(needs transformers; with --gpu: CuPy vs transformers on CUDA)",
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
        elif kind in GPT2_WORKERS:
            result = GPT2_WORKERS[kind](*rest)
        elif kind == "pytorch":
            result = worker_torch(rest[0], int(rest[1]), *rest[2:])
        else:
            result = worker_sampling(int(rest[0]))
        if result.get("rank", 0) == 0:
            print(json.dumps(result))
        return
    if args.gpt2:
        gpt2_sampling(args.repeat, args.threads, args.gpu, args.json)
        return
    if args.data_parallel:
        data_parallel(args.configs, args.repeat, args.threads, args.json)
        return
    if args.projection:
        projection([*args.configs, "gpt2"] if "gpt2" not in args.configs else args.configs, args.json)
        return

    if args.gpu and not args.no_torch and (why := _torch_cuda()):
        print(f"no PyTorch CUDA reference ({why}): timing tinygpt alone", flush=True)
        args.no_torch = True
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
