"""The discrete Gaussian sampler (privacy/noise.py) and the count-release design built on it."""

from __future__ import annotations

import ast
import inspect
import math

import numpy as np
import pytest

from privacy import count_release, noise
from privacy.accounting import epsilon
from privacy.count_release import ShareDesign, calibrate_count_sigma, count_event, sum_tv_bound


def _pmf(sigma: float, span: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.arange(-span, span + 1)
    w = np.exp(-(x.astype(float) ** 2) / (2 * sigma * sigma))
    return x, w / w.sum()


@pytest.mark.parametrize("sigma", [0.7, 3.0, 25.0])
def test_variance_and_mean_match_the_discrete_gaussian(sigma: float) -> None:
    draws = noise.sample_discrete_gaussian(sigma, 20_000)
    assert draws.dtype == np.int64
    var = noise.discrete_gaussian_variance(sigma)
    # sd of a sample variance of 20,000 draws ≈ var·√(2/n) = 1% of var: 5% is ~5 sd
    assert abs(draws.var() / var - 1) < 0.05
    assert abs(draws.mean()) < 5 * math.sqrt(var / 20_000)


def test_small_sigma_frequencies_match_the_pmf() -> None:
    sigma = 1.0
    draws = noise.sample_discrete_gaussian(sigma, 30_000)
    x, p = _pmf(sigma, 6)
    counts = np.array([(draws == v).sum() for v in x])
    expected = p * len(draws)
    keep = expected > 5
    chi2 = float((((counts - expected) ** 2)[keep] / expected[keep]).sum())
    assert chi2 < 35, chi2  # 7–9 degrees of freedom: p < 1e-4 beyond this


def test_discrete_laplace_is_symmetric_with_the_right_decay() -> None:
    draws = np.array([noise.discrete_laplace(2) for _ in range(20_000)])
    # P[x] ∝ exp(−|x|/2): P[|x| ≥ 1] / P[0] and symmetry
    assert abs((draws > 0).mean() - (draws < 0).mean()) < 0.02
    ratio = (draws == 1).mean() / (draws == 0).mean()
    assert abs(ratio - math.exp(-0.5)) < 0.05


def test_noise_comes_from_secrets_not_numpy_random() -> None:
    tree = ast.parse(inspect.getsource(noise))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom) for a in n.names}
    attributes = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert "random" not in imported and "random" not in attributes  # neither `random` nor np.random
    assert "secrets" in imported and "randbelow" in attributes
    # two independent calls never repeat (no seed shared between them)
    assert not np.array_equal(noise.sample_discrete_gaussian(50.0, 64), noise.sample_discrete_gaussian(50.0, 64))


def test_zero_sigma_is_noise_off() -> None:
    assert not noise.sample_discrete_gaussian(0.0, 5).any()
    with pytest.raises(ValueError):
        noise.discrete_gaussian(-1.0)


def test_calibration_meets_the_epsilon_share_tightly() -> None:
    sigma = calibrate_count_sigma(1.0, 1e-5)
    assert epsilon([count_event(sigma)], 1e-5, "pld") <= 1.0
    assert epsilon([count_event(sigma * 0.99)], 1e-5, "pld") > 1.0  # not needlessly noisy


def test_sum_of_discrete_gaussians_is_within_the_stated_distance() -> None:
    """KLS21's τ bounds the exact total variation between a sum of k shares and N_Z(0, k s²)."""
    for s, k in ((1.0, 2), (1.0, 3), (0.8, 4)):
        x, p = _pmf(s, 60)
        total = p
        for _ in range(k - 1):
            total = np.convolve(total, p)
        span = (len(total) - 1) // 2
        _, target = _pmf(math.sqrt(k) * s, span)
        tv = 0.5 * float(np.abs(total - target).sum())
        assert tv <= sum_tv_bound(s, k), (s, k, tv)
        assert tv > sum_tv_bound(s, k) / 1e4  # the bound is not vacuous here


def test_share_design_keeps_sigma_with_t_missing() -> None:
    design = ShareDesign(agencies=8, tolerate=2, sigma=12.0)
    assert design.share_sigma == pytest.approx(12.0 / math.sqrt(6))
    assert design.guaranteed_sigma == pytest.approx(12.0)
    # with 6 of 8 shares the variance is still σ²; with all 8 it is more
    assert design.released_variance(6) == pytest.approx(144.0, rel=1e-6)
    assert design.released_variance(8) > 144.0
    assert design.delta_slack(1.0, 100_000) < 1e-9
    # a small σ is floored so the sum stays (numerically) a discrete Gaussian
    small = ShareDesign(agencies=8, tolerate=1, sigma=3.0)
    assert small.share_sigma == count_release.MIN_SHARE_SIGMA and small.guaranteed_sigma > 3.0
    with pytest.raises(ValueError):
        ShareDesign(agencies=3, tolerate=3, sigma=1.0)


def test_share_floor_is_the_least_share_within_the_slack() -> None:
    floor = count_release.share_floor(cells=336, shares=7, epsilon_=1.0, max_slack=1e-8)
    assert 1.0 < floor < count_release.MIN_SHARE_SIGMA
    assert count_release.delta_slack(floor, 7, 1.0, 336) <= 1e-8 < count_release.delta_slack(floor / 1.02, 7, 1.0, 336)
    assert count_release.share_floor(336, 7, 30.0, 1e-8) > floor  # a larger stated ε needs a larger floor
