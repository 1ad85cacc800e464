"""Online experiments (A/B tests), simulated: users arriving, a hashed traffic split, an
overdispersed metric with a pre-period covariate, lifts and novelty effects.

The statistics run on the output are the platform's own, in :mod:`mlsys.experiments`.
"""

from .assignment import BUCKETS, assign, bucket
from .population import DailyArms, Effect, Population, Users, simulate_experiments, simulate_users

__all__ = ["Population", "Effect", "Users", "DailyArms", "simulate_users", "simulate_experiments",
           "assign", "bucket", "BUCKETS"]
