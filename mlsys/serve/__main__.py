"""``python -m mlsys.serve``: the same as ``mlsys serve``."""

import sys

if __name__ == "__main__":  # not when a spawned replica re-imports this module as __mp_main__
    try:
        from .cli import main

        code = main(sys.argv[1:])
    except KeyboardInterrupt:  # Ctrl-C while the libraries are still importing
        code = 130
    sys.exit(code)
