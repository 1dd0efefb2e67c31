"""The pooled references (tasks/reference.py) against answers known in advance."""

from __future__ import annotations

import numpy as np
import pytest

from tasks import reference
from tasks.metrics import auc
from tasks.outcome import OutcomeSplit
from tasks.reference import LogisticRegression, base_rate_auc, category_of, logistic_regression_auc, outcome_reference


def _split(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, y_test: np.ndarray, names: list[str] | None = None) -> OutcomeSplit:
    names = names or [f"x{i}" for i in range(X_train.shape[1])]
    n_test = len(y_test)
    return OutcomeSplit(
        X_train=X_train.astype(np.float32), y_train=y_train.astype(np.float32),
        X_test=X_test.astype(np.float32), y_test=y_test.astype(np.float32),
        test_crime_ids=np.array([str(i) for i in range(n_test)]), test_crime_types=np.full(n_test, ""),
        feature_names=names, counts={},
    )


def _logistic_data(rng: np.random.Generator, n: int, w: np.ndarray, b: float) -> tuple[np.ndarray, np.ndarray]:
    X = rng.normal(size=(n, len(w)))
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ w + b)))).astype(float)
    return X, y


def test_separable_data_gives_auc_one() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 3))
    X_test = rng.normal(size=(200, 3))
    # a margin between the classes: |x0| >= 0.2
    X[:, 0] += np.sign(X[:, 0]) * 0.2
    X_test[:, 0] += np.sign(X_test[:, 0]) * 0.2
    split = _split(X, (X[:, 0] > 0).astype(float), X_test, (X_test[:, 0] > 0).astype(float))
    assert logistic_regression_auc(split, split, seed=0) == 1.0


def test_one_feature_auc_is_that_features_own_auc() -> None:
    # With one feature the fitted score is monotone in it, so the AUC is exactly the feature's.
    rng = np.random.default_rng(2)
    X, y = _logistic_data(rng, 3000, np.array([1.0]), -0.3)
    X_test, y_test = _logistic_data(rng, 2000, np.array([1.0]), -0.3)
    got = logistic_regression_auc(_split(X, y, X_test, y_test), _split(X, y, X_test, y_test), seed=0)
    assert got is not None and got == pytest.approx(auc(y_test, X_test[:, 0]), abs=1e-12)
    assert 0.6 < got < 0.8  # noisy: far from both chance and separation


def test_recovers_the_true_weights_and_the_bayes_auc() -> None:
    rng = np.random.default_rng(3)
    w, b = np.array([1.5, -1.0, 0.0]), 0.5
    X, y = _logistic_data(rng, 40_000, w, b)
    model = LogisticRegression.fit(X, y)
    # back to the raw scale: logit = ((x - mean) / scale) @ weights + intercept
    raw_w = model.weights / model.scale
    raw_b = model.intercept - float(model.mean / model.scale @ model.weights)
    assert raw_w == pytest.approx(w, abs=0.06)
    assert raw_b == pytest.approx(b, abs=0.06)
    X_test, y_test = _logistic_data(rng, 10_000, w, b)
    bayes = auc(y_test, X_test @ w)
    split = _split(X, y, X_test, y_test)
    assert logistic_regression_auc(split, split, seed=0) == pytest.approx(bayes, abs=0.003)


def test_pools_several_splits_and_is_deterministic(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(4)
    parts = [_split(*_logistic_data(rng, 500, np.array([1.0, 1.0]), 0.0), *_logistic_data(rng, 300, np.array([1.0, 1.0]), 0.0)) for _ in range(3)]
    monkeypatch.setattr(reference, "MAX_ROWS", 700)  # force the seeded subsample
    first = logistic_regression_auc(parts, parts, seed=7)
    assert first == logistic_regression_auc(parts, parts, seed=7)
    assert first != logistic_regression_auc(parts, parts, seed=8)
    got = outcome_reference(parts, parts, seed=7)
    assert (got.n_train, got.n_test, got.n_features) == (1500, 900, 2)
    assert got.logistic_regression_auc == first and got.base_rate_auc is None  # no category features


def test_one_class_in_training_gives_none() -> None:
    X = np.ones((5, 2))
    split = _split(X, np.zeros(5), X, np.array([0, 1, 0, 1, 1.0]))
    assert logistic_regression_auc(split, split, seed=0) is None


def test_base_rate_by_category_known_answer() -> None:
    names = ["crime_type:A", "crime_type:B", "crime_type:C", "latitude"]
    a, b, c = [1, 0, 0, 0.3], [0, 1, 0, -1.0], [0, 0, 1, 0.0]
    # training rates: A 4/5 = 0.8, B 1/5 = 0.2; C is never seen -> the overall rate 0.5
    X = np.array([a] * 5 + [b] * 5)
    y = np.array([1, 1, 1, 1, 0] + [1, 0, 0, 0, 0], dtype=float)
    X_test = np.array([a, a, a, b, b, b, c])
    y_test = np.array([1, 1, 0, 0, 0, 1, 1], dtype=float)
    split = _split(X, y, X_test, y_test, names)
    assert list(category_of(X_test, names)) == ["A", "A", "A", "B", "B", "B", "C"]
    # positives score (0.8, 0.8, 0.2, 0.5), negatives (0.8, 0.2, 0.2):
    # 0.8 -> 0.5+1+1 twice, 0.2 -> 0+0.5+0.5, 0.5 -> 0+1+1 ; (5 + 1 + 2) / 12
    assert base_rate_auc(split, split) == pytest.approx(8 / 12)


def test_base_rate_needs_category_columns() -> None:
    X = np.ones((4, 2))
    split = _split(X, np.array([0, 1, 0, 1.0]), X, np.array([0, 1, 0, 1.0]))
    with pytest.raises(ValueError, match="crime_type:"):
        base_rate_auc(split, split)
