"""GPT-2 (124M) greedy sampling with the KV cache: tinygpt vs transformers' generate (``--gpt2``).

Random weights of the real gpt2 shape are written once as a Hugging Face directory;
both sides load the same bytes, each in its own process with the same threads, and are
set against the machine's read-bandwidth limit (decoding one token reads every weight).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from benchmarks.common import CONFIGS, VOCABS, machine, peak_mb, reset_peak, rss_mb, run_worker

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
    loaded_mb = rss_mb()
    reset_peak()  # peak MB is then the sampling's, weights included, not the loading's
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
    loaded_mb = rss_mb()
    reset_peak()
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
    peak = torch.cuda.max_memory_allocated() / 2**20 if device != "cpu" else peak_mb()
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


def _gpt2_peak_mb(free_before: int | None) -> float:
    """Peak memory: the process's peak resident set on a CPU; on a GPU, what the memory pool took."""
    if os.environ.get("TINYGPT_DEVICE", "cpu") == "cpu":
        return peak_mb()
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


def run(repeat: int, threads: int, gpu: bool, as_json: bool) -> None:
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
        info = run_worker(["gpt2-weights", directory], threads=threads)
        for _ in range(repeat):  # alternated, best of each: load on the machine hits both alike
            bandwidth.append(run_worker(["bandwidth", device], threads=threads))
            tiny_device = "cuda" if gpu else "cpu"
            runs["tinygpt"].append(
                run_worker(["gpt2-tinygpt", directory], side, tiny_device, threads=threads)
            )
            runs["transformers"].append(
                run_worker(["gpt2-transformers", directory, str(threads), device], threads=threads)
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


WORKERS = {
    "gpt2-weights": worker_gpt2_weights,
    "gpt2-tinygpt": worker_gpt2_tinygpt,
    "gpt2-transformers": lambda d, t, device="cpu": worker_gpt2_transformers(d, int(t), device),
    "bandwidth": worker_bandwidth,
}
