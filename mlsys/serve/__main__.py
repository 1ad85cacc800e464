"""``python -m mlsys.serve``: the same as ``mlsys serve``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
