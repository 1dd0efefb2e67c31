"""Membership inference: exact ROC helpers, the (ε, δ) bounds on any attack, the same-month
holdout, and the attack itself on an overfit and an untrained model."""

import math
from itertools import pairwise

import numpy as np
import pytest
import torch

from privacy.audit.bounds import max_auc, max_tpr, mia_bounds
from privacy.audit.mia import balanced, holdout_key, holdout_same_months, mia_audit, mia_report, mia_scores
from privacy.audit.roc import auc, auc_null_sd, roc_curve, tpr_at_fpr
from tasks.model import make_model
from tasks.train import train_plain


@pytest.fixture(autouse=True)
def _one_thread():
    """Small models on a shared 2-core machine: one torch thread is ~30x faster under load."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- ROC helpers against hand-computed values -------------------------------------------------


def test_roc_vertices_and_auc_by_hand():
    # sorted: .9 m, .8 m, .7 n, .4 m, .3 n
    fpr, tpr = roc_curve([0.9, 0.8, 0.4], [0.7, 0.3])
    np.testing.assert_allclose(fpr, [0, 0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 2 / 3, 2 / 3, 1, 1])
    # Mann–Whitney: 2 + 2 + 1 wins of 6 pairs
    assert auc([0.9, 0.8, 0.4], [0.7, 0.3]) == pytest.approx(5 / 6)


def test_tpr_at_fpr_follows_the_polyline_not_a_shortcut():
    # At FPR 1% the curve is on the flat segment (0, 2/3) → (0.5, 2/3), not on a line to (0.5, 1).
    assert tpr_at_fpr([0.9, 0.8, 0.4], [0.7, 0.3], 0.01) == pytest.approx(2 / 3)
    # At a vertical run the highest vertex counts.
    assert tpr_at_fpr([0.9, 0.8, 0.4], [0.7, 0.3], 0.5) == pytest.approx(1.0)
    assert tpr_at_fpr([0.9, 0.8, 0.4], [0.7, 0.3], 0.0) == pytest.approx(2 / 3)
    assert tpr_at_fpr([0.9, 0.8, 0.4], [0.7, 0.3], 0.25) == pytest.approx(2 / 3)


def test_ties_count_half_and_give_a_diagonal():
    # groups: score 1 holds 2 members and 1 non-member → one vertex at (0.5, 1)
    fpr, tpr = roc_curve([1, 1], [1, 0])
    np.testing.assert_allclose(fpr, [0, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 1, 1])
    assert auc([1, 1], [1, 0]) == pytest.approx(0.75)  # 2 ties (½ each) + 2 wins of 4 pairs
    assert tpr_at_fpr([1, 1], [1, 0], 0.01) == pytest.approx(0.02)  # on the diagonal from (0, 0)


def test_perfect_and_inverted_attacks():
    assert auc([3, 2], [1, 0]) == 1.0 and tpr_at_fpr([3, 2], [1, 0]) == 1.0
    assert auc([0, 1], [2, 3]) == 0.0 and tpr_at_fpr([0, 1], [2, 3]) == 0.0


def test_auc_matches_pairwise_count_on_random_scores():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 20, 60).astype(float), rng.integers(0, 20, 45).astype(float)  # many ties
    pairs = (a[:, None] > b[None, :]).mean() + 0.5 * (a[:, None] == b[None, :]).mean()
    assert auc(a, b) == pytest.approx(pairs)


def test_roc_rejects_empty_or_nan_scores():
    with pytest.raises(ValueError, match="no member scores"):
        auc([], [1.0])
    with pytest.raises(ValueError, match="NaN or infinite"):
        auc([1.0, float("nan")], [0.0])


# --- bounds implied by (ε, δ)-DP ---------------------------------------------------------------


def test_bounds_at_epsilon_zero_are_chance_plus_delta():
    b = mia_bounds(0.0, 0.0)
    assert b["auc_max"] == pytest.approx(0.5)
    assert b["tpr_at_fpr_max"] == pytest.approx(0.01)
    assert b["advantage_max"] == pytest.approx(0.0)
    assert mia_bounds(0.0, 1e-5)["tpr_at_fpr_max"] == pytest.approx(0.01 + 1e-5)


def test_bounds_grow_with_epsilon_and_reach_one():
    eps = [0.0, 0.5, 1.0, 2.0, 4.0, 8.0]
    aucs = [max_auc(e, 1e-5) for e in eps]
    tprs = [max_tpr(0.01, e, 1e-5) for e in eps]
    assert all(x < y for x, y in pairwise(aucs))
    assert all(x < y for x, y in pairwise(tprs))
    assert max_auc(50.0, 0.0) == pytest.approx(1.0)
    assert max_tpr(0.01, 1.0, 0.0) == pytest.approx(math.e * 0.01)  # TPR ≤ e^ε·FPR + δ


def test_symmetric_bound_binds_at_large_fpr():
    # ε = 1, FPR = 0.5: e·0.5 > 1, so the bound is 1 − e^−1·(1 − 0.5)
    assert max_tpr(0.5, 1.0, 0.0) == pytest.approx(1 - math.exp(-1) * 0.5)


@pytest.mark.parametrize("eps,delta", [(0.3, 0.0), (1.0, 1e-5), (3.0, 0.01), (8.0, 1e-5)])
def test_auc_bound_closed_form_equals_the_integral_of_the_tradeoff_curve(eps, delta):
    # 1 − f is piecewise linear with kinks at α* = (1 − δ)/(1 + e^ε) and 1 − δ: trapezoids on a
    # grid holding both are exact.
    kinks = [(1 - delta) / (1 + math.exp(eps)), 1 - delta]
    alphas = np.union1d(np.linspace(0, 1, 1001), kinks)
    integral = np.trapezoid([max_tpr(a, eps, delta) for a in alphas], alphas)
    assert max_auc(eps, delta) == pytest.approx(integral, abs=1e-9)


# --- holdout and balancing -------------------------------------------------------------------


def _ids(n: int, prefix: str = "c") -> np.ndarray:
    return np.array([f"{prefix}{i:06d}" for i in range(n)])


def test_holdout_takes_about_the_fraction_within_every_month():
    rng = np.random.default_rng(0)
    months = np.array([f"2023-{m:02d}" for m in rng.integers(1, 13, 60_000)])
    held = holdout_same_months(_ids(len(months)), 0.2, holdout_key(0, "A"))
    for m in np.unique(months):
        rows = months == m
        share = held[rows].mean()
        # binomial: 4 sd of a month of ~5000 rows is 0.023
        assert abs(share - 0.2) < 4 * np.sqrt(0.2 * 0.8 / rows.sum()), (m, share)


def test_holdout_is_deterministic_per_key_and_differs_across_keys():
    ids = _ids(2000)
    held = holdout_same_months(ids, 0.3, holdout_key(1, "A"))
    assert np.array_equal(held, holdout_same_months(ids, 0.3, holdout_key(1, "A")))
    for other in (holdout_key(2, "A"), holdout_key(1, "B")):
        again = holdout_same_months(ids, 0.3, other)
        assert (again != held).mean() > 0.3  # independent draws disagree on 2·0.3·0.7 = 42%


def test_adding_or_removing_one_record_changes_no_other_records_role():
    ids = _ids(5000)
    key = holdout_key(7, "Agency")
    held = holdout_same_months(ids, 0.2, key)
    # add one record anywhere in the order
    for at in (0, 2500, 5000):
        bigger = np.insert(ids, at, "new-record")
        after = holdout_same_months(bigger, 0.2, key)
        assert np.array_equal(np.delete(after, at), held)
    # remove one record
    for at in (0, 1234, 4999):
        after = holdout_same_months(np.delete(ids, at), 0.2, key)
        assert np.array_equal(after, np.delete(held, at))
    # a seeded draw over all rows (the old design) fails the same check
    rng_held = lambda n: np.isin(np.arange(n), np.random.default_rng(7).choice(n, int(0.2 * n), replace=False))  # noqa: E731
    assert not np.array_equal(np.delete(rng_held(5001), 5000), rng_held(5000))


def test_holdout_rejects_a_fraction_outside_zero_one_and_an_empty_key():
    with pytest.raises(ValueError, match="fraction"):
        holdout_same_months(["c1"], 1.0, holdout_key(0, "A"))
    with pytest.raises(ValueError, match="key"):
        holdout_same_months(["c1"], 0.2, b"")


def test_balanced_subsample_equalises_counts():
    a, b = balanced(np.arange(10.0), np.arange(4.0), seed=0)
    assert len(a) == len(b) == 4 and set(a) <= set(range(10)) and len(set(a)) == 4
    report = mia_report(np.arange(10.0), np.arange(4.0), balance=True)
    assert report["n_members"] == report["n_nonmembers"] == 4


# --- the attack on real models ------------------------------------------------------------------


def _data(n: int, seed: int, d: int = 12):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    # noisy labels: only memorising a record predicts its label beyond ~70%
    y = (rng.random(n) < 1 / (1 + np.exp(-X[:, 0]))).astype(np.float32)
    return X, y


def test_scores_are_negative_cross_entropy():
    X, y = _data(50, 0)
    model = make_model(X.shape[1], (8,), seed=0)
    expected = -torch.nn.functional.binary_cross_entropy_with_logits(
        model(torch.tensor(X)).detach().double(), torch.tensor(y).double(), reduction="none"
    )
    np.testing.assert_allclose(mia_scores(model, X, y), expected.numpy(), rtol=1e-6)


def test_overfit_model_leaks_membership():
    X, y = _data(400, 1)
    members, nonmembers = (X[:200], y[:200]), (X[200:], y[200:])
    model = make_model(X.shape[1], (64, 64), seed=0)
    train_plain(model, *members, epochs=100, batch_size=32, lr=3e-3, generator=torch.Generator().manual_seed(0))
    report = mia_audit(model, members, nonmembers, epsilon=1.0, delta=1e-5)
    assert report["auc"] > 0.5 + 5 * report["auc_null_sd"]
    assert report["auc"] > 0.7
    assert report["bound"] == mia_bounds(1.0, 1e-5)


def test_untrained_model_is_at_chance():
    X, y = _data(4000, 2)
    model = make_model(X.shape[1], (64, 64), seed=3)
    report = mia_audit(model, (X[:2000], y[:2000]), (X[2000:], y[2000:]))
    assert abs(report["auc"] - 0.5) < 3 * auc_null_sd(2000, 2000)
    assert report["tpr_at_1pct_fpr"] < 0.04


def test_mia_audit_needs_delta_with_epsilon():
    X, y = _data(10, 0)
    with pytest.raises(ValueError, match="delta"):
        mia_audit(make_model(X.shape[1], (4,), seed=0), (X, y), (X, y), epsilon=1.0)
