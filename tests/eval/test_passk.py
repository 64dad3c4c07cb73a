import math
from fractions import Fraction

import pytest

from eval.passk import mean_and_se, pass_at_k, score


@pytest.mark.parametrize(
    "n, c, k, expected",
    [
        (5, 0, 1, 0.0),
        (5, 5, 1, 1.0),
        (5, 2, 1, 0.4),  # c / n
        (4, 1, 2, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
        (10, 3, 5, 11 / 12),  # 1 - C(7,5)/C(10,5) = 1 - 21/252
        (10, 6, 5, 1.0),  # fewer than k failures: every draw of 5 holds a pass
        (200, 1, 100, 0.5),  # 1 - C(199,100)/C(200,100) = 1 - 100/200
    ],
)
def test_estimator_matches_hand_computed_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_estimator_is_exact_where_binomials_overflow_floats():
    # C(200, 100) ~ 9e58 and C(2000, 1000) overflows a float; the product form stays exact.
    for n, c, k in [(200, 10, 10), (200, 37, 100), (2000, 3, 1000)]:
        exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
        assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-12)


def test_estimator_rejects_impossible_counts():
    with pytest.raises(ValueError):
        pass_at_k(5, 6, 1)
    with pytest.raises(ValueError):
        pass_at_k(5, 1, 10)


def test_standard_error_over_problems():
    # Two problems at 0 and 1: mean 0.5, sample std sqrt(0.5), SE sqrt(0.5)/sqrt(2) = 0.5.
    assert mean_and_se([0.0, 1.0]) == pytest.approx((0.5, 0.5))
    assert mean_and_se([0.25]) == (0.25, 0.0)


def test_score_reports_k_only_where_every_problem_has_k_samples():
    r = score({"A": (10, 3), "B": (12, 0), "C": (10, 10)})
    assert r["pass@1"] == pytest.approx((0.3 + 0.0 + 1.0) / 3)
    assert r["pass@10"] == pytest.approx((1.0 + 0.0 + 1.0) / 3)  # A: 7 failures < 10 draws
    assert "pass@100" not in r
    assert r["pass@1_se"] == pytest.approx(mean_and_se([0.3, 0.0, 1.0])[1])
    assert (r["n_samples"], r["n_problems"], r["n_passed"]) == (32, 3, 13)
    assert r["per_problem"]["A"] == {"n": 10, "passed": 3, "pass_rate": 0.3}
