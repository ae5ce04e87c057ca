"""``python -m tinygpt`` and the ``tinygpt`` console script: the command line, Ctrl-C included.

Everything is imported inside ``main``, and ``import tinygpt`` itself loads nothing (see
``tinygpt/__init__.py``), so a Ctrl-C while NumPy and the commands load (the first few hundred
milliseconds) exits 130 quietly, like a Ctrl-C later on, instead of printing a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; exit status 130 for a Ctrl-C at any moment, start-up included."""
    try:
        from tinygpt.cli import main as run

        return run(argv)
    except KeyboardInterrupt:
        print("tinygpt: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
