"""Topologies and the fluid alpha-beta network: closed forms, fair sharing, validation."""

from __future__ import annotations

import pytest

from simulators.core import LinkSpec, Network, Topology, cluster, fully_connected, ring, switched

GB = 1e9
LINK = LinkSpec(10 * GB, 2e-6)


def run_transfers(topo: Topology, sends: list[tuple[str, str, float, float]]) -> dict[str, float]:
    """Start each (src, dst, nbytes, at) transfer at time ``at``; return finish time per pair."""
    net = Network(topo)

    def later(src: str, dst: str, nbytes: float, at: float):
        yield net.env.timeout(at)
        yield net.transfer(src, dst, nbytes)

    for s in sends:
        net.env.process(later(*s))
    net.run()
    return {e.resource: e.end for e in net.recorder.events}


@pytest.mark.parametrize("nbytes", [0, 1, 4096, 3.5e8])
def test_lone_message_takes_alpha_plus_n_beta(nbytes: float) -> None:
    done = run_transfers(ring(4, LINK), [("gpu1", "gpu2", nbytes, 0.0)])
    assert done["gpu1->gpu2"] == pytest.approx(LINK.latency + nbytes / LINK.bandwidth, rel=1e-12)


def test_switch_route_crosses_two_links() -> None:
    topo = switched(3, LINK)
    assert [link.name for link in topo.route("gpu0", "gpu2")] == ["gpu0->switch", "switch->gpu2"]
    assert topo.latency("gpu0", "gpu2") == 2 * LINK.latency
    assert topo.bandwidth("gpu0", "gpu2") == LINK.bandwidth


def test_two_flows_on_one_link_share_it() -> None:
    n = 1e8
    done = run_transfers(switched(3, LinkSpec(GB, 0.0)),
                         [("gpu0", "gpu2", n, 0.0), ("gpu1", "gpu2", n, 0.0)])
    assert done["gpu0->gpu2"] == pytest.approx(2 * n / GB)
    assert done["gpu1->gpu2"] == pytest.approx(2 * n / GB)


def test_late_flow_slows_the_early_one_only_while_they_overlap() -> None:
    n, bw = 1e8, GB
    done = run_transfers(switched(3, LinkSpec(bw, 0.0)),
                         [("gpu0", "gpu2", n, 0.0), ("gpu1", "gpu2", n, n / (2 * bw))])
    # first: half alone, half at half rate; second: half at half rate, half alone
    assert done["gpu0->gpu2"] == pytest.approx(1.5 * n / bw, rel=1e-12)
    assert done["gpu1->gpu2"] == pytest.approx(2.0 * n / bw, rel=1e-12)


def test_max_min_fairness_gives_spare_capacity_to_the_unconstrained_flow() -> None:
    # a -> s1 -> s2 -> b and c -> s2 -> b share s2->b (1 GB/s); c's own port is slow (0.25 GB/s)
    topo = Topology("dumbbell")
    for v in ("a", "b", "c"):
        topo.add_device(v)
    topo.add_switch("s1")
    topo.add_switch("s2")
    topo.connect("a", "s1", LinkSpec(GB, 0.0))
    topo.connect("s1", "s2", LinkSpec(GB, 0.0))
    topo.connect("s2", "b", LinkSpec(GB, 0.0))
    topo.connect("c", "s2", LinkSpec(GB / 4, 0.0))
    n = 1e8
    done = run_transfers(topo, [("a", "b", n, 0.0), ("c", "b", n, 0.0)])
    assert done["c->b"] == pytest.approx(n / (GB / 4))
    assert done["a->b"] == pytest.approx(n / (0.75 * GB))


def test_compute_queues_on_its_device_and_is_recorded() -> None:
    net = Network(ring(2, LINK))
    net.compute("gpu0", 1.0, name="fwd")
    net.compute("gpu0", 2.0, name="bwd")
    net.compute("gpu1", 0.5)
    assert net.run() == 3.0
    assert net.recorder.busy_time("gpu0") == 3.0
    assert {e.name: e.start for e in net.recorder.events}["bwd"] == 1.0
    trace = net.recorder.to_chrome_trace()
    assert sum(e["ph"] == "X" for e in trace["traceEvents"]) == 3


def test_bytes_are_counted_per_link() -> None:
    net = Network(switched(3, LINK))
    net.transfer("gpu0", "gpu1", 100)
    net.transfer("gpu2", "gpu1", 50)
    net.run()
    assert net.bytes_on["switch->gpu1"] == 150
    assert net.bytes_on["gpu0->switch"] == 100


def test_simulation_is_deterministic() -> None:
    topo = cluster(4, 4, LinkSpec(100 * GB, 1e-6), LinkSpec(25 * GB, 5e-6), fabric="fat-tree",
                   nodes_per_leaf=2, spines=2)
    sends = [(f"n{i}g{j}", f"n{(i + 1) % 4}g{(j + 1) % 4}", 1e6 * (j + 1), 1e-6 * i)
             for i in range(4) for j in range(4)]
    assert run_transfers(topo, sends) == run_transfers(topo, sends)


def test_cluster_routes_follow_the_fabric() -> None:
    intra, inter = LinkSpec(300 * GB, 1e-6), LinkSpec(25 * GB, 5e-6)
    rail = cluster(2, 4, intra, inter, fabric="rail")
    assert len(rail.devices) == 8
    assert [link.kind for link in rail.route("n0g1", "n0g3")] == ["nvlink", "nvlink"]
    assert [link.dst for link in rail.route("n0g1", "n1g1")] == ["rail1", "n1g1"]
    assert len(rail.route("n0g1", "n1g2")) == 4  # rail -> spine -> other rail
    tree = cluster(4, 2, intra, inter, fabric="fat-tree", nodes_per_leaf=2, spines=2,
                   oversubscription=2.0)
    assert len(tree.route("n0g0", "n1g0")) == 2  # same leaf
    # inside a node the leaf is as few hops away as the NVSwitch, but NVLink is faster
    assert [link.kind for link in tree.route("n0g0", "n0g1")] == ["nvlink", "nvlink"]
    uplinks = [link for link in tree.links.values() if link.kind == "uplink"]
    assert {link.bandwidth for link in uplinks} == {2 * 2 * 25 * GB / (2 * 2.0)}
    spines_used = {tree.route(f"n0g{j}", f"n{i}g{k}")[1].dst
                   for i in (2, 3) for j in range(2) for k in range(2)}
    assert spines_used == {"spine0", "spine1"}  # ECMP spreads flows over both spines


def test_fully_connected_has_a_direct_link_per_pair() -> None:
    topo = fully_connected(4, LINK)
    assert len(topo.links) == 4 * 3
    assert all(len(topo.route(f"gpu{i}", f"gpu{j}")) == 1
               for i in range(4) for j in range(4) if i != j)


@pytest.mark.parametrize("make, match", [
    (lambda: LinkSpec(0, 1e-6), "bandwidth must be a positive"),
    (lambda: LinkSpec(1e9, -1.0), "latency must be a non-negative"),
    (lambda: ring(1, LINK), "ring: n must be an integer >= 2"),
    (lambda: cluster(2, 4, LINK, LINK, fabric="torus"), "fabric must be 'rail' or 'fat-tree'"),
    (lambda: cluster(2, 4, LINK, LINK, oversubscription=0.5), "oversubscription"),
    (lambda: ring(3, LINK).route("gpu0", "gpu0"), "both 'gpu0'"),
    (lambda: Network(ring(3, LINK)).transfer("gpu0", "gpu1", -5), "nbytes must be a finite"),
    (lambda: Network(ring(3, LINK)).compute("gpu0", float("nan")), "seconds must be"),
])
def test_bad_input_is_rejected_with_a_clear_error(make, match) -> None:
    with pytest.raises(ValueError, match=match):
        make()


def test_unknown_vertices_are_named() -> None:
    with pytest.raises(KeyError, match="'gpu9' is not a device"):
        ring(3, LINK).route("gpu0", "gpu9")
    with pytest.raises(KeyError, match="switch"):
        switched(2, LINK).route("gpu0", "switch")
    topo = Topology()
    topo.add_device("a")
    topo.add_device("b")
    with pytest.raises(ValueError, match="no route from 'a' to 'b'"):
        topo.route("a", "b")
