"""privacy.group.incident_epsilon: ε per incident record when one incident changes the content
of up to g examples of a fixed example set (the hotspot task), checked against computations that
do not go through it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import norm

from privacy.accounting import epsilon
from privacy.group import group_history, incident_epsilon


def gaussian_epsilon(mu: float, delta: float) -> float:
    """Exact ε of a Gaussian mechanism with sensitivity/σ = mu (Balle & Wang 2018)."""
    d = lambda e: norm.cdf(mu / 2 - e / mu) - math.exp(e) * norm.cdf(-mu / 2 - e / mu) - delta  # noqa: E731
    return brentq(d, 0.0, 500.0)


def mixture(x: np.ndarray, means, weights, sigma: float) -> np.ndarray:
    return sum(w * norm.pdf(x, m, sigma) for m, w in zip(means, weights, strict=True))


def hockey(p: np.ndarray, q: np.ndarray, alpha: float, dx: float) -> float:
    return float(np.maximum(p - math.exp(alpha) * q, 0).sum() * dx)


def step_pair(x: np.ndarray, a, b, q: float, sigma: float):
    """One step's outputs on the group only: Σ over the sampled members (Poisson, rate q) of a
    (one side) or b (other side), plus N(0, σ²); 1-D, exact mixture over all subsets."""
    g = len(a)
    means_a, means_b, weights = [], [], []
    for mask in range(2**g):
        chosen = [(mask >> i) & 1 for i in range(g)]
        weights.append(math.prod(q if c else 1 - q for c in chosen))
        means_a.append(sum(v for v, c in zip(a, chosen, strict=True) if c))
        means_b.append(sum(v for v, c in zip(b, chosen, strict=True) if c))
    return mixture(x, means_a, weights, sigma), mixture(x, means_b, weights, sigma)


def test_one_example_is_the_replace_one_epsilon():
    history = [(1.3, 0.02, 300), (2.0, 0.05, 50)]
    got = incident_epsilon(history, 1, 1e-5)
    assert got.epsilon == pytest.approx(epsilon(history, 1e-5, "pld", "replace-one"), rel=1e-12)
    assert (got.unit, got.neighbouring, got.example_neighbouring, got.group_size) == ("one incident record", "add-remove", "replace-one", 1)


@pytest.mark.parametrize("g, sigma, steps", [(2, 3.0, 10), (5, 20.0, 40), (24, 60.0, 5)])
def test_without_sampling_it_is_the_exact_gaussian_of_sensitivity_2g(g, sigma, steps):
    # q = 1: every step releases Σ_G gradients + noise; replacing g aligned gradients C by −C
    # moves it by 2gC, so this is the exact ε (an upper bound that is reached).
    exact = gaussian_epsilon(2 * g * math.sqrt(steps) / sigma, 1e-5)
    got = incident_epsilon([(sigma, 1.0, steps)], g, 1e-5).epsilon
    assert exact <= got <= exact * 1.01 + 1e-3


@pytest.mark.parametrize("g, q, sigma", [(2, 0.1, 1.0), (3, 0.3, 2.0), (3, 0.05, 0.7)])
def test_each_step_is_dominated_by_the_pair_it_is_accounted_as(g, q, sigma):
    # The true step (every way of filling the group with gradients in [−1, 1], C = 1) never has a
    # larger hockey-stick divergence than the replace-one pair at rate 1−(1−q)^g, sensitivity g.
    x, dx = np.linspace(-30, 30, 120_001, retstep=True)
    qg = 1 - (1 - q) ** g
    p_star = mixture(x, [0, -g], [1 - qg, qg], sigma)
    q_star = mixture(x, [0, g], [1 - qg, qg], sigma)
    rng = np.random.default_rng(0)
    cases = [([-1] * g, [1] * g), ([1] * g, [-1] * g), ([1] * g, [0] * g), ([0] * g, [1] * g)]
    cases += [(list(rng.uniform(-1, 1, g)), list(rng.uniform(-1, 1, g))) for _ in range(6)]
    for alpha in (0.0, 0.5, 1.0, 2.0, 4.0):
        bound = hockey(p_star, q_star, alpha, dx)
        for a, b in cases:
            p, qq = step_pair(x, a, b, q, sigma)
            assert hockey(p, qq, alpha, dx) <= bound + 1e-9, (alpha, a, b)
    # and the aligned case is strictly inside the bound when g > 1 (the bound is not tight)
    p, qq = step_pair(x, [-1] * g, [1] * g, q, sigma)
    assert hockey(p, qq, 1.0, dx) < hockey(p_star, q_star, 1.0, dx)


def test_one_step_matches_the_dominating_pair_integrated_directly():
    g, q, sigma, delta = 4, 0.1, 3.0, 1e-4
    x, dx = np.linspace(-60, 60, 240_001, retstep=True)
    qg = 1 - (1 - q) ** g
    p_star = mixture(x, [0, -g], [1 - qg, qg], sigma)
    q_star = mixture(x, [0, g], [1 - qg, qg], sigma)
    direct = brentq(lambda e: hockey(p_star, q_star, e, dx) - delta, 0.0, 20.0)
    got = incident_epsilon([(sigma, q, 1)], g, delta).epsilon
    assert direct <= got <= direct * 1.02


def test_group_history_and_bad_input():
    assert group_history([(2.0, 0.1, 7)], 4) == [(0.5, pytest.approx(1 - 0.9**4), 7)]
    assert incident_epsilon([(2.0, 0.05, 100)], 3, 1e-5).epsilon > incident_epsilon([(2.0, 0.05, 100)], 2, 1e-5).epsilon
    for bad in (0, 1.5, -2):
        with pytest.raises(ValueError, match="group size"):
            incident_epsilon([(2.0, 0.1, 7)], bad, 1e-5)
    with pytest.raises(ValueError, match="pld"):
        incident_epsilon([(2.0, 0.1, 7)], 2, 1e-5, accountant="rdp")
