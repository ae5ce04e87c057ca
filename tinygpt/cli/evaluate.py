"""``tinygpt eval``: the exact mean loss over a whole validation split (shared out under ``mpiexec``)."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from tinygpt.checkpoint import load_checkpoint
from tinygpt.cli.args import add_checkpoint_flags, add_data_flags, positive_int
from tinygpt.cli.corpus import recorded_run_data
from tinygpt.errors import ConfigError
from tinygpt.training import bits_per_byte, distributed, evaluate_ids


def add_parser(sub: Any) -> None:
    p = sub.add_parser("eval", help="mean loss (and bits per byte) over a whole validation split")
    add_checkpoint_flags(p)
    add_data_flags(p, None)
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--json", action="store_true", help="print one JSON line")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    world = distributed.world()  # under mpiexec, each rank evaluates a share of the windows
    world.use_local_gpu(args.backend, args.device)  # loads the backend: each rank on its GPU
    ckpt = load_checkpoint(args.checkpoint, which=args.which)
    named = args.text is not None or args.corpus is not None or args.data is not None
    if not named and ckpt.huggingface:
        raise ConfigError(
            f"{ckpt.path} is a pretrained model, which records no text to evaluate on: give --text FILE "
            "(or --corpus NAME, or --data DIR); its last --val-fraction is scored"
        )
    if not named and not ckpt.trainer_state.get("data"):
        args.corpus = "shakespeare"  # a checkpoint that recorded no text: the default corpus
    # The data and split the run recorded, unless --data, --text, --corpus or --val-fraction say otherwise.
    block = ckpt.model.config.block_size
    data = recorded_run_data(args, ckpt.trainer_state.get("data", {}), ckpt.tokenizer, block, strict=False)
    val_ids = data.val_ids
    start = time.perf_counter()
    loss = evaluate_ids(ckpt.model, val_ids, args.batch_size, None if world.is_main else False, world)
    windows = val_ids.shape[0] // block
    bpb = bits_per_byte(loss, val_ids.shape[0], data.val_bytes)  # comparable across tokenizers
    result = {
        "val_loss": loss,
        "val_bpb": bpb,
        "windows": windows,
        "tokens": windows * block,
        "checkpoint": str(ckpt.path),
        "seconds": round(time.perf_counter() - start, 2),
    }
    distributed.report(
        json.dumps(result)
        if args.json
        else f"val loss {loss:.4f} ({bpb:.4f} bits per byte) over {windows} windows ({ckpt.path})"
    )
    return 0
