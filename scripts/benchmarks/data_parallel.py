"""Data parallelism: tokens/s of one process, ``mpiexec -n 2`` (the threads split) and PyTorch eager.

The step is the one ``tinygpt train`` takes (``Trainer.train_step``: this rank's share of
the global batch, gradients all-reduced, clip folded into AdamW); every side runs the same
global batch. ``--data-parallel``.
"""

from __future__ import annotations

import json
import statistics
import time

from benchmarks.common import CONFIGS, VOCAB, VOCABS, machine, run_worker


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
    parallel = DataParallel(world)
    trainer = tg.Trainer(model, tg.LanguageModelLoss(), opt, grad_clip=1.0, parallel=parallel)
    parallel.start(opt.parameters)
    ids = backend.asarray(np.random.default_rng(0).integers(0, vocab, (batch, block)))  # the global batch
    times, reduce_times = [], []
    warmup = 3 if steps > 2 else 1
    for i in range(steps + warmup):
        reduced = parallel.reduce_seconds
        t0 = time.perf_counter()
        trainer.train_step([(ids, ids)])  # this rank's share of the windows
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            reduce_times.append(parallel.reduce_seconds - reduced)
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


def run(configs: list[str], repeat: int, threads: int, as_json: bool) -> None:
    """Tokens/s of one process (``threads`` threads), mpiexec -n 2 (the threads split) and PyTorch eager."""
    ranks = 2
    report: dict = {"machine": machine(), "threads": threads, "ranks": ranks, "configs": {}}
    for name in configs:
        runs: dict[str, list[dict]] = {"one": [], "ranks": [], "torch": []}
        for _ in range(repeat):  # alternated, best of each: load on the machine hits all alike
            runs["one"].append(run_worker(["trainer", name], threads=threads))
            runs["ranks"].append(run_worker(["trainer", name], ranks=ranks, threads=max(1, threads // ranks)))
            runs["torch"].append(run_worker(["pytorch", name, str(threads)], threads=threads))
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


WORKERS = {"trainer": worker_trainer}
