"""Audits that can fail: the white-box canary audit (gradient canaries inside DP-SGD's clipped
sums, `privacy.audit.whitebox`) run through the agency's own `train_dp` must put its ε lower
bound ABOVE the claimed ε for deliberately broken mechanisms — noise off, noise almost off,
clipping off (with the noise still calibrated to the claimed C) — and must stay at or below the
claim for the correct mechanism over several seeds. In CI (not slow): a few seconds in all.

Measured when written (claimed ε 0.997, k = 1000, 95% confidence): correct 0.00-0.01 (ceiling
0.66); noise off 3.10; noise ÷100 2.90-3.10; clipping off 3.10. The black-box audit of the final
model had given 0.69-0.75 with the noise off and 0.00 with clipping off (issue 12).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from privacy.accounting import epsilon
from privacy.audit.bounds import epsilon_ceiling, epsilon_lower_bound
from privacy.audit.whitebox import GradientCanaries, canary_directions, whitebox_audit
from privacy.budget import DPPlan, plan_dp
from privacy.dpsgd import train_dp
from tasks.model import make_model

K = 1000
HIDDEN = (128,)  # 3201 parameters: room for 1000 orthonormal canary directions
ROUNDS = 2


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _toy(n: int = 1000, d: int = 23, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = (rng.random(n) < 1 / (1 + np.exp(-X[:, 0]))).astype(np.float32)
    return X, y


@pytest.fixture(scope="module")
def setting() -> tuple[np.ndarray, np.ndarray, DPPlan, float]:
    X, y = _toy()
    # The plan an agency of 1000 records makes for ε = 1 over 2 rounds at batch 64 (σ ≈ 1.77).
    plan = plan_dp(len(y), batch_size=64, local_epochs=1, rounds=ROUNDS, target_epsilon=1.0, delta=1e-5, max_grad_norm=1.0, accountant="pld")
    claimed = epsilon([plan.release] * ROUNDS, plan.delta, plan.accountant)
    return X, y, plan, claimed


def _audit(setting, seed: int, mechanism: DPPlan | None = None) -> dict:
    X, y, plan, claimed = setting
    return whitebox_audit(
        X, y, plan, initial_model=lambda: make_model(X.shape[1], HIDDEN, seed=0), lr=0.01, rounds=ROUNDS,
        k=K, seed=seed, epsilon_claimed=claimed, noise_seed=100 + seed, mechanism=mechanism,
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_correct_mechanism_stays_at_or_below_the_claim(setting, seed):
    result = _audit(setting, seed)
    claimed = setting[3]
    assert 0.9 < claimed < 1.0
    assert 0.0 <= result["epsilon_lower_bound"] <= claimed and not result["violation"]
    assert 0.0 < result["ceiling"] < claimed
    assert result["steps"] == ROUNDS * setting[2].steps_per_round


def _broken(plan: DPPlan, what: str) -> DPPlan:
    if what == "noise off":
        return dataclasses.replace(plan, noise_multiplier=0.0)
    if what == "noise almost off":
        return dataclasses.replace(plan, noise_multiplier=plan.noise_multiplier / 100)
    # clipping off: C huge, the noise std σ·C still that of the claimed C
    return dataclasses.replace(plan, max_grad_norm=1e6, noise_multiplier=plan.noise_multiplier * plan.max_grad_norm / 1e6)


@pytest.mark.parametrize("what", ["noise off", "noise almost off", "clipping off"])
def test_a_broken_mechanism_is_caught(setting, what):
    plan, claimed = setting[2], setting[3]
    with pytest.warns(RuntimeWarning, match="exceeds the claimed"):
        result = _audit(setting, 0, _broken(plan, what))
    assert result["violation"] and result["epsilon_lower_bound"] > 2 * claimed, result["epsilon_lower_bound"]


# --- the pieces --------------------------------------------------------------------------------


def test_canaries_are_clipped_like_records_and_read_in_units_of_one_canary():
    k, dim = 6, 10
    canaries = GradientCanaries(k, dim, seed=1, raw_norm=50.0, unit=2.0)
    flat = torch.zeros(dim)
    # sample rate 1: every included canary is in the step; C = 2, expected batch size 4
    canaries(flat, 2.0, 4.0, 1.0, torch.Generator().manual_seed(0))
    u = canaries.directions
    expected = (u[torch.as_tensor(canaries.included)].sum(0) * (2.0 * 50.0 / (50.0 + 1e-6)) / 4.0)
    assert torch.allclose(flat, expected, atol=1e-6)
    # orthonormal directions: each canary reads 1 if included, 0 if not
    assert np.allclose(canaries.scores, canaries.included.astype(float), atol=1e-5)
    assert canaries.above_half.tolist() == canaries.included.astype(float).tolist()
    with pytest.raises(ValueError, match="parameters"):
        canaries(torch.zeros(dim + 1), 2.0, 4.0, 1.0, torch.Generator())


def test_canary_directions_are_unit_and_orthonormal_when_they_fit():
    frame = canary_directions(20, 50, seed=0)
    assert np.allclose(frame @ frame.T, np.eye(20), atol=1e-10)
    many = canary_directions(80, 50, seed=0)
    assert np.allclose(np.linalg.norm(many, axis=1), 1.0)


def test_train_dp_without_a_hook_or_with_an_idle_one_trains_the_same():
    X, y = _toy(300, 7)
    plan = DPPlan(noise_multiplier=1.0, sample_rate=0.1, steps_per_round=10, rounds=1, max_grad_norm=1.0, target_epsilon=5.0, delta=1e-5, accountant="rdp")
    models = []
    for hook in (None, lambda *args: None):
        model = make_model(7, (8,), seed=0)
        train_dp(model, X, y, plan=plan, lr=0.05, generator=torch.Generator().manual_seed(3), step_hook=hook)
        models.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
    assert torch.equal(models[0], models[1])
    with pytest.raises(ValueError, match="book-keeping"):
        train_dp(make_model(7, (8,), seed=0), X, y, plan=plan, lr=0.05, generator=torch.Generator(), method="opacus", step_hook=lambda *a: None)


@pytest.mark.parametrize("eps", [0.5, 1.0, 4.0])
def test_the_ceiling_is_the_bound_of_the_expected_count_and_stays_below_the_claim(eps):
    q = np.exp(eps) / (1 + np.exp(eps))
    for r in (10, 100, 1000):
        ceiling = epsilon_ceiling(1000, r, eps, 1e-5)
        assert ceiling == epsilon_lower_bound(1000, r, int(round(r * q)), 1e-5)
        assert ceiling < eps
    # more guesses, a higher ceiling; an infinite claim: every guess right
    assert epsilon_ceiling(1000, 100, eps, 1e-5) < epsilon_ceiling(1000, 1000, eps, 1e-5)
    assert epsilon_ceiling(1000, 100, float("inf"), 1e-5) == epsilon_lower_bound(1000, 100, 100, 1e-5)
