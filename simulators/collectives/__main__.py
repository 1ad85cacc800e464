"""``python -m simulators.collectives``: the same as ``mlsys sim collectives``."""

from .cli import main

raise SystemExit(main())
