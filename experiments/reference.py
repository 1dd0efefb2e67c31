"""The `reference` block of an outcome run's summary.json: a pooled logistic regression and the
base rate by category (tasks/reference.py), scored on the architectures' own test rows the way
the architectures are (per agency, then the test-weighted mean), so a reader sees at once
whether the federated MLP is any good on this data.

Both references are pooled and non-private, computed by the evaluation harness, which holds
every agency's records in simulation; no agency computes or sends anything for them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from experiments.results import metric_values
from tasks import reference
from tasks.metrics import auc, binary_metrics, weighted_mean
from tasks.outcome import OutcomeSplit
from tasks.registry import Split

KIND = "pooled, non-private reference, computed by the evaluation harness"
LOGISTIC_REGRESSION = "logistic regression (the architectures' features)"
BASE_RATE = "base rate by crime type (its positive rate in training)"


@dataclass(frozen=True)
class ReferenceScores:
    """One reference model's scores: `metrics` is the test-weighted mean over agencies (as for
    every architecture); `auc_pooled` the AUC over every agency's test rows at once."""

    name: str
    metrics: dict[str, Any]
    per_agency: dict[str, dict[str, Any]]
    auc_pooled: float | None


@dataclass(frozen=True)
class Reference:
    kind: str
    split: str
    features: str
    n_train: int
    n_test: int
    n_features: int
    seed: int
    logistic_regression: ReferenceScores | None  # None: every training record has one label
    base_rate_by_category: ReferenceScores | None  # None: the features name no category
    wall_s: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reference:
        """Read back from summary.json (KeyError/TypeError on a block this code did not write)."""
        fields = dict(data)
        for key in ("logistic_regression", "base_rate_by_category"):
            fields[key] = ReferenceScores(**fields[key]) if fields.get(key) is not None else None
        return cls(**fields)


def outcome_reference(splits: Mapping[str, Split], seed: int) -> Reference | None:
    """Both references on `splits` (agency name -> split); None for a task other than outcome."""
    if not splits or not all(isinstance(s, OutcomeSplit) for s in splits.values()):
        return None
    started = time.perf_counter()
    parts = list(splits.values())
    names = parts[0].feature_names
    lr = reference.fit_logistic_regression(parts, seed)
    base = reference.BaseRateByCategory.fit(parts) if reference.has_categories(names) else None
    n_train = sum(len(s.y_train) for s in parts)
    n_test = sum(len(s.y_test) for s in parts)
    lr_scores = None if lr is None else _scores(LOGISTIC_REGRESSION, splits, lr.predict_proba)
    base_scores = None if base is None else _scores(BASE_RATE, splits, base.predict_proba)
    return Reference(
        kind=KIND,
        split=(
            f"fitted on every agency's training months pooled ({n_train:,} records), scored on each "
            f"agency's test months ({n_test:,} records): the rows every architecture is scored on"
        ),
        features=f"the architectures' {len(names)} features, standardised on the pooled training records",
        n_train=n_train,
        n_test=n_test,
        n_features=len(names),
        seed=seed,
        logistic_regression=lr_scores,
        base_rate_by_category=base_scores,
        wall_s=time.perf_counter() - started,
    )


def _scores(name: str, splits: Mapping[str, Split], predict: Callable[[np.ndarray], np.ndarray]) -> ReferenceScores:
    probas = {agency: predict(split.X_test) for agency, split in splits.items()}
    per_agency = {agency: metric_values(binary_metrics(split.y_test, probas[agency])) for agency, split in splits.items()}
    weights = {agency: len(split.y_test) for agency, split in splits.items()}
    pooled = auc(np.concatenate([s.y_test for s in splits.values()]), np.concatenate(list(probas.values())))
    return ReferenceScores(name, metric_values(weighted_mean(per_agency, weights)), per_agency, pooled)


def end_table_rows(summary: Mapping[str, Any]) -> tuple[list[list[str]], list[str]]:
    """`peel run`'s end table: a row per reference beside the architectures' rows (architecture,
    AUC, accuracy, log loss, privacy, records moved, update MB, wall s) and a footer line saying
    what they are. Nothing for a summary without a reference block (hotspot, older runs)."""
    block = summary.get("reference")
    if not block:
        return [], []
    try:
        found = Reference.from_dict(block)
    except (KeyError, TypeError):  # a block another version wrote: the table goes on without it
        return [], []
    rows, said = [], []
    for label, scores in (("ref: logistic regr.", found.logistic_regression), ("ref: base rate", found.base_rate_by_category)):
        if scores is None:
            continue
        m = scores.metrics
        rows.append([label, _num(m.get("auc")), _num(m.get("accuracy")), _num(m.get("log_loss")), "none (pooled reference)", "-", "-", "-"])
        said.append(label)
    footer = [f"the {' and '.join(said)} rows: {found.kind}, on the same features and test records (not architectures: nothing leaves any agency for them)"] if said else []
    return rows, footer


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
