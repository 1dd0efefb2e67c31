"""Person-level DP-SGD (privacy.person_clip): contribution bounding by a rule that reads only a
person's own records, and per-person clipping checked against a slow reference (per-record
gradients one by one, summed per person, clipped)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from policedata.persons import NO_PERSON
from privacy.budget import DPPlan
from privacy.person_clip import PersonClipper, bound_contributions, owners, selection_rank, train_person_dp
from tasks.model import MLP, make_model

SECRET = b"k" * 32


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _records(n: int = 60, d: int = 11, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=gen) * torch.logspace(-1.5, 1, n).unsqueeze(1)
    y = (torch.rand(n, generator=gen) < 0.5).float()
    return X, y


def _reference(model: nn.Module, X: torch.Tensor, y: torch.Tensor, unit: np.ndarray, C: float) -> torch.Tensor:
    """Σ_persons clip_C(Σ_{records of the person} ∇ loss_i), one record at a time by autograd."""
    params = list(model.parameters())
    per_unit: dict[int, torch.Tensor] = {}
    for i in range(len(X)):
        if unit[i] < 0:
            continue
        model.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(model(X[i : i + 1]).reshape(1), y[i : i + 1])
        loss.backward()
        g = torch.cat([p.grad.reshape(-1).clone() for p in params if p.grad is not None]).double()
        per_unit[int(unit[i])] = per_unit.get(int(unit[i]), 0) + g
    total = torch.zeros(sum(p.numel() for p in params), dtype=torch.float64)
    for g in per_unit.values():
        total += g * min(1.0, C / (float(g.norm()) + 1e-6))
    model.zero_grad()
    return total


MODELS = {
    "relu": lambda: make_model(11, (16, 8), seed=1),
    "tanh-nobias": lambda: MLP(nn.Linear(11, 6), nn.Tanh(), nn.Linear(6, 4, bias=False), nn.Sigmoid(), nn.Linear(4, 1)),
    "logistic": lambda: make_model(11, (), seed=2),
}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("C", [0.05, 1.0, 1e3])
def test_person_clipping_matches_slow_reference(name: str, C: float) -> None:
    torch.manual_seed(3)
    model = MODELS[name]()
    X, y = _records()
    # persons with one record, with a few, with more than the cap; some records with no person
    rng = np.random.default_rng(4)
    person = np.concatenate([np.arange(10), np.full(12, 10), np.full(3, 11), np.full(7, 12), rng.integers(13, 18, 20), np.full(8, NO_PERSON)])
    rng.shuffle(person)
    ids = [f"crime-{i}" for i in range(len(X))]
    units = bound_contributions(person, ids, 4, SECRET)
    counts = units.records_per_unit
    assert counts.max() == 4 and (counts == 1).sum() >= 10 + 8  # capped; singletons (persons and no-person records)
    assert units.dropped == (12 - 4) + (7 - 4) + sum(max(0, int((person == p).sum()) - 4) for p in range(13, 18))
    rows = np.flatnonzero(units.unit >= 0)
    clipper = PersonClipper(model, max_grad_norm=C, noise_multiplier=0.0, divisor=1.0)
    try:
        clipper.compute(X[rows], y[rows], torch.from_numpy(units.unit[rows]), units.n_units, torch.Generator())
        fast = clipper.flat.double().clone()
    finally:
        clipper.release()
    slow = _reference(model, X, y, units.unit, C)
    assert torch.allclose(fast, slow, rtol=1e-4, atol=1e-6 * max(1.0, float(slow.abs().max())))
    if C == 0.05:  # every person's sum is clipped: the total norm is at most (units) × C
        assert float(fast.norm()) <= units.n_units * C * (1 + 1e-5)


def test_cap_keeps_each_persons_smallest_hmac_and_ignores_others() -> None:
    person = np.array([0, 0, 0, 1, 1, 2, NO_PERSON, 0, 1, 1, 1])
    ids = np.array([f"r{i}" for i in range(len(person))])
    units = bound_contributions(person, ids, 2, SECRET)
    rank = selection_rank(SECRET, ids)
    for p in (0, 1):
        mine = np.flatnonzero(person == p)
        expected = set(mine[np.argsort(rank[mine])][:2])
        assert set(np.flatnonzero((units.unit >= 0) & (person == p))) == expected
    # removing person 1 (all their records) leaves every other person's kept records as they were
    rest = person != 1
    smaller = bound_contributions(person[rest], ids[rest], 2, SECRET)
    kept_before = set(ids[(units.unit >= 0) & rest])
    assert set(ids[rest][smaller.unit >= 0]) == kept_before
    # a record with no person is a unit of its own
    assert units.records_per_unit[units.unit[6]] == 1


def test_bounding_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="distinct"):
        bound_contributions(np.array([0, 1]), ["a", "a"], 2, SECRET)
    with pytest.raises(ValueError, match="max_records"):
        bound_contributions(np.array([0]), ["a"], 0, SECRET)


def test_owner_is_the_victim_else_the_suspect() -> None:
    victim = np.array([3, NO_PERSON, NO_PERSON, 1])
    suspect = np.array([5, 2, NO_PERSON, NO_PERSON])
    assert owners(victim, suspect).tolist() == [3, 2, NO_PERSON, 1]


def test_noise_and_divisor() -> None:
    """With no records the step is noise only, of std σC/divisor per coordinate."""
    model = make_model(11, (16,), seed=1)
    clipper = PersonClipper(model, max_grad_norm=2.0, noise_multiplier=3.0, divisor=4.0)
    try:
        clipper.compute(torch.zeros(0, 11), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0, torch.Generator().manual_seed(0))
        std = float(clipper.flat.std())
    finally:
        clipper.release()
    assert std == pytest.approx(3.0 * 2.0 / 4.0, rel=0.1)


def test_train_person_dp_samples_units_and_learns() -> None:
    """Noise-free person-level training on a separable problem lowers the loss; every step's
    batch holds whole units (all kept records of a sampled person)."""
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(400, 11, generator=gen)
    y = (X[:, 0] > 0).float()
    person = np.repeat(np.arange(100), 4)
    units = bound_contributions(person, [f"c{i}" for i in range(400)], 3, SECRET)
    model = make_model(11, (8,), seed=0)
    plan = DPPlan(noise_multiplier=0.0, sample_rate=0.2, steps_per_round=60, rounds=1, max_grad_norm=1.0, target_epsilon=1.0, delta=1e-5, accountant="pld", n_public=100)
    with torch.no_grad():
        before = float(nn.functional.binary_cross_entropy_with_logits(model(X).squeeze(-1), y))
    stats = train_person_dp(model, X.numpy(), y.numpy(), units, plan=plan, lr=0.05, generator=gen)
    with torch.no_grad():
        after = float(nn.functional.binary_cross_entropy_with_logits(model(X).squeeze(-1), y))
    assert stats["steps"] == 60 and after < before - 0.1
