"""Benchmark: tinygpt on each backend vs a PyTorch model of the same architecture, side by side.

    python scripts/bench.py                                # tinygpt on NumPy vs PyTorch eager
    python scripts/bench.py --backend torch --backend jax  # also tinygpt on torch-CPU and JAX-CPU
    python scripts/bench.py --json                         # one JSON object
    python scripts/bench.py --gpt2-load                    # peak memory of loading GPT-2 (124M) weights (tinygpt[hf])
    python scripts/bench.py --data-parallel                # tokens/s: 1 process, mpiexec -n 2, PyTorch (tinygpt[mpi])
    python scripts/bench.py --projection                   # all-reduce bytes and step time at 8-512 ranks
    python scripts/bench.py --gpt2                         # GPT-2 (124M) sampling vs transformers (tinygpt[hf])
    python scripts/bench.py --data                         # tinygpt prepare of a generated 1 GB corpus vs tokenizers
    python scripts/bench.py --data --size-mb 200 --workdir /big   # a smaller corpus; where it goes (default: temp)
    python scripts/bench.py --data-train DATA_DIR          # training on a prepared dataset vs on Shakespeare

Each benchmark is one module of ``scripts/benchmarks/``; this file only reads the flags and
runs one of them. Each measurement runs in its own subprocess (so peak memory is per
framework) with the same thread count, float32, batch and model. Informational only:
nothing here gates CI.
"""

from __future__ import annotations

import argparse
import json
import os

from benchmarks import data, data_parallel, gpt2_load, gpt2_sampling, projection, sampling, training
from benchmarks.common import CONFIGS

WORKERS = {
    **training.WORKERS,
    **sampling.WORKERS,
    **data_parallel.WORKERS,
    **gpt2_sampling.WORKERS,
    **gpt2_load.WORKERS,
    **data.WORKERS,
}


def main() -> None:
    from tinygpt.backend import BACKENDS

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
    parser.add_argument(
        "--data",
        action="store_true",
        help="tinygpt prepare (char, BPE 8192) of a generated corpus vs tokenizers' encode_batch alone",
    )
    parser.add_argument(
        "--size-mb", type=int, default=1000, help="--data: the corpus size (default: 1000 MB)"
    )
    parser.add_argument("--workdir", help="--data: where the corpus and datasets go (default: a temp dir)")
    parser.add_argument(
        "--ceiling-mb",
        type=float,
        default=0,
        help="--data: time the tokenizers ceiling on the first N MB (0: all)",
    )
    parser.add_argument(
        "--data-train",
        metavar="DATA_DIR",
        help="training on this prepared dataset vs on Shakespeare (ms/step, memory), and under mpiexec -n 2",
    )
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:  # one measurement, in this fresh process (benchmarks.common.run_worker)
        kind, *rest = args.worker
        result = WORKERS[kind](*rest)
        if result.get("rank", 0) == 0:
            print(json.dumps(result))
    elif args.data:
        data.run(args.size_mb, args.workdir, args.ceiling_mb, args.json)
    elif args.data_train:
        data.run_training(args.data_train, args.repeat, args.json)
    elif args.gpt2_load:
        gpt2_load.run(args.json)
    elif args.gpt2:
        gpt2_sampling.run(args.repeat, args.threads, args.gpu, args.json)
    elif args.data_parallel:
        data_parallel.run(args.configs, args.repeat, args.threads, args.json)
    elif args.projection:
        projection.run([*args.configs, "gpt2"] if "gpt2" not in args.configs else args.configs, args.json)
    else:
        training.run(
            args.configs,
            args.backend,
            args.repeat,
            args.threads,
            args.sample_tokens,
            args.gpu,
            args.no_torch,
            args.json,
        )


if __name__ == "__main__":
    main()
