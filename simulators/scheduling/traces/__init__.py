"""Trace readers (one module per public format) and the synthetic default workload.

Every reader validates each row — missing columns, non-numbers, negative or zero durations, GPU
counts above ``max_gpus``, unsorted arrivals — and raises :class:`TraceError` naming the file, line
and value; with ``on_error="skip"`` bad rows are listed in ``Trace.skipped`` instead, never dropped
silently.
"""

from __future__ import annotations

from pathlib import Path

from ...data import open_text, resolve
from ..job import Trace
from ._rows import TraceError
from .alibaba import read_pai
from .gavel import load_throughputs, read_gavel
from .helios import read_helios
from .philly import read_philly
from .synthetic import PHILLY_SHAPE, synthetic_trace
from .tiresias import read_published_results, read_service_samples, read_tiresias, read_tiresias_cluster

FORMATS = ("tiresias", "gavel", "philly", "helios", "pai")


def read_trace(path: str | Path, fmt: str | None = None, **options) -> Trace:
    """Read ``path`` as ``fmt`` (guessed from the file when ``None``); ``options`` go to the reader.

    A Gavel trace needs ``throughputs`` (from :func:`load_throughputs`); when omitted, the
    ``simulation_throughputs.json`` beside the trace's folder is used if there is one.
    """
    path = resolve(path)
    fmt = fmt or _guess(path)
    if fmt == "tiresias":
        return read_tiresias(path, **options)
    if fmt == "gavel":
        if "throughputs" not in options:
            found = [p / name for p in (path.parent, path.parent.parent)
                     for name in ("simulation_throughputs.json", "simulation_throughputs.json.gz")]
            found = [p for p in found if p.is_file()]
            if not found:
                raise ValueError(f"{path}: a Gavel trace needs throughputs=load_throughputs(json)")
            options["throughputs"] = load_throughputs(found[0], options.pop("gpu_type", "v100"))
        return read_gavel(path, **options)
    if fmt == "philly":
        return read_philly(path, **options)
    if fmt == "helios":
        return read_helios(path, **options)
    if fmt == "pai":
        return read_pai(path, **options)
    raise ValueError(f"unknown trace format {fmt!r}; expected one of {FORMATS}")


def _guess(path: Path) -> str:
    if path.name.removesuffix(".gz").endswith(".trace"):
        return "gavel"
    with open_text(path) as handle:
        header = handle.readline()
    for fmt, column in (("tiresias", "num_gpu,"), ("philly", "gpu_time"), ("helios", "gpu_num"),
                        ("pai", "plan_gpu")):
        if column in header:
            return fmt
    if header.count(",") == 9:
        return "pai"
    raise ValueError(f"cannot tell the format of {path} from its first line {header.strip()!r}; "
                     f"pass fmt= one of {FORMATS}")


__all__ = ["FORMATS", "PHILLY_SHAPE", "TraceError", "load_throughputs", "read_gavel", "read_helios",
           "read_pai", "read_philly", "read_published_results", "read_service_samples", "read_tiresias",
           "read_tiresias_cluster", "read_trace", "synthetic_trace"]
