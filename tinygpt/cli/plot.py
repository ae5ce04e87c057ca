"""``tinygpt plot``: a run's loss curves as a PNG (classroom)."""

from __future__ import annotations

import argparse
from typing import Any

from tinygpt.classroom.plots import plot_loss_curves


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "plot",
        help="draw a run's train/validation loss curves to a PNG",
        description="Read RUN_DIR/metrics.jsonl and draw the losses (needs pip install 'tinygpt[plot]').",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="the --out directory of `tinygpt train`")
    p.add_argument("--out", metavar="FILE.png", required=True, help="where to write the picture")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    print(f"wrote {plot_loss_curves(args.run_dir, args.out)}")
    return 0
