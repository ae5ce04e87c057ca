"""A projection to 8-512 ranks: gradient bytes per step and ring all-reduce time over 10-400 Gb/s links.

Next to one measured step of one process on each config (``--projection``): whether a
step's compute would hide its all-reduce at that scale. Bandwidth only, no latency.
"""

from __future__ import annotations

import json

from benchmarks.common import CONFIGS, machine, run_worker

RANKS = (8, 64, 512)
LINKS_GBIT = (10, 100, 400)


def run(configs: list[str], as_json: bool) -> None:
    """Ring all-reduce time of each config's gradients at 8-512 ranks over 10-400 Gb/s, next to measured compute."""
    rows = {}
    for name in configs:
        measured = run_worker(["trainer", name])  # one process, this machine's threads
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
