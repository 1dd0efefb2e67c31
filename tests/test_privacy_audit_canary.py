"""The one-run canary audit (Steinke, Nasr & Jagielski 2023): the ε lower bound against closed
forms, the audit's plumbing with an oracle model, and real DP-SGD runs — the bound never exceeds
the claimed ε, catches a run that claims ε = 1 without adding noise, and has power without DP."""

import dataclasses
import math
from itertools import pairwise

import numpy as np
import pytest
import torch
from scipy.stats import binom
from torch import nn

from privacy.accounting import epsilon as accountant_epsilon
from privacy.audit.bounds import epsilon_lower_bound, one_run_p_value
from privacy.audit.canary import canary_audit, claimed_epsilon, guess_grid, guesses, make_canaries
from privacy.audit.trainers import dp_trainer, plain_trainer
from privacy.budget import DPPlan
from privacy.dpsgd import train_dp
from tasks.model import make_model


@pytest.fixture(autouse=True)
def _one_thread():
    """Small models on a shared 2-core machine: one torch thread is ~30x faster under load."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _all_right(r: int, significance: float) -> float:
    """δ = 0, r of r right: P[Bin(r, q) ≥ r] = q^r = s  ⇒  ε = logit(s^(1/r))."""
    q = significance ** (1 / r)
    return math.log(q / (1 - q))


# --- the bound -------------------------------------------------------------------------------


@pytest.mark.parametrize("r", [10, 50, 100, 400])
def test_all_guesses_right_gives_the_closed_form(r):
    assert epsilon_lower_bound(1000, r, r, 0.0, 0.95) == pytest.approx(_all_right(r, 0.05), abs=1e-7)


def test_one_right_guess_proves_nothing_at_95_percent():
    # one coin-flip guess is right with probability ½ > 5% even at ε = 0
    assert epsilon_lower_bound(1000, 1, 1, 0.0) == 0.0


def test_delta_term_closed_form_for_one_guess():
    # r = v = 1: β = q, α = P[Bin(1, q) = 0] = 1 − q, so p = q + (1 − q)·2kδ = s at the bound
    k, delta, s = 10, 1e-3, 0.6
    c = 2 * k * delta
    q = (s - c) / (1 - c)
    assert epsilon_lower_bound(k, 1, 1, delta, confidence=1 - s) == pytest.approx(math.log(q / (1 - q)), abs=1e-7)


def test_p_value_delta_term_matches_direct_computation():
    k, r, v, eps, delta = 500, 60, 45, 0.7, 1e-4
    q = math.exp(eps) / (1 + math.exp(eps))
    beta = 1 - binom.cdf(v - 1, r, q)
    alpha = max((binom.cdf(v - 1, r, q) - binom.cdf(v - i - 1, r, q)) / i for i in range(1, v + 1))
    assert one_run_p_value(k, r, v, eps, delta) == pytest.approx(beta + alpha * 2 * k * delta, rel=1e-9)
    assert one_run_p_value(k, r, v, eps, 0.0) == pytest.approx(beta, rel=1e-9)


def test_half_right_gives_zero():
    assert epsilon_lower_bound(1000, 200, 100, 1e-5) == 0.0
    assert epsilon_lower_bound(1000, 200, 110, 1e-5) == 0.0  # within chance at 95%


def test_bound_rises_with_correct_guesses_and_falls_with_delta_and_confidence():
    k, r = 1000, 200
    bounds = [epsilon_lower_bound(k, r, v, 1e-5) for v in range(100, r + 1, 5)]
    assert all(a <= b for a, b in pairwise(bounds))
    assert bounds[0] == 0.0 and bounds[-1] > 3.0
    assert epsilon_lower_bound(k, r, 180, 1e-3) < epsilon_lower_bound(k, r, 180, 0.0)
    assert epsilon_lower_bound(k, r, 180, 1e-5, 0.99) < epsilon_lower_bound(k, r, 180, 1e-5, 0.95)


def test_bound_rejects_impossible_counts():
    with pytest.raises(ValueError, match="correct ≤ guesses ≤ canaries"):
        epsilon_lower_bound(10, 5, 6, 0.0)
    with pytest.raises(ValueError, match="confidence"):
        epsilon_lower_bound(10, 5, 5, 0.0, confidence=1.0)


# --- canaries and guesses ------------------------------------------------------------------------


def test_canaries_are_reproducible_random_labelled_vectors():
    X, y = make_canaries(1000, 23, seed=4)
    assert X.shape == (1000, 23) and X.dtype == np.float32 and y.dtype == np.float32
    assert set(np.unique(y)) == {0.0, 1.0} and 400 < y.sum() < 600
    assert np.array_equal(X, make_canaries(1000, 23, seed=4)[0])
    assert not np.array_equal(X, make_canaries(1000, 23, seed=5)[0])


def test_guesses_take_top_and_bottom_scores():
    g = guesses(np.array([0.5, 3.0, -2.0, 1.0, -1.0]), k_plus=2, k_minus=1)
    assert g.tolist() == [0, 1, -1, 1, 0]
    with pytest.raises(ValueError, match="k_plus"):
        guesses(np.zeros(3), 2, 2)


def test_guess_grid_is_fixed_and_feasible():
    grid = guess_grid(500)
    assert len(grid) == len(set(grid)) == 15
    assert all(kp + km <= 500 and kp + km > 0 for kp, km in grid)
    assert (0, 100) in grid and (100, 100) in grid and (5, 0) in grid


def test_claimed_epsilon_is_the_accountants_for_all_rounds():
    plan = DPPlan(
        noise_multiplier=1.2, sample_rate=0.05, steps_per_round=40, rounds=5, max_grad_norm=1.0,
        target_epsilon=9.0, delta=1e-5, accountant="rdp",
    )
    assert claimed_epsilon(plan) == pytest.approx(accountant_epsilon([(1.2, 0.05, 200)], 1e-5, "rdp"))


# --- the audit's plumbing with an oracle -----------------------------------------------------


class _Oracle(nn.Module):
    """A 'model' that remembers its training rows exactly: margin +10 on them, 0 elsewhere."""

    def __init__(self, X: np.ndarray, y: np.ndarray):
        super().__init__()
        self.seen = {row.tobytes(): float(label) for row, label in zip(X, y, strict=True)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        labels = [self.seen.get(row.numpy().astype(np.float32).tobytes()) for row in x]
        return torch.tensor([0.0 if t is None else (10.0 if t == 1.0 else -10.0) for t in labels])


def _toy(n: int = 500, d: int = 23, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = (rng.random(n) < 1 / (1 + np.exp(-X[:, 0]))).astype(np.float32)
    return X, y


def test_a_perfect_memoriser_reaches_the_best_bound_the_grid_allows():
    X, y = _toy()
    result = canary_audit(X, y, None, lambda X, y, plan: _Oracle(X, y), k=500, seed=0, delta=0.0)
    # every guess right; the largest grid pair (100 in, 100 out) wins, at Bonferroni over 15 tries
    assert (result["k_plus"], result["k_minus"], result["correct"]) == (100, 100, 200)
    assert result["epsilon_lower_bound"] == pytest.approx(_all_right(200, 0.05 / 15), abs=1e-7)
    assert result["epsilon_claimed"] == math.inf and not result["violation"]
    assert 200 < result["k_included"] < 300
    # against no claim (no DP) the ceiling is every guess right: this memoriser reaches it
    assert result["ceiling"] == pytest.approx(result["epsilon_lower_bound"], abs=1e-7)


def test_a_model_that_ignores_its_data_proves_nothing():
    X, y = _toy()
    untrained = lambda X, y, plan: make_model(X.shape[1], (16,), seed=0)  # noqa: E731
    assert canary_audit(X, y, None, untrained, k=500, seed=0, delta=1e-5)["epsilon_lower_bound"] == 0.0


def test_audit_needs_delta_without_a_plan():
    X, y = _toy(20)
    with pytest.raises(ValueError, match="delta"):
        canary_audit(X, y, None, plain_trainer((4,), epochs=1, batch_size=8, lr=0.01), k=10, seed=0)


# --- real training runs ---------------------------------------------------------------------------


def _plan(sigma: float) -> DPPlan:
    """What plan_dp gives 500 records at batch 64, 10 local epochs, 4 rounds (q = 0.128, 320 steps in
    all) for ε = 2 (σ = 4.73) or ε = 8 (σ = 1.6) at δ = 1e-5; fixed here, since calibrating
    takes longer than the training."""
    return DPPlan(
        noise_multiplier=sigma, sample_rate=0.128, steps_per_round=80, rounds=4, max_grad_norm=5.0,
        target_epsilon=8.0, delta=1e-5, accountant="prv",
    )


@pytest.mark.parametrize("sigma,eps", [(4.73, 2.0), (1.6, 8.0)])
def test_dp_sgd_bound_never_exceeds_the_claim(sigma, eps):
    X, y = _toy()
    plan = _plan(sigma)
    result = canary_audit(X, y, plan, dp_trainer((64, 64), lr=0.03, noise_seed=11), k=1000, seed=3)
    assert result["epsilon_claimed"] == pytest.approx(eps, abs=0.1)
    assert 0.0 <= result["epsilon_lower_bound"] <= result["epsilon_claimed"]
    assert not result["violation"]
    assert 0.0 < result["ceiling"] < result["epsilon_claimed"] and all("ceiling" in t for t in result["tries"])


def test_a_run_that_forgets_the_noise_is_caught():
    """The bug the audit exists for: the plan (and so the claim) says ε = 1, the training adds no
    noise. The same recipe with the noise is checked above."""
    X, y = _toy()
    plan = _plan(9.0)  # claims ε ≈ 1

    def noiseless(X, y, plan):
        model, generator = make_model(X.shape[1], (64, 64), seed=0), torch.Generator().manual_seed(0)
        for _ in range(plan.rounds):
            train_dp(model, X, y, plan=dataclasses.replace(plan, noise_multiplier=0.0), lr=0.03, generator=generator)
        return model

    with pytest.warns(RuntimeWarning, match="exceeds the claimed"):
        result = canary_audit(X, y, plan, noiseless, k=1000, seed=3)
    assert result["epsilon_claimed"] < 1.1
    assert result["violation"] and result["epsilon_lower_bound"] > 1.5 * result["epsilon_claimed"]


def test_without_dp_the_audit_finds_a_clearly_positive_bound():
    X, y = _toy()
    result = canary_audit(X, y, None, plain_trainer((64, 64), epochs=60, batch_size=64, lr=3e-3), k=500, seed=1, delta=1e-5)
    assert result["epsilon_lower_bound"] > 1.5
