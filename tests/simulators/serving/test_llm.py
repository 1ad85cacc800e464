"""Large-model serving: KV-cache sizes from model shapes, decode on the roofline, batching and paging."""

from __future__ import annotations

import numpy as np
import pytest

from simulators.core.hardware import gpu
from simulators.serving.llm import (
    LLMS,
    decode_step_time,
    kv_capacity_tokens,
    llm,
    prefill_time,
    simulate_llm,
    synthetic_requests,
)


def test_kv_cache_per_token_matches_the_vllm_paper_and_grouped_query_attention() -> None:
    # Kwon et al. (SOSP 2023), section 2: "for the 13B parameter OPT model, the KV cache of a single
    # token demands 800 KB": 2 (K and V) x 40 layers x 5120 x 2 bytes.
    assert llm("opt-13b").kv_bytes_per_token("fp16") == 2 * 40 * 5120 * 2 == 800 * 1024
    # Llama 2 70B keeps 8 of 64 heads for K and V: 8x less cache per token than full attention
    full = 2 * 80 * 8192 * 2
    assert llm("llama2-70b").kv_bytes_per_token("fp16") * 8 == full


def test_decode_is_bandwidth_bound_at_small_batches_and_compute_bound_at_large() -> None:
    model, a100 = llm("llama2-7b"), gpu("A100")
    weights_time = model.weight_bytes("fp16") / a100.memory_bandwidth
    assert decode_step_time(model, a100, [1]) == pytest.approx(weights_time, rel=0.01)
    one, eight = decode_step_time(model, a100, [512]), decode_step_time(model, a100, [512] * 8)
    assert eight < 1.5 * one  # eight sequences for little more than the price of one
    assert type(one) is float and type(prefill_time(model, a100, [16])) is float  # not numpy scalars
    huge = decode_step_time(model, a100, [1] * 4096)
    assert huge == pytest.approx(2 * model.params * 4096 / a100.peak("fp16"), rel=0.05)
    assert prefill_time(model, a100, [2048]) == pytest.approx(
        (2 * model.params * 2048 + 2 * 32 * 4096 * 2048 ** 2) / a100.peak("fp16"))


def test_memory_limits_are_enforced() -> None:
    assert kv_capacity_tokens(llm("llama2-70b"), "A100") == 0  # 138 GB of fp16 weights
    with pytest.raises(ValueError, match="not even one sequence fits"):
        simulate_llm(synthetic_requests(10, 1.0), "llama2-70b", "A100")
    with pytest.raises(ValueError, match="max_seq_len"):
        simulate_llm(synthetic_requests(10, 1.0, max_len=4096), "llama2-7b", "A100", max_seq_len=512)
    with pytest.raises(ValueError, match="unknown model"):
        llm("gpt-5")


@pytest.fixture(scope="module")
def runs() -> dict[str, dict]:
    requests = synthetic_requests(600, 8.0, prompt_mean=256, output_mean=256, seed=1)
    settings = {"static": ("static", "contiguous"), "continuous": ("continuous", "contiguous"),
                "paged": ("continuous", "paged")}
    return {name: simulate_llm(requests, "llama2-13b", "A100", batching=b, kv=kv, max_seq_len=2048)
            for name, (b, kv) in settings.items()}


def test_every_request_finishes_once_after_its_first_token(runs: dict) -> None:
    for result in runs.values():
        assert np.isfinite(result.finish).all() and np.isfinite(result.first_token).all()
        assert (result.first_token >= result.requests.arrival).all()
        assert (result.finish >= result.first_token).all()
        assert (result.iterations[:, 4] <= result.capacity_tokens).all()  # never over memory
        assert len(result.to_recorder(limit=50)) == 50


def test_continuous_batching_and_paging_raise_throughput_and_cut_waiting(runs: dict) -> None:
    s, c, p = (runs[k].summary() for k in ("static", "continuous", "paged"))
    assert s["tokens_per_s"] < c["tokens_per_s"] < p["tokens_per_s"]
    assert p["ttft_mean_s"] < c["ttft_mean_s"] < s["ttft_mean_s"]
    # contiguous reservations for 2,048 tokens hold mostly empty memory; pages hold what is used
    assert c["kv_used_of_held"] < 0.4 < 0.9 < p["kv_used_of_held"]
    assert p["mean_batch"] > c["mean_batch"]


def test_catalogue_models_have_sources() -> None:
    assert all(shape.source for shape in LLMS.values())
