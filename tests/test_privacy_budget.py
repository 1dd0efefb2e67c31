"""σ calibration meets its target over the prior spend plus every planned release, per agency,
and refuses when nothing (or too little) is left; the budget check refuses the release that
would exceed the budget."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest

from privacy.accounting import MAX_SIGMA, calibrate_noise, epsilon
from privacy.budget import BUDGET_SLACK, BudgetExceeded, ReleaseRefused, epsilon_after, plan_dp

DELTA = 1e-5


def _plan(n_train: int, target: float = 1.0, rounds: int = 10, prior=(), accountant: str = "auto"):
    return plan_dp(
        n_train,
        batch_size=256,
        local_epochs=1,
        rounds=rounds,
        target_epsilon=target,
        delta=DELTA,
        max_grad_norm=1.0,
        accountant=accountant,
        prior=prior,
    )


@pytest.mark.parametrize("n_train", [300, 5_000, 45_000])
def test_plan_meets_target_over_all_rounds_and_not_far_below(n_train):
    plan = _plan(n_train)
    spent = epsilon([plan.release] * plan.rounds, DELTA, plan.accountant)
    assert spent <= 1.0
    assert spent >= 0.99  # calibrated (bisection to 0.5% of ε), not merely safe
    assert plan.sample_rate == pytest.approx(min(1.0, 256 / n_train))
    assert plan.accountant == "pld"  # "auto" is resolved and recorded
    assert plan.prior_epsilon == 0.0


def test_agencies_of_different_size_get_different_noise_for_the_same_budget():
    small, large = _plan(2_000), _plan(45_000)
    assert small.sample_rate > large.sample_rate
    assert small.noise_multiplier != pytest.approx(large.noise_multiplier, rel=0.01)


def test_plan_with_prior_spend_fits_the_rest_of_the_budget():
    prior = [(3.0, 256 / 5_000, 20)] * 6  # an earlier run of this agency
    spent_before = epsilon(prior, DELTA)
    assert 0.5 < spent_before < 1.0
    plan = _plan(5_000, target=2.0, rounds=5, prior=prior)
    total = epsilon([*prior, *[plan.release] * plan.rounds], DELTA)
    assert 2.0 * 0.99 <= total <= 2.0
    assert plan.prior_epsilon == pytest.approx(spent_before)
    assert plan.prior_releases == 6
    # Less budget left → more noise than a fresh agency with the same plan.
    assert plan.noise_multiplier > _plan(5_000, target=2.0, rounds=5).noise_multiplier


def test_prior_spend_at_or_over_the_budget_is_refused_with_the_figures():
    prior = [(0.8, 0.05, 200)]
    spent = epsilon(prior, DELTA)
    with pytest.raises(BudgetExceeded, match=rf"ε spent {spent:.4g} already meets the budget 1 at δ=1e-05"):
        _plan(5_000, target=1.0, prior=prior)


def test_a_budget_left_too_small_for_sane_noise_is_refused():
    prior = [(1.0, 0.05, 100)]
    spent = epsilon(prior, DELTA)
    with pytest.raises(BudgetExceeded, match=rf"would need noise σ > {MAX_SIGMA:g}"):
        _plan(5_000, target=spent * (1 + 1e-7), rounds=20, prior=prior)


def test_no_training_records_is_refused():
    with pytest.raises(ReleaseRefused, match="no training records"):
        _plan(0)


def test_budget_check_refuses_the_release_that_would_exceed():
    plan = _plan(2_000, rounds=3)
    history = []
    for _ in range(plan.rounds):
        eps = epsilon_after(history, plan.release, budget=1.0, delta=DELTA, accountant=plan.accountant)
        history.append(plan.release)
        assert eps <= 1.0
    with pytest.raises(BudgetExceeded, match="budget exhausted: ε spent 0.99.*budget 1 at δ=1e-05"):
        epsilon_after(history, plan.release, budget=1.0, delta=DELTA, accountant=plan.accountant)


def test_budget_check_allows_only_float_noise_above_the_budget():
    release = (1.0, 0.01, 500)
    eps = epsilon([release], DELTA)
    assert epsilon_after([], release, budget=eps * (1 - BUDGET_SLACK / 2), delta=DELTA, accountant="auto") == eps
    with pytest.raises(BudgetExceeded):
        epsilon_after([], release, budget=eps * (1 - 10 * BUDGET_SLACK), delta=DELTA, accountant="auto")


@pytest.mark.parametrize("accountant", ["pld", "rdp", "prv"])
def test_calibration_meets_the_target_with_every_accountant(accountant):
    sigma = calibrate_noise(2.0, DELTA, 0.02, 500, accountant)
    assert 2.0 * 0.99 <= epsilon([(sigma, 0.02, 500)], DELTA, accountant) <= 2.0


def test_calibration_is_monotone_in_epsilon():
    sigmas = [calibrate_noise(e, DELTA, 0.01, 1000) for e in (0.5, 2, 8)]
    assert all(b < a for a, b in pairwise(sigmas))
    assert all(math.isfinite(s) for s in sigmas)


def test_calibration_is_computed_once_per_arguments(monkeypatch):
    """The same plan asked for twice (e.g. the fedavg-dp and fedavg-dp-secagg cells of a sweep
    over the same data) is calibrated once; different arguments are not mixed up."""
    import privacy.accounting as accounting

    calls = []
    real = accounting.epsilon
    monkeypatch.setattr(accounting, "epsilon", lambda *a, **k: calls.append(a) or real(*a, **k))
    args = (1.5, DELTA, 0.0137, 73)
    first = calibrate_noise(*args, "pld", releases=4)
    assert calls
    calls.clear()
    assert calibrate_noise(*args, "pld", releases=4) == first and not calls
    other = calibrate_noise(*args, "pld", releases=5)  # more releases: more noise
    assert calls and other > first


def test_calibration_seeded_by_rdp_still_finds_the_smallest_sigma():
    """PLD's search starts from RDP's σ; the σ it returns must spend within 0.5% of the target
    with PLD itself, and 1% less noise must overspend."""
    for q, steps in ((0.028, 35), (0.0085, 118), (0.5, 2)):
        sigma = calibrate_noise(1.0, DELTA, q, steps, "pld", releases=10)
        history = [(sigma, q, steps)] * 10
        assert 0.995 <= epsilon(history, DELTA, "pld") <= 1.0
        assert epsilon([(sigma * 0.99, q, steps)] * 10, DELTA, "pld") > 1.0 * 0.995
