"""How per-agency metrics combine into one figure per round (FedAvg would weight-average all)."""

from __future__ import annotations

import math

from flwr.app import MetricRecord, RecordDict

from federation.contract import DELTA, EPSILON_BUDGET, EPSILON_SPENT_TO_DATE, EPSILON_THIS_RUN, EVALUATED_LOCALLY, TRAIN_SECONDS

# ε is a worst case over agencies: never average it.
MAX_KEYS = frozenset({EPSILON_SPENT_TO_DATE, EPSILON_THIS_RUN, EPSILON_BUDGET, DELTA, TRAIN_SECONDS, EVALUATED_LOCALLY})
SUM_KEYS = frozenset({"num-examples", "n-train", "steps"})


def aggregate_metrics(replies: list[RecordDict], weight_key: str) -> MetricRecord:
    """Max for privacy figures, sums for counts, example-weighted means (NaN-skipping) for the
    rest."""
    rows = [dict(next(iter(r.metric_records.values()))) for r in replies]
    keys = sorted({k for row in rows for k in row})
    out: dict[str, float | int] = {}
    for key in keys:
        values = [(row[key], row.get(weight_key, 1)) for row in rows if key in row]
        finite = [(v, w) for v, w in values if not (isinstance(v, float) and math.isnan(v))]
        if key in MAX_KEYS:
            out[key] = max(v for v, _ in finite) if finite else math.nan
        elif key in SUM_KEYS:
            out[key] = sum(v for v, _ in values)
        else:
            total = sum(w for _, w in finite)
            out[key] = sum(v * w for v, w in finite) / total if total else math.nan
    return MetricRecord(out)
