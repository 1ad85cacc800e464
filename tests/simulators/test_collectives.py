"""mlsys.comm schedules on modelled networks: closed forms, contention, hierarchy, calibration."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlsys.comm.cost import CostModel
from mlsys.comm.schedules import ALGORITHMS, hierarchical_ring, run_local
from simulators.collectives import (
    alpha_beta,
    fit,
    load_calibration,
    main,
    predict,
    simulate,
)
from simulators.core import LinkSpec, cluster, fully_connected, ring, switched

ALPHA, BW, GAMMA = 3e-6, 20e9, 2e-11
LINK = LinkSpec(BW, ALPHA)


@pytest.mark.parametrize("p", [2, 3, 4, 8])
@pytest.mark.parametrize("gamma", [0.0, GAMMA])
def test_ring_on_a_ring_is_the_closed_form(p: int, gamma: float) -> None:
    count = 3 * 5 * 7 * 8 * 1024  # divisible by every p here
    run = simulate(ALGORITHMS["ring"](p, count), ring(p, LINK), 4, gamma=gamma)
    assert run.time == pytest.approx(alpha_beta("ring", p, 4 * count, ALPHA, 1 / BW, gamma),
                                     rel=1e-12)


@pytest.mark.parametrize("algorithm", ["recursive_doubling", "halving_doubling", "direct"])
@pytest.mark.parametrize("p", [2, 4, 8])
def test_full_mesh_algorithms_are_their_closed_forms(algorithm: str, p: int) -> None:
    count = 1 << 18
    run = simulate(ALGORITHMS[algorithm](p, count), fully_connected(p, LINK), 4, gamma=GAMMA)
    assert run.time == pytest.approx(alpha_beta(algorithm, p, 4 * count, ALPHA, 1 / BW, GAMMA),
                                     rel=1e-12)


def test_contention_on_a_switch_port_is_shared_bandwidth() -> None:
    p, count = 4, 1 << 20
    nbytes = 4 * count
    topo = switched(p, LINK)  # end-to-end alpha is two hops
    # direct: each rank's one port carries its p-1 messages of n/p at once, in both phases
    run = simulate(ALGORITHMS["direct"](p, count), topo)
    assert run.time == pytest.approx(2 * (2 * ALPHA + (p - 1) * nbytes / p / BW), rel=1e-12)
    # reduce-broadcast: p-1 full buffers converge on the root's port, then leave it
    run = simulate(ALGORITHMS["reduce_broadcast"](p, count), topo)
    assert run.time == pytest.approx(2 * (2 * ALPHA + (p - 1) * nbytes / BW), rel=1e-12)
    # the ring needs one port each way per rank: no contention, closed form with alpha doubled
    run = simulate(ALGORITHMS["ring"](p, count), topo)
    assert run.time == pytest.approx(alpha_beta("ring", p, nbytes, 2 * ALPHA, 1 / BW), rel=1e-12)


@pytest.mark.parametrize("nodes, k", [(1, 4), (3, 1), (2, 2), (3, 4), (4, 3)])
def test_hierarchical_ring_is_an_all_reduce(nodes: int, k: int) -> None:
    rng = np.random.default_rng(0)
    count = 5 * nodes * k + 3  # uneven chunks too
    schedule = hierarchical_ring(nodes, k, count)
    buffers = [rng.standard_normal(count) for _ in range(nodes * k)]
    for out in run_local(schedule, buffers):
        np.testing.assert_allclose(out, np.sum(buffers, axis=0), rtol=1e-12, atol=1e-12)
    assert schedule.num_rounds == 2 * (k - 1) + 2 * (nodes - 1)


def test_hierarchy_wins_on_a_cluster_and_matches_its_two_level_form() -> None:
    nodes, k, nbytes = 4, 8, 64 << 20
    intra, inter = LinkSpec(300e9, 1e-6), LinkSpec(25e9, 5e-6)
    topo = cluster(nodes, k, intra, inter, fabric="rail")
    hier = simulate(hierarchical_ring(nodes, k, nbytes // 4), topo).time
    flat = simulate(ALGORITHMS["ring"](nodes * k, nbytes // 4), topo).time
    two_level = (2 * (k - 1) * (2 * intra.latency + nbytes / k / intra.bandwidth)
                 + 2 * (nodes - 1) * (2 * inter.latency + nbytes / (k * nodes) / inter.bandwidth))
    assert hier == pytest.approx(two_level, rel=1e-12)
    # the flat ring is paced by its cross-node hops (rail -> spine -> rail: 4 links) every round
    p = nodes * k
    assert flat == pytest.approx(alpha_beta("ring", p, nbytes, 4 * inter.latency,
                                            1 / inter.bandwidth), rel=1e-3)
    assert flat / hier > 5


def test_placement_changes_the_route_and_is_validated() -> None:
    topo = cluster(2, 2, LinkSpec(300e9, 1e-6), LinkSpec(25e9, 5e-6))
    schedule = ALGORITHMS["recursive_doubling"](4, 1 << 16)
    interleaved = simulate(schedule, topo, placement=["n0g0", "n1g0", "n1g1", "n0g1"]).time
    assert interleaved > simulate(schedule, topo).time  # now both exchanges cross nodes
    with pytest.raises(ValueError, match="needs 4 devices"):
        simulate(schedule, topo, placement=["n0g0", "n0g1"])
    with pytest.raises(ValueError, match="unknown \\['gpu7'\\]"):
        simulate(schedule, topo, placement=["n0g0", "n0g1", "n1g0", "gpu7"])
    with pytest.raises(ValueError, match="repeated \\['n0g0'\\]"):
        simulate(schedule, topo, placement=["n0g0", "n0g0", "n1g0", "n1g1"])
    with pytest.raises(ValueError, match="itemsize"):
        simulate(schedule, topo, itemsize=0)


def test_runs_are_deterministic_and_recorded_per_message() -> None:
    schedule = ALGORITHMS["double_binary_tree"](6, 1000)
    topo = switched(6, LINK)
    a, b = simulate(schedule, topo, gamma=GAMMA), simulate(schedule, topo, gamma=GAMMA)
    assert a.time == b.time
    comm = [e for e in a.recorder.events if e.category == "comm"]
    assert len(comm) == len(schedule.messages())
    assert sum(e.args["bytes"] for e in comm) == schedule.bytes_sent(4)
    assert a.recorder.makespan == a.time


def test_closed_forms_reject_what_they_do_not_cover() -> None:
    with pytest.raises(ValueError, match="power-of-two world size, got 6"):
        alpha_beta("halving_doubling", 6, 1e6, ALPHA, 1 / BW)
    with pytest.raises(ValueError, match="no closed form for 'binary_tree'"):
        alpha_beta("binary_tree", 4, 1e6, ALPHA, 1 / BW)
    with pytest.raises(ValueError, match="nodes must be a positive integer"):
        hierarchical_ring(0, 2, 10)


def test_fit_recovers_the_model_that_made_the_rows() -> None:
    truth = CostModel(alpha=20e-6, beta=1 / 2e9, gamma=0.3e-9)
    rows = [{"algorithm": a, "ranks": p, "bytes": n,
             "seconds": alpha_beta(a, p, n, truth.alpha, truth.beta, truth.gamma)}
            for a in ("ring", "recursive_doubling") for p in (2, 4) for n in (4096, 1 << 20, 1 << 24)]
    got = fit(rows)
    assert (got.alpha, got.beta, got.gamma) == pytest.approx(
        (truth.alpha, truth.beta, truth.gamma), rel=1e-6)
    # on the machine topology (a switch) the ring is contention-free: the closed form again
    assert predict(truth, "ring", 4, 1 << 20) == pytest.approx(
        alpha_beta("ring", 4, 1 << 20, truth.alpha, truth.beta, truth.gamma), rel=1e-12)


def test_calibration_json_is_read_from_files_strings_and_nested_mappings(tmp_path) -> None:
    data = {"title": "calibration", "rows": [{"fit": {"alpha": 1e-5, "beta": 1e-9}}]}
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(data))
    for source in (data, json.dumps(data), path, str(path)):
        assert load_calibration(source) == CostModel(1e-5, 1e-9, 0.0)
    with pytest.raises(ValueError, match="neither a mapping with 'alpha' and 'beta'"):
        load_calibration({"rows": []})
    with pytest.raises(ValueError, match="beta must be a finite number >= 0, got -1.0"):
        load_calibration({"alpha": 1e-6, "beta": -1.0})
    no_beta = CostModel(1e-6, 0.0, 1e-9)  # all per-byte cost in the reduction
    assert predict(no_beta, "ring", 4, 4096) == pytest.approx(
        alpha_beta("ring", 4, 4096, 1e-6, 0.0, 1e-9), rel=1e-9)
    with pytest.raises(ValueError, match="unknown algorithm 'spiral'"):
        predict(CostModel(1e-6, 1e-9, 0.0), "spiral", 2, 1024)


def test_mlsys_comm_calibrate_output_gives_back_its_model(capsys) -> None:
    from mlsys.comm.calibrate import main as calibrate

    assert calibrate(["-n", "2", "--sizes", "4096,65536", "--algorithms",
                      "ring,recursive_doubling", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    model = load_calibration(out)
    assert f"fitted: {model.describe()}" in out["notes"]
    assert predict(model, "ring", 2, 65536) > 0



def test_prediction_command_measures_the_real_engine(capsys) -> None:
    assert main(["--sizes", "4096,65536", "--algorithms", "ring,recursive_doubling",
                 "--repeat", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["rows"]) == 4
    assert all(r["measured_us"] > 0 and np.isfinite(r["error"]) for r in out["rows"])


def test_prediction_command_reads_a_calibration_and_rejects_bad_arguments(tmp_path, capsys) -> None:
    path = tmp_path / "cal.json"
    path.write_text(json.dumps({"fit": {"alpha": 2e-5, "beta": 1e-9}}))
    assert main(["--sizes", "4096", "--algorithms", "ring", "--repeat", "1", "--json",
                 "--calibration", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rows"][0]["predicted_us"] == pytest.approx(
        alpha_beta("ring", 2, 4096, 2e-5, 1e-9) * 1e6, rel=1e-9)
    assert str(path) in out["notes"][0]
    for bad in (["--ranks", "1"], ["--sizes", "6"], ["--algorithms", "spiral"]):
        with pytest.raises(SystemExit):
            main(bad)

@pytest.mark.parametrize("oversubscription", [1.0, 4.0])
def test_an_oversubscribed_fat_tree_slows_the_inter_node_rings_by_its_ratio(
        oversubscription: float) -> None:
    nodes, k, nbytes = 4, 2, 8 << 20
    intra, inter = LinkSpec(300e9, 1e-6), LinkSpec(25e9, 2e-6)
    topo = cluster(nodes, k, intra, inter, fabric="fat-tree", oversubscription=oversubscription)
    run = simulate(hierarchical_ring(nodes, k, nbytes // 4), topo)
    # the k rings of a node share its leaf's uplinks: each gets inter.bandwidth / oversubscription
    per_ring = inter.bandwidth / oversubscription
    expected = (2 * (k - 1) * (2 * intra.latency + nbytes / k / intra.bandwidth)
                + 2 * (nodes - 1) * (4 * inter.latency + nbytes / (k * nodes) / per_ring))
    assert run.time == pytest.approx(expected, rel=1e-12)
    uplinks = [name for name, link in ((lk.name, lk) for lk in topo.links.values())
               if link.kind == "uplink"]
    assert max(run.bytes_on.get(name, 0.0) for name in uplinks) > 0
