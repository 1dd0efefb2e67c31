"""An outcome run's reference block (experiments/reference.py) and small-test-set marks, on a
tiny in-process run (central only: seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.config import validate
from experiments.reference import KIND, Reference, outcome_reference
from experiments.results import format_table
from experiments.runner import execute, prepare
from tasks.reference import logistic_regression_auc

CONFIG = {
    "seed": 2,
    "output": "out",
    "data": {"agencies": 4, "incidents": 8000, "months": 12},
    "task": {"test_months": 3, "hidden": [16], "min_test_records": 120},
    "federation": {"rounds": 2, "batch_size": 64},
    "architectures": ["central"],
    "audit": False,
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, object]:
    cwd = tmp_path_factory.mktemp("reference-run")
    config = validate({**CONFIG, "output": str(cwd / "out")}, "tiny")
    folder = prepare(config, "tiny")
    execute([folder])
    return folder.run_dir, json.loads((folder.run_dir / "summary.json").read_text()), folder


def test_reference_block_is_the_pooled_logistic_regression_on_the_runs_own_rows(tiny_run) -> None:
    _, summary, folder = tiny_run
    block = summary["reference"]
    assert block["kind"] == KIND == "pooled, non-private reference, computed by the evaluation harness"
    found = Reference.from_dict(block)
    splits = list(folder.splits.values())
    assert found.n_train == sum(len(s.y_train) for s in splits) and found.n_test == sum(len(s.y_test) for s in splits)
    assert found.logistic_regression is not None and found.base_rate_by_category is not None
    # the same fit, recomputed independently on the pooled rows
    assert found.logistic_regression.auc_pooled == pytest.approx(logistic_regression_auc(splits, splits, seed=2), abs=1e-12)
    assert set(found.logistic_regression.per_agency) == set(folder.splits)
    # synthetic data: the truth is known; a pooled logistic regression on these features comes
    # close to the Bayes-optimal AUC and clearly above chance, and the base rate sits below it
    bayes = summary["bayes_optimal"]["metrics"]["auc"]
    lr = found.logistic_regression.metrics["auc"]
    assert bayes - 0.04 < lr <= bayes + 0.01
    assert 0.55 < found.base_rate_by_category.metrics["auc"] <= lr + 0.01
    assert found.wall_s < 5


def test_small_test_sets_are_marked_and_warned(tiny_run) -> None:
    _, summary, _ = tiny_run
    small = {a["name"] for a in summary["agencies"] if a["n_test"] < 120}
    assert small, "the fixture should have a small agency (its sizes are very unequal)"
    assert {a["name"] for a in summary["agencies"] if a["small_test_set"]} == small
    assert {n for n, a in summary["architectures"]["central"]["per_agency"].items() if a["small_test_set"]} == small
    assert summary["data"]["min_test_records"] == 120
    assert sorted(w.split(" has ")[0] for w in summary["warnings"] if "task.min_test_records=120" in w) == sorted(small)


def test_end_table_shows_the_references_beside_the_architectures(tiny_run) -> None:
    _, summary, _ = tiny_run
    text = format_table(summary)
    lr = summary["reference"]["logistic_regression"]["metrics"]["auc"]
    rows = [line for line in text.splitlines() if line.startswith("ref: ")]
    assert len(rows) == 2 and f"{lr:.3f}" in rows[0]
    assert "pooled, non-private reference, computed by the evaluation harness" in text
    assert sum("(small test set)" in line for line in text.splitlines()) == sum(a["small_test_set"] for a in summary["agencies"])
    older = {k: v for k, v in summary.items() if k != "reference"}  # an older run's summary: no rows, no error
    assert "ref: " not in format_table(older)
    assert "ref: " not in format_table({**summary, "reference": {"kind": KIND, "unknown": 1}})  # another version's block


def test_no_splits_get_no_reference(tiny_run) -> None:
    assert outcome_reference({}, seed=0) is None


def test_report_shows_the_references_and_the_small_test_sets(tiny_run) -> None:
    from experiments.report import write_report

    run_dir, summary, _ = tiny_run
    page = write_report(run_dir).read_text(encoding="utf-8")
    assert 'id="table-reference"' in page and "computed by the evaluation harness" in page
    assert f"{summary['reference']['logistic_regression']['metrics']['auc']:.3f}" in page
    small = [a["name"] for a in summary["agencies"] if a["small_test_set"]]
    table = page.split('id="table-small-test-sets"')[1].split("</table>")[0]
    assert all(name in table for name in small)
