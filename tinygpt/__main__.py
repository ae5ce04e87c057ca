"""``python -m tinygpt`` runs the command line."""

import sys

from tinygpt.cli import main

sys.exit(main())
