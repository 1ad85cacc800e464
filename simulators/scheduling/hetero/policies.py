"""Gavel's policies as linear programs over time fractions (Narayanan et al., OSDI'20, section 4).

An allocation ``X[j, k]`` is the fraction of time job ``j`` spends on GPUs of type ``k``; a job of
scale factor ``s_j`` (GPUs per replica set) uses ``s_j`` GPUs while it runs, so
``sum_j s_j X[j, k] <= n_k`` (GPUs of type ``k``) and ``sum_k X[j, k] <= 1``. Its effective
throughput is ``sum_k T[j, k] X[j, k]`` with ``T`` the measured steps/s of its model on ``s_j``
GPUs of each type.

* **Max-min fairness** (Gavel's LAS): maximize the smallest ``s_j x throughput / (throughput on
  an equal share of every type)``, then, at that minimum, the total, so no GPU idles that some
  job could use (Gavel leaves this second step to the solver's choice).
* **Finish-time fairness** (Themis, Gavel's version): minimize the largest ``rho_j = (time since
  arrival + remaining / throughput) / (time isolated + remaining / isolated throughput)``, where
  isolated means ``1/N`` of every type; solved by bisection on ``rho`` over feasibility LPs.

Each has a heterogeneity-agnostic twin, as in Gavel: the program sees every type as equally fast
(max-min: ``T = 1``; finish-time fairness: every type at the V100's speed), while jobs then run at
their real speed on what they were given.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog


def _capacity_rows(scale: np.ndarray, counts: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
    """``A x <= b`` for ``sum_j s_j x_jk <= n_k`` and ``sum_k x_jk <= 1`` (``x`` row-major J x K)."""
    jobs, types = len(scale), len(counts)
    columns = np.arange(jobs * types)
    rows = np.concatenate([columns % types, types + columns // types])
    values = np.concatenate([np.repeat(scale, types), np.ones(jobs * types)])
    matrix = sp.csr_matrix((values, (rows, np.concatenate([columns, columns]))),
                           shape=(types + jobs, jobs * types))
    return matrix, np.concatenate([counts, np.ones(jobs)])


def _per_job(jobs: int, types: int, weights: np.ndarray) -> sp.csr_matrix:
    """The J x (J K) matrix whose row ``j`` is ``weights`` over job ``j``'s K variables."""
    return sp.csr_matrix((weights, np.arange(jobs * types), np.arange(0, jobs * types + 1, types)),
                         shape=(jobs, jobs * types))


def proportional_share(jobs: int, counts: np.ndarray) -> np.ndarray:
    """Each job's ``1/N`` of every type's GPUs as time fractions, rows scaled to sum <= 1
    (Gavel's yardstick for max-min fairness)."""
    x = np.tile(counts / jobs, (jobs, 1))
    return x / max(x.sum(axis=1).max(), 1.0)


def equal_share(scale: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Each job's ``1/N`` of every type, divided by its scale factor, rows scaled to sum <= 1."""
    x = np.tile(counts / len(scale), (len(scale), 1)) / scale[:, None]
    return x / np.maximum(x.sum(axis=1), 1.0)[:, None]


def _solve(c, a_ub, b_ub) -> np.ndarray:
    result = linprog(c, A_ub=a_ub, b_ub=b_ub, bounds=(0, None), method="highs")
    if result.status != 0:
        raise RuntimeError(f"allocation LP failed: {result.message}")
    return result.x


class MaxMinFairness:
    """Gavel's max-min fairness (LAS); ``aware=False`` is its heterogeneity-agnostic baseline."""

    def __init__(self, aware: bool = True) -> None:
        self.aware = bool(aware)
        self.name = "max-min fairness" + ("" if aware else " (agnostic)")

    def allocate(self, rates: np.ndarray, scale: np.ndarray, counts: np.ndarray, **_) -> np.ndarray:
        if not self.aware:
            return type_blind_shares(scale, counts)
        jobs, types = rates.shape
        gain = rates * (scale / (rates * proportional_share(len(scale), counts)).sum(axis=1))[:, None]
        a_cap, b_cap = _capacity_rows(scale, counts)
        # maximize t + (mean normalized throughput) / 1000  s.t.  t <= gain_j . x_j: the smallest
        # first, then what is left goes where it helps most
        a_ub = sp.bmat([[a_cap, None], [-_per_job(jobs, types, gain.ravel()),
                                        sp.csr_matrix(np.ones((jobs, 1)))]], format="csr")
        c = np.concatenate([-1e-3 * gain.ravel() / jobs, [-1.0]])
        return _solve(c, a_ub, np.concatenate([b_cap, np.zeros(jobs)]))[:-1].reshape(jobs, types)


def type_blind_shares(scale: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Max-min fairness when every GPU looks alike: every job the same GPU-time ``c`` (its time
    fraction ``c / s_j``, at most 1), the largest ``c`` the cluster holds, each job's time spread
    over the types in proportion to their GPU counts, as a type-blind scheduler that takes
    whatever GPU is free gives it in the long run."""
    total, sizes = counts.sum(), np.sort(scale)
    used = np.concatenate([[0.0], np.cumsum(sizes)])  # GPUs of the jobs capped at a fraction 1
    c = sizes[-1]
    for k, size in enumerate(sizes):  # the first size the cluster cannot give everyone
        if used[k] + size * (len(sizes) - k) > total:
            c = (total - used[k]) / (len(sizes) - k)
            break
    return np.minimum(1.0, c / scale)[:, None] * (counts / total)[None, :]


class FinishTimeFairness:
    """Gavel's finish-time fairness; ``aware=False`` sees every type at the reference type's speed."""

    def __init__(self, aware: bool = True, reference: int = -1, tolerance: float = 1e-2) -> None:
        self.aware, self.reference, self.tolerance = bool(aware), reference, tolerance
        self.name = "finish-time fairness" + ("" if aware else " (agnostic)")
        self._last = None  # the optimum of the previous call: the next one is usually close

    def allocate(self, rates: np.ndarray, scale: np.ndarray, counts: np.ndarray, *,
                 remaining: np.ndarray, age: np.ndarray, isolated_time: np.ndarray) -> np.ndarray:
        jobs, types = rates.shape
        seen = rates if self.aware else np.repeat(rates[:, [self.reference]], types, axis=1)
        iso = (seen * equal_share(scale, counts)).sum(axis=1)
        ideal = isolated_time + remaining / iso             # finish time on an isolated share
        a_cap, b_cap = _capacity_rows(scale, counts)
        a_ub = sp.vstack([a_cap, -_per_job(jobs, types, seen.ravel())]).tocsr()

        def feasible(rho: float) -> np.ndarray | None:
            """An allocation meeting every ``rho_j <= rho``, the rest of the cluster used too."""
            slack = rho * ideal - age
            if (slack <= 0).any():
                return None
            if not self.aware:  # every type alike: the time each job needs, closed form
                need = remaining / (seen[:, 0] * slack)
                if (need > 1).any() or scale @ need > counts.sum():
                    return None
                return (_fill(need, scale, counts.sum())[:, None] * (counts / counts.sum())).ravel()
            result = linprog(-seen.ravel(), A_ub=a_ub,
                             b_ub=np.concatenate([b_cap, -remaining / slack]), bounds=(0, None),
                             method="highs")
            return result.x if result.status == 0 else None

        low = float((age / ideal).max())
        high = max(float(((age + remaining / iso) / ideal).max()), low) * (1 + 1e-9) + 1e-12
        best = feasible(high)
        while best is None:                                  # isolated shares are feasible; guard
            high *= 2
            best = feasible(high)
        if self._last is not None and low < self._last < high:  # bracket around the last optimum
            near = self._last * (1 + self.tolerance)
            if near < high and (x := feasible(near)) is not None:
                high, best = near, x
                below = self._last / (1 + self.tolerance)
                if below > low and feasible(below) is None:
                    low = below
        while high - low > self.tolerance * high:
            mid = (low + high) / 2
            x = feasible(mid)
            if x is None:
                low = mid
            else:
                high, best = mid, x
        self._last = high
        return best.reshape(jobs, types)


def _fill(need: np.ndarray, scale: np.ndarray, gpus: float) -> np.ndarray:
    """``need`` time fractions scaled up by one common factor (each capped at 1) until the jobs
    use all ``gpus`` or all run all the time: what a type-blind scheduler does with spare GPUs."""
    if scale @ np.minimum(1.0, need * 1e12) <= gpus:
        return np.where(need > 0, 1.0, 0.0)
    low, high = 1.0, 2.0
    while scale @ np.minimum(1.0, need * high) < gpus:
        high *= 2
    for _ in range(50):
        mid = (low + high) / 2
        low, high = (mid, high) if scale @ np.minimum(1.0, need * mid) < gpus else (low, mid)
    return np.minimum(1.0, need * low)
