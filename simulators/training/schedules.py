"""The pipeline schedules the simulators run: :mod:`mlsys.parallel.schedules`, re-exported.

They are defined once, in ``mlsys``, so that the real pipeline stages
(:mod:`mlsys.parallel.pipeline`) and the simulator (:mod:`simulators.training.pipeline`) read the
same slot lists.
"""

from mlsys.parallel.schedules import (
    PipelineSchedule,
    Slot,
    bubble_fraction,
    build,
    consumers,
    gpipe,
    interleaved,
    num_chunks,
    one_f_one_b,
    peak_in_flight,
)

__all__ = ["PipelineSchedule", "Slot", "bubble_fraction", "build", "consumers", "gpipe",
           "interleaved", "num_chunks", "one_f_one_b", "peak_in_flight"]
