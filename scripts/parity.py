"""Does tinygpt learn as well as PyTorch? Train both on the same text, same model, same steps.

    python scripts/parity.py                 # default config, Shakespeare, 2000 steps
    python scripts/parity.py --max-iters 300 # quicker look

Runs ``tinygpt train`` + ``tinygpt eval`` and ``scripts/torch_reference.py``
with identical settings, then prints both full-validation losses (mean over
every non-overlapping window of the validation split) and their difference.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-iters", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tolerance", type=float, default=0.03)
    args = parser.parse_args()
    flags = ["--max-iters", str(args.max_iters), "--seed", str(args.seed)]

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        train = [sys.executable, "-m", "tinygpt", "train", "--out", str(run), "--no-progress", *flags]
        subprocess.run(train, check=True, stdout=sys.stderr)
        ev = [
            sys.executable,
            "-m",
            "tinygpt",
            "eval",
            "--checkpoint",
            str(run),
            "--which",
            "latest",
            "--json",
        ]
        ours = _last_json(subprocess.run(ev, check=True, capture_output=True, text=True).stdout)
    ref = [sys.executable, str(HERE / "torch_reference.py"), "--json", "--threads", str(args.threads), *flags]
    theirs = _last_json(subprocess.run(ref, check=True, capture_output=True, text=True).stdout)

    a, b = ours["val_loss"], theirs["final_val_loss_full"]
    verdict = "within" if abs(a - b) <= args.tolerance else "OUTSIDE"
    print(f"full validation loss after {args.max_iters} steps: tinygpt {a:.4f}, PyTorch {b:.4f}")
    print(f"difference {a - b:+.4f} ({verdict} the {args.tolerance} tolerance)")
    sys.exit(0 if verdict == "within" else 1)


if __name__ == "__main__":
    main()
