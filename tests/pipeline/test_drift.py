"""Drift checks: PSI against hand and closed-form values, KS false alarms held at alpha."""

from __future__ import annotations

import numpy as np
import pytest

from mlsys.pipeline import drift_report, psi


def test_psi_by_hand() -> None:
    reference = np.arange(10.0)  # deciles: one value per bin
    current = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 9.0, 9.0, 9.0, 9.0, 9.0])
    share = np.array([0.5] + [1e-4] * 8 + [0.5])  # empty bins count as 1e-4
    assert psi(reference, current) == pytest.approx(np.sum((share - 0.1) * np.log(share / 0.1)))
    assert psi(reference, reference) == 0.0


@pytest.mark.parametrize("shift", [0.1, 0.3, 0.5])
def test_psi_of_a_normal_shift_approaches_the_symmetric_kl_divergence(shift) -> None:
    # for N(0, 1) vs N(m, 1) both Kullback-Leibler divergences are m^2 / 2: their sum is m^2;
    # binning can only lose information, so PSI is a little below it
    rng = np.random.default_rng(0)
    value = psi(rng.normal(0, 1, 200_000), rng.normal(shift, 1, 200_000))
    assert 0.9 * shift**2 < value < shift**2


def test_ks_alarms_hold_the_family_error_rate() -> None:
    rng = np.random.default_rng(1)
    false_alarms = 0
    for _ in range(150):
        table = lambda: {f"c{i}": rng.normal(size=100) for i in range(5)}
        false_alarms += any(c.ks_alert for c in drift_report(table(), table(), alpha=0.05))
    # Bonferroni over 5 columns: at most 5% of stable tables alarm (without it: 1 - 0.95^5 = 23%)
    assert false_alarms / 150 <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 150)


def test_drift_report_finds_the_shifted_column_only() -> None:
    rng = np.random.default_rng(2)
    reference = {"age": rng.normal(40, 10, 2000), "income": rng.lognormal(10, 1, 2000)}
    current = {"age": rng.normal(40, 10, 2000), "income": rng.lognormal(10.6, 1, 2000)}
    age, income = drift_report(reference, current)
    assert not age.drifted and income.psi_alert and income.ks_alert and income.p_value < 1e-10
    with pytest.raises(KeyError, match=r"columns \['height'\] are missing"):
        drift_report(reference, current, ["height"])
    with pytest.raises(ValueError, match="bins must be an integer >= 2, got 1"):
        psi(reference["age"], current["age"], bins=1)
