"""``python -m bench <scenario> [options]``: the one entry point of the load generator."""

from __future__ import annotations

import sys

from bench.loadgen.cli import main

if __name__ == "__main__":
    sys.exit(main())
