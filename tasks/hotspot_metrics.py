"""Crime analysts' hotspot metrics of one agency's test months: hit rate, PAI and PEI.

Each test month the k areas with the highest scores are flagged (k as in the labels, so the
flagged share of area is k / n_areas every month). Areas tied at the k-th score share the
remaining flags equally (fractional flags): the result is the expected value over a uniformly
random tie break, so a constant predictor scores like flagging at random and no area order is
favoured.

- hit rate = recorded incidents in flagged areas / all recorded incidents placed in an area,
  **pooled** over the test months (sums, then one ratio), i.e. the share of the test period's
  incidents that fell in flagged areas. Pooling weights months by their incidents, so a quiet
  month with three incidents cannot swing the figure as much as a busy one, and a month with no
  incident at all adds nothing instead of being undefined.
- PAI = hit rate / flagged share of area (1 = no better than flagging at random).
- pai_oracle: flags by the ground-truth expected intensity (synthetic only), the best flags
  anyone could choose in advance. PEI = PAI / pai_oracle. It can exceed 1 in a lucky period:
  the oracle maximises expected, not recorded, hits.
- pai_hindsight: flags by the recorded counts themselves, the upper limit no forecast reaches;
  pei_hindsight = PAI / pai_hindsight is the PEI of Hunt (2016), available on real data too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.hotspot import HotspotSplit
from tasks.metrics import binary_metrics

HOTSPOT_KEYS = ("hit_rate", "pai", "pei", "pei_hindsight", "pai_oracle", "pai_hindsight", "flagged_share")


def flag_weights(split: HotspotSplit, scores: np.ndarray) -> np.ndarray:
    """Per test row, the share of a flag it gets (1 for the top k of its month, fractional for
    the areas tied at the k-th score, else 0); each month's flags sum to k."""
    scores = _aligned(split, scores, "scores")
    flags = np.zeros(len(scores), dtype=np.float64)
    for rows in _month_rows(split):
        flags[rows] = top_k_weights(scores[rows], split.k)
    return flags


def top_k_weights(scores: np.ndarray, k: int) -> np.ndarray:
    """Weights summing to min(k, len(scores)): 1 above the k-th largest score, an equal share of
    the flags left for the scores equal to it, 0 below."""
    scores = np.asarray(scores, dtype=np.float64)
    k = min(int(k), len(scores))
    weights = np.zeros(len(scores))
    if k <= 0:
        return weights
    kth = np.sort(scores)[len(scores) - k]
    above, tied = scores > kth, scores == kth
    weights[above] = 1.0
    weights[tied] = (k - above.sum()) / tied.sum()
    return weights


def hotspot_metrics(
    split: HotspotSplit,
    proba: np.ndarray,
    intensity: np.ndarray | pd.DataFrame | None = None,
) -> dict[str, float | None]:
    """Hotspot metrics (``HOTSPOT_KEYS``) of predicted probabilities ``proba`` (aligned with
    the test rows) plus ``tasks.metrics.binary_metrics`` against the labels. ``intensity``: the
    ground-truth expected incidents per test row, or the generator's intensity table (see
    ``intensity_for_test``); without it pei and pai_oracle are None."""
    proba = _aligned(split, proba, "proba")
    actual = split.test_next_counts.astype(np.float64)
    hit_rate = _hit_rate(flag_weights(split, proba), actual)
    hindsight = _hit_rate(flag_weights(split, actual), actual)
    share = _flagged_share(split)
    pai = _ratio(hit_rate, share)
    pai_hindsight = _ratio(hindsight, share)
    pai_oracle = None
    if intensity is not None:
        expected = _intensity(split, intensity)
        pai_oracle = _ratio(_hit_rate(flag_weights(split, expected), actual), share)
    return {
        "hit_rate": hit_rate,
        "pai": pai,
        "pei": _ratio(pai, pai_oracle),
        "pei_hindsight": _ratio(pai, pai_hindsight),
        "pai_oracle": pai_oracle,
        "pai_hindsight": pai_hindsight,
        "flagged_share": share,
        **binary_metrics(split.y_test, proba),
    }


def oracle_scores(split: HotspotSplit, intensity: np.ndarray | pd.DataFrame) -> np.ndarray:
    """Scores of the ground-truth ceiling: expected / (1 + expected), in [0, 1) and in the same
    order as the true intensity. ``hotspot_metrics(split, oracle_scores(...), intensity)`` gives
    the oracle's PAI (pei = 1) and AUC; its accuracy, log loss and Brier score mean nothing, as
    these scores are not probabilities of the label."""
    expected = _intensity(split, intensity)
    return expected / (1.0 + expected)


def persistence_scores(split: HotspotSplit) -> np.ndarray:
    """The analysts' naive forecast, "next month looks like this month": the area's count in
    month m (scaled into [0, 1) like ``oracle_scores``), a baseline every model should beat."""
    if "count_lag1" not in split.feature_names:
        raise ValueError("persistence_scores: the split has no count_lag1 feature.")
    last = np.expm1(split.X_test[:, split.feature_names.index("count_lag1")].astype(np.float64))
    return last / (1.0 + last)


def intensity_for_test(split: HotspotSplit, table: pd.DataFrame) -> np.ndarray:
    """The ``expected`` column of a ground-truth intensity table (``LSOA code``, ``month``,
    ``expected`` and optionally ``agency``: ``ground_truth/intensity.csv.gz`` of the generator)
    for each test row of ``split``; raises if a test row has no value."""
    missing = [c for c in ("LSOA code", "month", "expected") if c not in table.columns]
    if missing:
        raise ValueError(f"intensity table lacks column(s) {missing}; it has {list(table.columns)}.")
    if "agency" in table.columns and split.agency:
        table = table[table["agency"].astype(str) == split.agency]
    key = table["LSOA code"].astype(str) + "|" + table["month"].astype(str)
    if key.duplicated().any():
        twice = str(key[key.duplicated()].iloc[0])
        raise ValueError(f"intensity table: area|month {twice!r} appears twice for {split.agency!r}.")
    lookup = pd.Series(table["expected"].to_numpy(np.float64), index=key.to_numpy())
    wanted = np.char.add(np.char.add(split.test_areas.astype(str), "|"), split.test_months.astype(str))
    position = pd.Index(lookup.index).get_indexer(wanted)
    if (position < 0).any():
        first = str(wanted[int(np.argmax(position < 0))])
        raise ValueError(
            f"intensity table: no expected count for area|month {first!r} of {split.agency!r}"
            f" ({int((position < 0).sum())} of {len(wanted)} test rows)."
        )
    return np.asarray(lookup.to_numpy()[position])


# ------------------------------------------------------------------ internals


def _aligned(split: HotspotSplit, values: np.ndarray, what: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(values) != len(split.test_months):
        raise ValueError(f"hotspot metrics: {len(values)} {what} for {len(split.test_months)} test rows.")
    if not np.isfinite(values).all():
        raise ValueError(f"hotspot metrics: {what} contain NaN or infinity.")
    return values


def _intensity(split: HotspotSplit, intensity: np.ndarray | pd.DataFrame) -> np.ndarray:
    if isinstance(intensity, pd.DataFrame):
        return intensity_for_test(split, intensity)
    expected = _aligned(split, intensity, "intensities")
    if (expected < 0).any():
        raise ValueError("hotspot metrics: intensities must be >= 0 (expected incident counts).")
    return expected


def _month_rows(split: HotspotSplit) -> list[np.ndarray]:
    _, inverse = np.unique(split.test_months, return_inverse=True)
    return [np.flatnonzero(inverse == i) for i in range(inverse.max() + 1)] if len(inverse) else []


def _hit_rate(flags: np.ndarray, actual: np.ndarray) -> float | None:
    total = actual.sum()
    return float((flags * actual).sum() / total) if total > 0 else None


def _flagged_share(split: HotspotSplit) -> float | None:
    months = _month_rows(split)
    rows = sum(len(r) for r in months)
    return sum(min(split.k, len(r)) for r in months) / rows if rows else None


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return float(numerator / denominator)
