"""ε from the accountant agrees with an independent implementation (Google's dp-accounting PLD),
calibration meets its target, and the budget check refuses what would exceed it."""

import math

import dp_accounting
import pytest

from privacy.accounting import calibrate_noise, epsilon, merge_history
from privacy.budget import BudgetExceeded, epsilon_after, plan_dp


def pld_epsilon(history, delta):
    """Independent ε: dp-accounting's PLD accountant over Poisson-subsampled Gaussian steps."""
    events = [
        dp_accounting.SelfComposedDpEvent(
            dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps
        )
        for sigma, q, steps in history
    ]
    acc = dp_accounting.pld.PLDAccountant(value_discretization_interval=1e-3)
    acc.compose(dp_accounting.ComposedDpEvent(events))
    return acc.get_epsilon(delta)


@pytest.mark.parametrize(
    "history",
    [
        [(1.1, 256 / 45_000, 176)] * 10,
        [(4.0, 0.5, 2)] * 10,
        [(0.9, 0.01, 100), (1.5, 0.02, 50)],
    ],
)
def test_prv_matches_independent_pld(history):
    ours = epsilon(history, 1e-5, "prv")
    independent = pld_epsilon(history, 1e-5)
    assert ours == pytest.approx(independent, rel=0.03)


def test_rdp_is_never_below_prv():
    history = [(1.1, 0.01, 500)]
    assert epsilon(history, 1e-5, "rdp") >= epsilon(history, 1e-5, "prv")


def test_epsilon_grows_with_every_release():
    release = (1.2, 0.02, 50)
    values = [epsilon([release] * r, 1e-5) for r in range(1, 6)]
    assert all(b > a for a, b in zip(values, values[1:]))
    assert epsilon([], 1e-5) == 0.0


def test_merge_history_only_merges_equal_neighbours():
    assert merge_history([(1.0, 0.1, 5), (1.0, 0.1, 5), (2.0, 0.1, 1), (1.0, 0.1, 1)]) == [
        (1.0, 0.1, 10),
        (2.0, 0.1, 1),
        (1.0, 0.1, 1),
    ]


@pytest.mark.parametrize("n_train", [300, 5_000, 45_000])
def test_plan_meets_target_over_all_rounds_and_not_far_below(n_train):
    plan = plan_dp(n_train, batch_size=256, local_epochs=1, rounds=10, target_epsilon=1.0, delta=1e-5, max_grad_norm=1.0, accountant="prv")
    spent = epsilon([plan.release] * plan.rounds, 1e-5)
    assert spent <= 1.0
    assert spent > 0.95  # calibrated, not merely safe
    assert plan.sample_rate == pytest.approx(min(1.0, 256 / n_train))


def test_budget_check_refuses_the_release_that_would_exceed():
    plan = plan_dp(2_000, batch_size=256, local_epochs=1, rounds=3, target_epsilon=1.0, delta=1e-5, max_grad_norm=1.0, accountant="prv")
    history = []
    for _ in range(plan.rounds):
        eps = epsilon_after(history, plan.release, budget=1.0, delta=1e-5, accountant="prv")
        history.append(plan.release)
        assert eps <= 1.0
    with pytest.raises(BudgetExceeded, match="budget exhausted"):
        epsilon_after(history, plan.release, budget=1.0, delta=1e-5, accountant="prv")


def test_calibration_is_monotone_in_epsilon():
    sigmas = [calibrate_noise(e, 1e-5, 0.01, 1000) for e in (0.5, 1, 2, 4, 8)]
    assert all(b < a for a, b in zip(sigmas, sigmas[1:]))
    assert all(math.isfinite(s) for s in sigmas)
