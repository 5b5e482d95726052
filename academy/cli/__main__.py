"""``python -m academy.cli``: the same as ``f0``."""

import sys

from academy.cli import main

if __name__ == "__main__":
    sys.exit(main())
