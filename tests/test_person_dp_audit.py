"""The person canary audit (privacy.person_audit): canary persons with m records in each of two
agencies. Without noise the audit finds them (it has power); under person-level DP-SGD its lower
bound stays below the claimed federation-level person ε."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from privacy.budget import DPPlan
from privacy.person_audit import AgencyRows, person_canaries, person_canary_audit
from privacy.person_clip import bound_contributions


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _agency(name: str, seed: int, sigma: float, d: int = 50, n: int = 200) -> AgencyRows:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = (X[:, 0] + 0.5 * rng.standard_normal(n) > 0).astype(np.float32)
    person = rng.zipf(1.8, n) % (n // 2)  # repeat persons, a heavy tail
    units = bound_contributions(person, [f"{name}-{i}" for i in range(n)], 3, b"s" * 32)
    plan = DPPlan(noise_multiplier=sigma, sample_rate=0.5, steps_per_round=30, rounds=2, max_grad_norm=1.0, target_epsilon=1e3, delta=1e-5, accountant="pld", n_public=units.n_units)
    return AgencyRows(name, X, y, units, plan)


def _audit(sigma: float) -> dict:
    return person_canary_audit([_agency("a", 1, sigma), _agency("b", 2, sigma)], k=400, m=3, seed=0, lr=0.5, hidden=(32,), noise_seed=7)


def test_without_noise_the_audit_finds_the_canary_persons() -> None:
    result = _audit(0.0)
    assert math.isinf(result["epsilon_claimed"])
    assert result["epsilon_lower_bound"] > 2.0 and result["correct"] == result["guesses"]


def test_under_person_level_dp_the_bound_stays_below_the_claim() -> None:
    with _no_violation():
        result = _audit(2.0)
    assert math.isfinite(result["epsilon_claimed"]) and result["agencies"] == ["a", "b"] and result["m"] == 3
    assert not result["violation"] and result["epsilon_lower_bound"] <= result["epsilon_claimed"]
    assert "2 of 2 agencies" in result["claim_method"]


def test_canary_persons_are_near_copies_of_one_point_per_person() -> None:
    centres, labels, records = person_canaries(5, 4, 3, 7, seed=1)
    assert records.shape == (3, 5, 4, 7) and set(np.unique(labels)) <= {0.0, 1.0}
    assert np.abs(records - centres[None, :, None, :]).max() < 1.0
    with pytest.raises(ValueError):
        person_canary_audit([_agency(n, i, 1.0) for i, n in enumerate("abcd")], k=10, m=2, seed=0)


class _no_violation:
    """No 'bound exceeds the claim' warning may be raised inside."""

    def __enter__(self) -> None:
        import warnings

        self._catch = warnings.catch_warnings(record=True)
        self._seen = self._catch.__enter__()
        warnings.simplefilter("always")

    def __exit__(self, *exc: Any) -> None:
        self._catch.__exit__(*exc)
        assert not [w for w in self._seen if "exceeds the claimed" in str(w.message)]
