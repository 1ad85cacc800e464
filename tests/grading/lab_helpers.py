"""Build submissions from a lab: the reference for some parts, stubs for the rest."""

from __future__ import annotations

import copy
from pathlib import Path

from nbformat.v4 import new_code_cell

from mlsys.grading import labs, notebook


def submission(lab: labs.Lab, solved: set[str] | None = None, *,
               after: dict[str, list[str]] | None = None,
               replace: dict[str, str] | None = None):
    """The student version with the reference filled into the solution cells named in ``solved``
    (all when None), code cells inserted after the cells named in ``after``, and the sources of
    the cells named in ``replace`` swapped."""
    student = lab.student_notebook()
    out = copy.deepcopy(student)
    out.cells = []
    for ref, cell in zip(lab.source.cells, student.cells):
        gid = notebook.nbgrader_meta(cell).get("grade_id")
        cell = copy.deepcopy(cell)
        if notebook.nbgrader_meta(cell).get("solution") and (solved is None or gid in solved):
            cell.source = ref.source.replace(notebook.BEGIN_SOLUTION, "").replace(
                notebook.END_SOLUTION, "")
        if replace and gid in replace:
            cell.source = replace[gid]
        out.cells.append(cell)
        for source in (after or {}).get(gid, []):
            out.cells.append(new_code_cell(source))
    return out


def save(nb, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return notebook.write(nb, path)


def partial(lab: labs.Lab):
    """The reference in every other solution cell (the first, the third...), stubs elsewhere:
    honest work that passes some tests and fails others."""
    ids = [notebook.nbgrader_meta(c).get("grade_id") for c in lab.source.cells
           if notebook.nbgrader_meta(c).get("solution")]
    return submission(lab, set(ids[::2]))


# Submissions that use the library's own implementation of the task (graded to zero), by lab:
# the solution cells they replace, and the score their other (honest) cells keep.
LIBRARY = {
    "collectives": ({"ring": "from mlsys.comm.schedules import ALGORITHMS\n\n"
                             "def ring_all_reduce(world_size, count):\n"
                             "    return ALGORITHMS['ring'](world_size, count)"}, 0),
    "pipeline": ({"schedule": "from mlsys.parallel.schedules import one_f_one_b\n"
                              "schedule_1f1b = one_f_one_b",
                  "bubble": "import mlsys.parallel.schedules as s\n\n"
                            "def predicted_bubble(p, m):\n    return s.bubble_fraction('1f1b', p, m)",
                  "peaks": "from simulators.training import peak_in_flight as peaks\n"
                           "from mlsys.parallel.schedules import one_f_one_b\n\n"
                           "def predicted_peaks(p, m):\n    return peaks(one_f_one_b(p, m))"}, 0),
    "tensor_parallel": ({"shard": "from types import SimpleNamespace\n\n"
                                  "from mlsys.parallel.mappings import shard_range\n\n"
                                  "def shard_columns(weight, rank, world_size):\n"
                                  "    group = SimpleNamespace(rank=rank, world_size=world_size)\n"
                                  "    a, b = shard_range(np.shape(weight)[1], group, 'in_features')\n"
                                  "    return np.array(np.asarray(weight)[:, a:b])"}, 0),
    "kernels": ({"tiled": "from mlsys.kernels.cuda import matmul as library\n\n"
                          "def tiled_matmul_kernel(tile):\n    return library.tiled_kernel(tile)"},
                2),
    "graph_compiler": ({"cse": "from mlsys.graph.passes import eliminate_common_subexpressions"
                               " as cse",
                        "fuse": "import mlsys.graph.passes as passes\n\ndef fuse(graph):\n"
                                "    return passes.fuse_elementwise(graph, reductions=False)"},
                       3),
    "scheduling": ({"policy": "from simulators.scheduling.policies.las import LAS\n"
                              "_las = LAS((600.0, 3600.0, 36000.0))\n\n"
                              "def blind_key(arrival, index, gpus, attained):\n"
                              "    return (_las.queue(attained), arrival, index)\n\n"
                              "def next_key_change(attained, gpus, now):\n    return None"}, 2),
    "step_cost": ({"linear_cost": "def linear_forward_cost(batch, n_in, n_out, itemsize=4):\n"
                                  "    return measured_linear(batch, n_in, n_out, 'float32')",
                   "step_flops": "from mlsys.ops import PRIMITIVES\n\n"
                                 "def step_matmul_flops(batch, sizes):\n"
                                 "    rows = measured_step(batch, sizes)\n"
                                 "    return sum(f for op, f, _ in rows if op == 'matmul')"}, 3),
    "scaling": ({"laws": "from simulators import scaling\n\namdahl_speedup = scaling.amdahl\n\n"
                         "def gustafson_speedup(f, n):\n    return scaling.gustafson(f, n)",
                 "best": "from simulators.scaling import Workload, optimal_workers\n\n"
                         "def best_workers(serial, parallel, comm):\n"
                         "    return optimal_workers(Workload(serial, parallel, comm))"}, 6),
    "kmeans": ({"statistics": "from mlsys.classic.kmeans import KMeansPartition\n\n"
                              "def local_statistics(x, centroids):\n"
                              "    return KMeansPartition(x, centroids).statistics(0)"}, 2),
    "serving": ({"fit": "from simulators.serving import Empirical\n\n"
                        "def fit_cost_curve(samples):\n"
                        "    curve = Empirical(samples).curve\n"
                        "    return curve.fixed, curve.per_item",
                 "policy": "from mlsys.serve import MaxSizeMaxWait\n"
                           "_fixed_setting = MaxSizeMaxWait(128, 0.0008)\n\n"
                           "def batch_decision(state, target):\n"
                           "    return _fixed_setting.decide(state)"}, 0),
}
