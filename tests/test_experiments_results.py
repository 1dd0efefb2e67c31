"""Results files and the end table: rows become per-agency entries (ε the largest reported,
refusals counted), writes are atomic, the table shows every agency under every architecture."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import numpy as np
import pytest

from experiments.results import format_table, per_agency_from_rows, write_json
from experiments.runner import _check_delta


def test_per_agency_from_rows_takes_last_metrics_max_epsilon_and_counts_refusals():
    rows = [
        {"architecture": "fedavg-dp", "round": 1, "agency": "A", "n_train": 10, "epsilon_spent_to_date": 0.4, "epsilon_this_run": 0.3, "epsilon_budget": 1.0, "delta": 1e-5, "auc": 0.6},
        {"architecture": "fedavg-dp", "round": 2, "agency": "A", "train_error": "A: privacy budget exhausted", "auc": 0.65},
        {"architecture": "fedavg", "round": 1, "agency": "A", "n_train": 10, "auc": 0.9},
        {"architecture": "fedavg-dp", "round": 1, "agency": "node-7", "train_error": "?"},
    ]
    out = per_agency_from_rows(rows, "fedavg-dp", ["A", "B"])
    assert set(out) == {"A", "B"}
    assert out["A"]["epsilon"] == out["A"]["epsilon_spent_to_date"] == 0.4 and out["A"]["updates_sent"] == 1
    assert out["A"]["epsilon_this_run"] == 0.3 and out["A"]["epsilon_budget"] == 1.0 and out["A"]["delta"] == 1e-5
    assert out["A"]["metrics"]["auc"] == 0.65
    assert out["A"]["errors"] == [{"round": 2, "reason": "A: privacy budget exhausted"}]
    assert out["B"] == {"metrics": None, "epsilon": None, "updates_sent": 0, "errors": []}


def test_write_json_is_atomic_and_rejects_nan(tmp_path):
    path = tmp_path / "summary.json"
    write_json(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    with pytest.raises(ValueError):
        write_json(path, {"a": float("nan")})
    assert json.loads(path.read_text()) == {"a": 1}  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temporary left


def _summary():
    def arch(auc, eps=None):
        return {
            "metrics": {"auc": auc, "accuracy": 0.7, "log_loss": 0.5},
            "per_agency": {
                "Big": {"metrics": {"auc": auc}, "epsilon": eps, "epsilon_spent_to_date": eps, "epsilon_this_run": eps and eps / 2},
                "Small": {"metrics": None, "epsilon": eps, "epsilon_spent_to_date": eps, "epsilon_this_run": eps and eps / 2},
            },
            "epsilon_max": eps,
            "delta": 1e-5 if eps else None,
            "privacy_unit": "record" if eps else None,
            "records_moved": 0,
            "update_bytes": 1_000_000,
            "wall_s": 1.0,
        }

    return {
        "agencies": [{"name": "Big", "n_train": 900, "budget": 1.0}, {"name": "Small", "n_train": 30, "budget": 1.0}],
        "architectures": {"local": arch(0.7), "fedavg-dp": arch(0.75, 0.98)},
        "bayes_optimal": {"metrics": {"auc": 0.8}, "per_agency": {"Big": {"auc": 0.8}, "Small": {"auc": 0.79}}},
    }


def test_table_lists_agencies_smallest_first_with_epsilon_and_missing_values():
    lines = format_table(_summary()).splitlines()
    assert lines[0].split()[:2] == ["agency", "n_train"]
    assert lines[2].startswith("Small") and lines[3].startswith("Big")
    assert "-" in lines[2].split()  # an agency without metrics shows '-', not a crash
    assert "0.49 / 0.98 / 1" in lines[2]  # this run / spent to date / budget
    assert any(line.startswith("fedavg-dp") and "0.98 (δ=1e-05, record)" in line for line in lines)


def test_table_shows_a_dp_architecture_whose_agencies_all_refused_as_refused():
    summary = _summary()
    entry = summary["architectures"]["fedavg-dp"]
    entry.update(status="refused", epsilon_max=None)
    for agency in entry["per_agency"].values():
        agency.update(epsilon=None, epsilon_spent_to_date=None, epsilon_this_run=None, errors=[{"round": 1, "reason": "budget exhausted"}])
    text = format_table(summary)
    assert "refused: no agency released an update" in text and "none (no DP)" not in text.split("fedavg-dp")[-1]
    assert "refused" in text.splitlines()[2]


def test_table_explains_an_agency_level_architecture_below_chance():
    summary = _summary()
    assert "near chance" not in format_table(summary)
    entry = summary["architectures"]["fedavg-dp"]
    entry["metrics"]["auc"], entry["privacy_unit"] = 0.45, "agency"
    notes = [line for line in format_table(summary).splitlines() if "near chance" in line]
    assert len(notes) == 1 and notes[0].startswith("fedavg-dp: AUC 0.450") and "with 2 agencies" in notes[0]


def test_table_ends_with_the_hotspot_baselines_sentence():
    summary = _summary()
    assert "hotspot baselines:" not in format_table(summary)
    summary["hotspot_baselines"] = {"sentence": "At 5% of areas, central +0.06 [-0.07, 0.18]."}
    assert format_table(summary).splitlines()[-1] == "hotspot baselines: At 5% of areas, central +0.06 [-0.07, 0.18]."


def test_delta_warning_names_large_agencies(caplog):
    splits = {"Big": SimpleNamespace(y_train=np.zeros(200_000)), "Small": SimpleNamespace(y_train=np.zeros(300))}
    with caplog.at_level(logging.WARNING, logger="peel.run"):
        _check_delta(1e-5, splits)
    assert "Big" in caplog.text and "Small" not in caplog.text
