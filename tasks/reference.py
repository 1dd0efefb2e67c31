"""Two plain, pooled references a reader can hold the architectures against (outcome task).

- a logistic regression on the very features the architectures see, every agency's training
  records pooled: if the federated MLP is far below it, the MLP is no good on this data;
- the base rate by category: each test record scored with its category's positive rate in the
  pooled training records (a category is the one-hot group named ``CATEGORY_PREFIX``).

Both are pooled and non-private: they are computed by the evaluation harness, never by an agency,
and nothing from them leaves anywhere. The fit is deterministic: a convex loss minimised by
L-BFGS from zero; ``seed`` only chooses the rows when the pool is larger than ``MAX_ROWS``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from tasks.features import CATEGORY_PREFIX
from tasks.hotspot import HotspotSplit
from tasks.metrics import auc
from tasks.outcome import OutcomeSplit
from tasks.registry import Split

# One split, or several pooled (e.g. every agency's).
Splits = Split | Sequence[Split]

# A pool larger than this is subsampled (seeded) so the reference costs seconds, not minutes.
MAX_ROWS = 200_000
# L2 penalty on the weights (not the intercept), per training row: enough to keep a separable
# pool's weights finite, too small to move a noisy pool's AUC.
L2_PER_ROW = 1e-4
MAX_ITERATIONS = 500


@dataclass(frozen=True)
class OutcomeReference:
    """Both references of one pooled train/test pair (AUC None where undefined)."""

    logistic_regression_auc: float | None
    base_rate_auc: float | None
    n_train: int
    n_test: int
    n_features: int


def outcome_reference(train: Splits, test: Splits, seed: int) -> OutcomeReference:
    """The logistic regression and the base rate by category on the same pooled rows (the base
    rate is None when the features have no category group)."""
    X, _ = _pool(train, "train")
    X_test, _ = _pool(test, "test")
    return OutcomeReference(
        logistic_regression_auc=logistic_regression_auc(train, test, seed),
        base_rate_auc=base_rate_auc(train, test) if has_categories(_feature_names(train)) else None,
        n_train=len(X),
        n_test=len(X_test),
        n_features=X.shape[1],
    )


class LogisticRegression:
    """Binary logistic regression on standardised features (the scaling is the pool's own)."""

    def __init__(self, weights: np.ndarray, intercept: float, mean: np.ndarray, scale: np.ndarray) -> None:
        self.weights = weights
        self.intercept = intercept
        self.mean = mean
        self.scale = scale

    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray, l2: float = L2_PER_ROW) -> LogisticRegression:
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if X.ndim != 2 or len(X) != len(y) or len(y) == 0:
            raise ValueError(f"logistic regression: {X.shape} features for {len(y)} labels.")
        mean = X.mean(axis=0)
        scale = X.std(axis=0)
        scale[scale == 0] = 1.0  # a constant column stays 0 after centring
        Z = (X - mean) / scale
        n, d = Z.shape
        penalty = l2 * n

        def loss_and_gradient(theta: np.ndarray) -> tuple[float, np.ndarray]:
            w, b = theta[:d], theta[d]
            logits = Z @ w + b
            # log(1 + e^z) - y z, stably
            loss = float(np.sum(np.logaddexp(0.0, logits) - y * logits)) + 0.5 * penalty * float(w @ w)
            residual = _sigmoid(logits) - y
            gradient = np.empty(d + 1)
            gradient[:d] = Z.T @ residual + penalty * w
            gradient[d] = residual.sum()
            return loss, gradient

        result = minimize(loss_and_gradient, np.zeros(d + 1), jac=True, method="L-BFGS-B", options={"maxiter": MAX_ITERATIONS})
        return cls(result.x[:d], float(result.x[d]), mean, scale)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        Z = (np.asarray(X, dtype=np.float64) - self.mean) / self.scale
        return _sigmoid(Z @ self.weights + self.intercept)


def fit_logistic_regression(train: Splits, seed: int) -> LogisticRegression | None:
    """A logistic regression on the pooled training rows of ``train`` (None when they all have
    one label: nothing to separate)."""
    X, y = _pool(train, "train")
    if len(np.unique(y)) < 2:
        return None
    X, y = _subsample(X, y, seed)
    return LogisticRegression.fit(X, y)


def logistic_regression_auc(train: Splits, test: Splits, seed: int) -> float | None:
    """Test AUC of a logistic regression fitted on the pooled training rows of ``train`` and
    scored on the pooled test rows of ``test`` (None when either holds one class only)."""
    model = fit_logistic_regression(train, seed)
    X_test, y_test = _pool(test, "test")
    return None if model is None else auc(y_test, model.predict_proba(X_test))


class BaseRateByCategory:
    """Scores a record with its category's positive rate in the training rows it was fitted on
    (a category unseen there gets the overall rate)."""

    def __init__(self, feature_names: Sequence[str], rates: dict[str, float], overall: float) -> None:
        self.feature_names = list(feature_names)
        self.rates = rates
        self.overall = overall

    @classmethod
    def fit(cls, train: Splits) -> BaseRateByCategory:
        X, y = _pool(train, "train")
        names = _feature_names(train)
        return cls(names, category_rates(category_of(X, names), y), float(y.mean()) if len(y) else 0.0)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.array([self.rates.get(c, self.overall) for c in category_of(X, self.feature_names)], dtype=np.float64)


def base_rate_auc(train: Splits, test: Splits) -> float | None:
    """Test AUC of scoring each test record with its category's positive rate in the pooled
    training rows (a category unseen in training gets the overall rate)."""
    X_test, y_test = _pool(test, "test")
    return auc(y_test, BaseRateByCategory.fit(train).predict_proba(X_test))


def has_categories(feature_names: Sequence[str]) -> bool:
    """Whether the features hold the one-hot category group the base rate needs."""
    return bool(_category_columns(feature_names))


def category_rates(categories: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Positive rate of each category present."""
    return {str(c): float(y[categories == c].mean()) for c in np.unique(categories)}


def category_of(X: np.ndarray, feature_names: Sequence[str]) -> np.ndarray:
    """Each row's category: the name of its hot ``CATEGORY_PREFIX`` column."""
    columns = _category_columns(feature_names)
    if not columns:
        raise ValueError(f"base rate by category: no feature starts with {CATEGORY_PREFIX!r}; features are {list(feature_names)}.")
    labels = np.array([feature_names[i][len(CATEGORY_PREFIX):] for i in columns], dtype=object)
    if len(X) == 0:
        return np.array([], dtype=object)
    return np.asarray(labels[np.argmax(X[:, columns], axis=1)])


def _category_columns(feature_names: Sequence[str]) -> list[int]:
    return [i for i, name in enumerate(feature_names) if name.startswith(CATEGORY_PREFIX)]


def _pool(splits: Splits, part: str) -> tuple[np.ndarray, np.ndarray]:
    many = [splits] if isinstance(splits, (OutcomeSplit, HotspotSplit)) else list(splits)
    if not many:
        raise ValueError("reference: no split given.")
    X = np.concatenate([getattr(s, f"X_{part}") for s in many])
    y = np.concatenate([getattr(s, f"y_{part}") for s in many]).astype(np.float64)
    return X, y


def _feature_names(splits: Splits) -> list[str]:
    return list(splits.feature_names if isinstance(splits, (OutcomeSplit, HotspotSplit)) else splits[0].feature_names)


def _subsample(X: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if len(y) <= MAX_ROWS:
        return X, y
    rows = np.sort(np.random.default_rng(seed).choice(len(y), MAX_ROWS, replace=False))
    return X[rows], y[rows]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(np.exp(-np.logaddexp(0.0, -z)))
