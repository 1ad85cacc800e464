"""Data drift: has the distribution of a feature moved since the model was trained?

Two measures per column, as monitoring tools report them:

* the **population stability index**, ``PSI = sum_i (a_i - e_i) ln(a_i / e_i)`` over bins cut at the
  reference sample's quantiles, where ``e_i`` and ``a_i`` are the fractions of the reference and
  of the current sample in bin ``i`` (a symmetrised Kullback-Leibler divergence of the binned
  distributions). The rule of thumb reads below 0.10 as little change, 0.10 to 0.25 as moderate
  and above 0.25 (the default alert) as a significant shift that needs action (Yurdakul, 2018);
* the **two-sample Kolmogorov-Smirnov test** (``scipy.stats.ks_2samp``): the largest gap between
  the two empirical distribution functions and its p-value. Testing many columns at once, the
  alert level is divided by their number (Bonferroni), so a stable table raises a false alarm
  with probability at most ``alpha`` in all.

PSI grows with the size of a shift; the KS p-value with the sample size too, so with enough rows
a shift too small to matter is still "significant": report both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .schema import Columns

_FLOOR = 1e-4  # an empty bin counts as this fraction, so that ln(a / e) stays finite


def _present(values: np.ndarray, what: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[~np.isnan(values)]
    if len(values) < 2:
        raise ValueError(f"{what} needs at least 2 values, got {len(values)}")
    return values


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """The population stability index of ``current`` against ``reference`` (NaNs ignored)."""
    if not isinstance(bins, int) or bins < 2:
        raise ValueError(f"psi: bins must be an integer >= 2, got {bins!r}")
    reference, current = _present(reference, "psi: reference"), _present(current, "psi: current")
    inner = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    expected = np.bincount(np.searchsorted(inner, reference, side="right"), minlength=len(inner) + 1)
    actual = np.bincount(np.searchsorted(inner, current, side="right"), minlength=len(inner) + 1)
    e = np.maximum(expected / len(reference), _FLOOR)
    a = np.maximum(actual / len(current), _FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass(frozen=True)
class ColumnDrift:
    """One column's drift measures and whether each crossed its alert level."""

    column: str
    psi: float
    ks_statistic: float
    p_value: float
    psi_alert: bool
    ks_alert: bool

    @property
    def drifted(self) -> bool:
        return self.psi_alert or self.ks_alert


def drift_report(reference: Columns, current: Columns, columns: Sequence[str] | None = None, *,
                 bins: int = 10, psi_threshold: float = 0.25, alpha: float = 0.01) -> list[ColumnDrift]:
    """PSI and the KS test for each of ``columns`` (default: every column of ``reference``)."""
    from scipy.stats import ks_2samp

    if not 0 < alpha < 1:
        raise ValueError(f"drift_report: alpha must be in (0, 1), got {alpha!r}")
    if not psi_threshold > 0:
        raise ValueError(f"drift_report: psi_threshold must be > 0, got {psi_threshold!r}")
    names = list(reference) if columns is None else list(columns)
    missing = [n for n in names if n not in reference or n not in current]
    if missing:
        raise KeyError(f"drift_report: columns {missing} are missing from the reference or current table")
    report = []
    for name in names:
        ref = _present(reference[name], f"drift_report: reference column {name!r}")
        cur = _present(current[name], f"drift_report: current column {name!r}")
        index = psi(ref, cur, bins)
        test = ks_2samp(ref, cur)
        report.append(ColumnDrift(name, index, float(test.statistic), float(test.pvalue),
                                  index > psi_threshold, float(test.pvalue) < alpha / len(names)))
    return report
