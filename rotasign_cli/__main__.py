"""`python -m rotasign_cli` and the `rotasign` console script."""

from __future__ import annotations

import sys

from rotasign_cli.cli import main

if __name__ == "__main__":
    sys.exit(main())
