"""Standard training-simulator scenarios for ``mlsys bench sim``: wall time and events per second.

The headline scenario is GPT-3 175B (Brown et al., 2020) on 1,024 A100s with Megatron-LM's 3D
layout from SC'21 (tp=8, pp=16, dp=8, batch 1,536, interleaved 1F1B).
"""

from __future__ import annotations

import time
from typing import Any

from .config import ParallelConfig, TransformerConfig
from .hybrid import simulate
from .parameter_server import ParameterServerConfig, simulate_parameter_server

GPT3_175B = TransformerConfig(layers=96, hidden=12288, heads=96, seq_len=2048)
GPT_1_7B = TransformerConfig(layers=24, hidden=2304, heads=24, seq_len=2048)


def _row(name: str, run: Any) -> dict[str, Any]:
    start = time.perf_counter()
    events, simulated = run()
    wall = time.perf_counter() - start
    return {"family": "training", "scenario": name, "events": events, "simulated_s": simulated,
            "wall_s": wall, "events_per_s": events / wall}


def scenarios(quick: bool = False) -> list[dict[str, Any]]:
    """One row per scenario; ``quick`` shrinks the batch so the whole set takes about a second."""
    batch = 256 if quick else 1536

    def gpt3() -> tuple[int, float]:
        r = simulate(GPT3_175B, ParallelConfig(dp=8, tp=8, pp=16, global_batch=batch,
                                               schedule="interleaved", chunks=2, recompute="full"))
        return len(r.recorder), r.step_time

    def data_parallel() -> tuple[int, float]:
        r = simulate(GPT_1_7B, ParallelConfig(dp=32, global_batch=512 if not quick else 128,
                                              recompute="full", overlap=True, micro_batch=4))
        return len(r.recorder), r.step_time

    def parameter_server() -> tuple[int, float]:
        r = simulate_parameter_server(ParameterServerConfig(
            workers=16, mode="ssp", stragglers=2, duration=2.0 if quick else 20.0))
        return len(r.recorder), r.makespan

    return [_row("gpt3-175b 1024 gpus 3d", gpt3), _row("gpt-1.7b 32 gpus data parallel", data_parallel),
            _row("parameter server 16 workers ssp", parameter_server)]
