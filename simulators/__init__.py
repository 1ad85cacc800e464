"""Discrete-event simulators (on SimPy) for what one machine cannot hold.

Every simulator reads the same definitions as the real engine (primitive cost rules, collective
schedules, pipeline schedules) and records one event log (:class:`simulators.core.Recorder`) that
becomes metrics, matplotlib timelines and Chrome-trace JSON.
"""
