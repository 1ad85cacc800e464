"""First in, first out: jobs run in arrival order (what YARN's capacity scheduler does per queue).

With ``skip_blocked=False`` a blocked head-of-line job holds everyone back (strict FIFO); the
default lets later jobs that fit go first, as the YARN-CS baseline of Tiresias (Gu et al., NSDI'19)
does — which can starve large jobs (compare EASY backfilling).
"""

from __future__ import annotations

from .base import Policy


class FIFO(Policy):
    name = "fifo"
