"""The statistics an online-experimentation platform runs (``mlsys.experiments``).

* :mod:`~mlsys.experiments.moments` — arms as sufficient statistics; the z-test and CUPED;
* :mod:`~mlsys.experiments.power` — sample size, power and minimum detectable effect;
* :mod:`~mlsys.experiments.sequential` — the error rate of peeking, group-sequential boundaries
  and always-valid (mSPRT) p-values and intervals.

Users, traffic and metrics to run them on are simulated in :mod:`simulators.experiments`.
"""

from .moments import Estimate, Moments, cuped, cuped_theta, difference
from .power import achieved_power, minimum_detectable_effect, sample_size
from .sequential import (
    always_valid_interval,
    always_valid_p,
    crossing_probability,
    group_sequential_bounds,
    peeking_error_rate,
    spent_alpha,
)

__all__ = ["Moments", "Estimate", "difference", "cuped", "cuped_theta", "sample_size", "achieved_power",
           "minimum_detectable_effect", "peeking_error_rate", "crossing_probability",
           "group_sequential_bounds", "spent_alpha", "always_valid_p", "always_valid_interval"]
