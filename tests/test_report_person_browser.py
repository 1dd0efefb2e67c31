"""The first screen's "ε per person" line (experiments/report/answer.py) is above the fold at
1400 × 900 with everything else the first screen must show, on the longest outcome first screen
the fixtures give (all six architectures, fedavg-central-dp failing) under both privacy units.
Chromium is driven as in tests/test_report_browser.py (its Chromium class, reused)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.report import write_report
from tests import test_report_answer as A  # its epsilon_by_unit blocks
from tests import test_report_browser as B  # its Chromium class
from tests.fixtures.report import report_fixtures as F

pytestmark = pytest.mark.browser


ALL = ("central", "local", "fedavg", "fedavg-dp", "fedavg-dp-secagg", "fedavg-central-dp")


def _summary(block: dict, unit: str) -> dict:
    summary = F.run_summary(archs=ALL, levels={"fedavg-central-dp": 0.45})
    for entry in summary["architectures"].values():
        if entry["privacy_unit"] == "record":
            entry["privacy_unit"], entry["epsilon_by_unit"] = unit, block
    return summary


def test_person_epsilons_are_above_the_fold(tmp_path):
    assert Path(B.CHROMIUM).exists(), f"{B.CHROMIUM} not found: install Debian's chromium to run the browser tests"
    reports = {unit: write_report(F.write_run(tmp_path / unit, _summary(block, unit))) for unit, block in (("record", A.RECORD_BLOCK), ("person", A.PERSON_BLOCK))}
    wanted = (*B.FIRST_SCREEN, "answer-person")
    work = tmp_path / "chromium"
    work.mkdir()
    browser = B.Chromium(work)
    boxes = {}
    with browser:
        for unit, report in reports.items():
            _, problems = browser.open(report.as_uri(), viewport=(1400, 900))
            assert problems == []
            boxes[unit] = browser.evaluate(B.BOXES % json.dumps(wanted))
    assert browser.leftovers() == [], "Chromium processes left running"
    for unit, found in boxes.items():
        for key in wanted:
            box = found[key]
            assert box is not None, f"{unit}: #{key} missing"
            assert box["height"] > 0 and 0 <= box["top"] and box["bottom"] <= 900, f"{unit}: #{key} is not above the fold at 1400×900: {box}"
    assert "ε ≈ 47.52 at δ = 1, i.e. no meaningful guarantee" in boxes["record"]["answer-person"]["text"]
    assert boxes["person"]["answer-person"]["text"].startswith("person within one agency ε 3.990; person across the federation ε 5.930")
    # The person line sits right under the privacy unit.
    assert boxes["person"]["answer-unit"]["bottom"] <= boxes["person"]["answer-person"]["top"]
