"""Classic distributed ML on a modelled cluster: all-reduce, parameter server, dataflow.

:mod:`~simulators.dataflow.model` simulates one BSP superstep of an :mod:`mlsys.classic`
algorithm three ways on a network of nodes; :mod:`~simulators.dataflow.closed` holds the closed
forms it reproduces; :mod:`~simulators.dataflow.calibrate` measures this machine's parts (the
links and the task scheduler, by running the real executors on an algorithm that computes
nothing) and predicts the real runs; :func:`timeline` draws a real run like a simulated one.
"""

from .calibrate import Machine, NullAlgorithm, calibrate, predict, superstep_of
from .closed import allreduce_step, dataflow_step, parameter_server_step
from .model import (
    WAYS,
    Engine,
    Simulated,
    Superstep,
    simulate,
    simulate_allreduce,
    simulate_dataflow,
    simulate_parameter_server,
    star,
)
from .timeline import timeline

__all__ = [
    "WAYS", "Superstep", "Engine", "Simulated", "star", "simulate", "simulate_allreduce",
    "simulate_parameter_server", "simulate_dataflow",
    "allreduce_step", "parameter_server_step", "dataflow_step",
    "Machine", "NullAlgorithm", "calibrate", "predict", "superstep_of", "timeline",
]
