"""Heterogeneous clusters (K80, P100, V100) under Gavel's heterogeneity-aware policies."""

from __future__ import annotations

from .policies import FinishTimeFairness, MaxMinFairness
from .simulator import GPU_TYPES, HeteroResult, compare, rate_matrix, replay_hetero, throughput_table

__all__ = ["GPU_TYPES", "FinishTimeFairness", "HeteroResult", "MaxMinFairness", "compare",
           "rate_matrix", "replay_hetero", "throughput_table"]
