"""Collective algorithms on a modelled network: the ``mlsys.comm`` schedules, simulated.

:func:`simulate` (:mod:`.run`) runs a :class:`~mlsys.comm.schedules.Schedule` the way the real
executor (:mod:`mlsys.comm.executor`) does, on a :class:`~simulators.core.Network`; on an
uncontended topology its time equals the alpha-beta-gamma closed forms (:func:`alpha_beta`,
:mod:`.closed_form`). :mod:`.calibration` predicts the real engine on this machine from the cost
model of :mod:`mlsys.comm.cost`, and :mod:`.cli` is ``mlsys sim collectives``: simulated vs
measured all-reduce on this machine.
"""

from .calibration import fit, load_calibration, machine, measure, predict
from .cli import main
from .closed_form import alpha_beta
from .run import CollectiveRun, simulate

__all__ = ["CollectiveRun", "simulate", "alpha_beta", "machine", "predict", "fit", "load_calibration",
           "measure", "main"]
