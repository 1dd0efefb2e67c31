"""The report's view of two things the evaluation harness adds to an outcome run: the pooled
references (summary.json `reference`: a logistic regression and the base rate by category) and
the agencies whose test sets are too small for solid metrics (`small_test_set`). Shown under
the architectures' comparison table; nothing at all when a summary has neither."""

from __future__ import annotations

from experiments.reference import Reference
from experiments.report import fmt
from experiments.report.load import Study
from experiments.report.tables import Table

REFERENCE_NOTE = (
    "Pooled, non-private references computed by the evaluation harness on the architectures' own "
    "features and test records, not architectures: no agency computes or sends anything for them. "
    "An architecture well below the logistic regression is not learning what these features hold; "
    "the base rate (each crime type's positive rate in training) is what the crime type alone gives."
)


def tables(study: Study) -> list[Table]:
    """The references table and the small-test-sets table, each only when there is something to show."""
    return [t for t in (_references(study), _small_test_sets(study)) if t.rows]


def _references(study: Study) -> Table:
    sweep = study.kind == "sweep"
    rows = []
    for cell in study.cells:
        block = (cell.summary or {}).get("reference")
        if not isinstance(block, dict):
            continue
        try:
            found = Reference.from_dict(block)
        except (KeyError, TypeError):  # a block this code did not write: say nothing rather than guess
            continue
        for scores in (found.logistic_regression, found.base_rate_by_category):
            if scores is None:
                continue
            m = scores.metrics
            rows.append(([cell.name] if sweep else []) + [scores.name, fmt.num(m.get("auc")), fmt.num(scores.auc_pooled), fmt.num(m.get("accuracy")), fmt.num(m.get("log_loss"))])
    header = (["cell"] if sweep else []) + ["reference", "AUC (test-weighted over agencies)", "AUC (all test records at once)", "accuracy", "log loss"]
    return Table("reference", "Reference: pooled logistic regression and base rate", header, rows, REFERENCE_NOTE)


def _small_test_sets(study: Study) -> Table:
    sweep = study.kind == "sweep"
    rows, seen = [], set()
    for cell in study.cells:
        summary = cell.summary or {}
        minimum = (summary.get("data") or {}).get("min_test_records")
        for agency in summary.get("agencies") or []:
            if not isinstance(agency, dict) or not agency.get("small_test_set"):
                continue
            key = (cell.name if sweep else "", str(agency.get("name")))
            if key in seen:
                continue
            seen.add(key)
            rows.append(([cell.name] if sweep else []) + [str(agency.get("name")), fmt.count(agency.get("n_test")), fmt.count(minimum)])
    header = (["cell"] if sweep else []) + ["agency", "test records", "minimum (task.min_test_records)"]
    note = "These agencies' metrics rest on too few test records to be solid: read their per-agency figures as indicative only."
    return Table("small-test-sets", "Agencies with small test sets", header, rows, note)
