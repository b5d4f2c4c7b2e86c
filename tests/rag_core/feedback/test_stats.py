"""Percentiles and significance tests, checked against values computed by hand (and numpy)."""

from __future__ import annotations

import numpy as np
import pytest

from rag_core.feedback.stats import mann_whitney_u, percentile, two_proportion_z_test


@pytest.mark.parametrize("q", [0, 25, 50, 90, 95, 100])
def test_percentile_matches_numpy(q: float) -> None:
    values = [120.0, 80.0, 3000.0, 450.0, 451.0, 90.0, 2200.0]
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_of_nothing_is_none() -> None:
    assert percentile([], 50) is None


def test_two_proportion_z_test() -> None:
    # 45/100 vs 30/100: pooled 0.375, se = sqrt(.375 * .625 * .02) = 0.068465, z = 2.19089
    result = two_proportion_z_test(45, 100, 30, 100)
    assert result.statistic == pytest.approx(2.19089, abs=1e-5)
    assert result.p_value == pytest.approx(0.028459, abs=1e-5)
    assert result.significant()
    assert not two_proportion_z_test(11, 20, 10, 20).significant()
    assert two_proportion_z_test(5, 0, 3, 10) is None
    assert two_proportion_z_test(10, 10, 10, 10).p_value == 1.0


def test_mann_whitney_u_with_ties() -> None:
    # U1 = 8; ties (5,6,7,8,12 each twice) give variance 6 * (18 - 30 / 272) = 107.338; z = -2.7026
    result = mann_whitney_u([1, 2, 3, 4, 5, 6, 7, 8], [5, 6, 7, 8, 9, 10, 11, 12, 12])
    assert result.statistic == 8.0
    assert result.p_value == pytest.approx(0.006880, abs=1e-5)
    assert mann_whitney_u([1, 2, 3], [1, 2, 3]).p_value == pytest.approx(1.0)
    assert mann_whitney_u([], [1.0]) is None
