"""The report's first screen (experiments/report/answer.py) on fixture runs: which architecture it
recommends flips with the numbers (over budget, refused, at chance, a tie with secure
aggregation), every item names its summary.json source, and the page around it keeps its
promises (a glossary, titled figures with units, no "None", "Utility under attack" once)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from experiments.report import answer, views, write_report
from experiments.report.load import load
from tests.fixtures.report import report_fixtures as F

ALL = ("central", "local", "fedavg", "fedavg-dp", "fedavg-dp-secagg", "fedavg-central-dp")


def _answer(folder: Path) -> answer.Answer:
    study = load(folder)
    return answer.answer(study, views.focus(study))


def _items(a: answer.Answer) -> dict[str, str]:
    return {i.key: i.text for i in a.items}


def test_recommends_the_best_record_level_dp_within_budget(tmp_path):
    folder = F.write_run(tmp_path / "run", F.run_summary(archs=ALL))
    a = _answer(folder)
    # fedavg-dp (0.755 level) beats fedavg-dp-secagg (0.754) by more than the tie margin.
    assert a.recommended == "fedavg-dp"
    assert a.headline.startswith("Recommended at ε = 1 per agency, δ = 1e-05: fedavg-dp")
    items = _items(a)
    # Test-weighted levels: fedavg-dp 0.75348, central 0.76848 -> 0.25348 / 0.26848 = 94.4%.
    assert items["utility"].startswith("94% of pooling's AUC gain over chance: AUC 0.753 against 0.768")
    assert items["unit"].startswith("one incident record, per agency, (ε, δ) = (1, 1e-05)")
    assert "e^ε = 2.72" in items["unit"]
    # Agency by agency against training alone: every agency gains, the smallest most.
    assert items["alone"] == "4 of 4 agencies score higher than training alone (most: Tiny Police, +0.095 AUC); overall AUC 0.753 against 0.748 with every agency alone"
    assert "the model update (DP-SGD)" in items["releases"] and "its record count (Gaussian count (sensitivity 1))" in items["releases"]
    assert "SecAgg+" not in items["releases"]  # fedavg-dp sends no SecAgg+ material
    # Only the messages of training: another command's releases (e.g. peel analyze's) are not listed.
    assert [m for m in {r["message"] for r in F.run_summary()["releases"]} if m not in answer.TRAINING_MESSAGES and m != "secagg-protocol" and m != "refusal"]
    assert "analytics" not in items["releases"] and "noisy-counts" not in items["releases"]
    assert "raw records moved: 0" in items["releases"]
    # The fixture spends 0.99 × budget at the smallest agency, less at the others.
    assert items["spent"].startswith("max over agencies ε 0.9900 per record (Tiny Police, budget 1)")
    assert "Big Constabulary 0.9600/1" in items["spent"]
    assert "AUC 0.510" in items["attack"] and "at most 0.620" in items["attack"] and "ε ≥ 0.20" in items["attack"]
    why = dict(a.not_recommended)
    assert why["fedavg-dp-secagg"].startswith("AUC 0.752, 0.001 below fedavg-dp's 0.753 (it adds secure aggregation")
    assert why["fedavg-central-dp"].startswith("agency-level DP holds only if the coordinator is trusted")
    assert why["central"].startswith("no privacy") and why["fedavg"].startswith("no formal privacy")
    assert a.failed == {}
    sources = {i.key: i.source for i in a.items}
    assert sources["utility"] == "summary.json architectures.fedavg-dp.metrics.auc ÷ architectures.central.metrics.auc (each minus chance)"
    assert all(s.startswith("summary.json") for s in sources.values())


def test_a_tie_goes_to_secure_aggregation(tmp_path):
    folder = F.write_run(tmp_path / "run", F.run_summary(archs=ALL, levels={"fedavg-dp-secagg": 0.7549}))
    a = _answer(folder)
    assert a.recommended == "fedavg-dp-secagg"
    assert dict(a.not_recommended)["fedavg-dp"].endswith("a tie within 0.001: fedavg-dp-secagg is preferred, its coordinator sees only the sum of the updates")
    items = _items(a)
    assert "SecAgg+ keys and secret shares" in items["releases"] and "the masked model update" in items["releases"]


def test_over_budget_refused_and_at_chance_are_not_recommended(tmp_path):
    # An agency over its budget under fedavg-dp: secagg (within budget everywhere) is recommended.
    summary = F.run_summary(archs=ALL, levels={"fedavg-central-dp": 0.45})
    summary["architectures"]["fedavg-dp"]["per_agency"]["Mid Police"]["epsilon"] = 1.3
    folder = F.write_run(tmp_path / "over", summary)
    a = _answer(folder)
    assert a.recommended == "fedavg-dp-secagg"
    assert a.failed["fedavg-dp"] == "over budget: Mid Police spent ε 1.300 of its 1"
    assert a.failed["fedavg-central-dp"].startswith("no better than chance (AUC 0.448; chance is 0.5): with 4 agencies the agency-level noise")
    page = write_report(folder).read_text(encoding="utf-8")
    # Explained where shown: beside the utility figures and in the comparison table's verdict column.
    assert "Not usable at this budget: fedavg-dp — over budget: Mid Police" in page
    assert "<td>not recommended: no better than chance (AUC 0.448" in page

    # Both record-level architectures refused: nothing to recommend, and the headline says so.
    summary = F.run_summary(archs=("central", "fedavg", "fedavg-dp", "fedavg-dp-secagg"))
    for arch in ("fedavg-dp", "fedavg-dp-secagg"):
        summary["architectures"][arch]["status"] = "refused"
    a = _answer(F.write_run(tmp_path / "refused", summary))
    assert a.recommended is None and a.headline.startswith("No DP architecture can be recommended at this budget")
    assert a.failed["fedavg-dp"].startswith("refused: no agency released an update")


def test_without_dp_or_central_the_answer_says_what_it_cannot_give(tmp_path):
    a = _answer(F.write_run(tmp_path / "plain", F.run_summary(archs=("central", "local", "fedavg"))))
    assert a.recommended is None and "No differentially private architecture was run" in a.headline
    low = _items(_answer(F.write_run(tmp_path / "low", F.run_summary(archs=("central", "fedavg-dp"), levels={"fedavg-dp": 0.6}))))
    assert low["utility"].startswith("36% of pooling's AUC gain") and "little is kept at this budget" in low["utility"]
    a = _answer(F.write_run(tmp_path / "nocentral", F.run_summary(archs=("local", "fedavg-dp"), audit=False)))
    items = _items(a)
    assert a.recommended == "fedavg-dp" and "pooling (central) was not run" in items["utility"]
    assert items["attack"].startswith("not measured: these results hold no privacy audit")


def test_spent_reads_the_ledgers_and_falls_back_when_they_cannot_be_read(tmp_path):
    summary = F.run_summary()
    summary["ledgers"] = {name: {"epsilon_spent_to_date": 0.5, "epsilon_budget": 2.0} for name, *_ in F.AGENCIES}
    summary["ledgers"]["Mid Police"]["epsilon_spent_to_date"] = 0.7
    spent = _items(_answer(F.write_run(tmp_path / "ledgers", summary)))["spent"]
    assert spent.startswith("max over agencies ε 0.7000 per record (Mid Police, budget 2); per agency, spent/budget (each agency's ledger after the run")
    many = {f"Force {i:02d}": {"epsilon_spent_to_date": 0.5 + i / 100, "epsilon_budget": 1.0} for i in range(12)}
    spent = _items(_answer(F.write_run(tmp_path / "many", {**summary, "ledgers": many})))["spent"]  # a first screen, not a table
    assert "Force 11 0.6100/1; Force 10 0.6000/1; Force 09 0.5900/1; Force 08 0.5800/1; Force 07 0.5700/1; 7 more agencies, each ε ≤ 0.5700" in spent
    for name in summary["ledgers"]:  # unreadable ledgers: the architecture's own per-agency figures
        summary["ledgers"][name] = {"epsilon_spent_to_date": None, "epsilon_budget": None, "error": "cannot be read"}
    spent = _items(_answer(F.write_run(tmp_path / "unreadable", summary)))["spent"]
    assert spent.startswith("max over agencies ε 0.9900 per record (Tiny Police, budget 1); per agency, spent/budget (fedavg-dp's ledger figures)")


def test_hotspot_unit_is_the_area_month_and_says_what_one_incident_gets(tmp_path):
    summary = F.run_summary(task="hotspot")
    entry = summary["architectures"]["fedavg-dp"]
    entry.update(privacy_unit="area-month", neighbouring="replace-one")
    for i, data in enumerate(entry["per_agency"].values()):
        data["epsilon_per_incident"] = {"epsilon": 600.0 + i, "delta": 1e-5, "group_size": 24}
    items = _items(_answer(F.write_run(tmp_path / "hot", summary)))
    assert items["unit"].startswith("one area-month example, per agency, (ε, δ) = (1, 1e-05), replace-one neighbours: changing any one such unit")
    assert items["unit"].endswith("per incident record ε is up to 603, no meaningful guarantee for one incident")
    assert items["utility"].startswith("9") and "PAI gain over chance" in items["utility"] and "chance is 1" in items["utility"]


def test_sweep_answers_at_the_focus_budget_and_keeps_the_curve(tmp_path):
    folder = F.write_sweep(tmp_path / "sweep", eps_values=(0.5, 1.0, 4.0), seeds=(0, 1))
    a = _answer(folder)
    assert a.recommended == "fedavg-dp"
    assert a.headline.startswith("Recommended at ε = 1 per agency, δ = 1e-05 (one of the swept budgets 0.5, 1, 4): fedavg-dp")
    page = write_report(folder).read_text(encoding="utf-8")
    assert 'id="figure-privacy-utility"' in page and 'id="figure-utility-at-budget"' not in page
    assert "— (judged at ε = 1)" in page  # comparison rows at other budgets
    assert not (folder / "report" / "utility-at-budget.png").exists()


def test_page_promises(tmp_path):
    folder = F.write_run(tmp_path / "run", F.run_summary(archs=ALL))
    page = write_report(folder).read_text(encoding="utf-8")
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)
    # The answer comes before everything else, the glossary at the end explains the jargon.
    assert text.index('id="answer"') < text.index('id="run"') < text.index('id="reading"')
    for term in ("ε (epsilon)", "δ (delta)", "AUC", "PAI", "PEI", "DP-SGD", "Secure aggregation", "FedAvg", "Membership inference", "Canary audit"):
        assert re.search(f"<dt>[^<]*{re.escape(term)}", text), term
    assert ">None<" not in text and "None (" not in text and ">nan<" not in text
    assert text.count("Utility under attack") == 1
    for section in re.findall(r"<section id=\"[^\"]+\">(.*?)</section>", text):  # no heading repeats its section's
        h2 = re.search(r"<h2>([^<]+)</h2>", section)[1]
        assert h2 not in re.findall(r"<h3>([^<]+)</h3>", section), h2
    # One ε budget: bars, not a one-point curve, and the section says so.
    assert 'id="figure-utility-at-budget"' in text and "Utility at the configured budget" in text
    assert not (folder / "report" / "privacy-utility.png").exists()
    # Every drawn figure has a title, a one-line caption and its units.
    figures = re.findall(r'<figure id="figure-[^"]+">(.*?)</figure>', text)
    assert len(figures) >= 5
    for fig in figures:
        assert re.match(r"<h3>[^<]+</h3><img ", fig), fig[:200]
        assert re.search(r"<figcaption><strong>[^<]+</strong><span class=\"units\">Units: [^<]+</span>", fig), fig[:400]


def test_data_quality_and_warnings_are_in_the_report(tmp_path):
    summary = F.run_summary()
    for i, agency in enumerate(summary["agencies"]):
        agency["counts"].update(rows_no_outcome=10 * (i + 1), rows_no_location=0)
    summary["warnings"] = ["Tiny Police has 4 test records (task.min_test_records=50): its metrics rest on too few records to mean much"]
    page = write_report(F.write_run(tmp_path / "run", summary)).read_text(encoding="utf-8")
    assert "<dt>Data quality</dt><dd>of 61,600 records: 100 without an outcome (most: Big Constabulary, 40) (summary.json agencies[].counts)</dd>" in page
    assert "without a location" not in page  # a zero count is not news
    assert "<dt>Warnings (1)</dt><dd>Tiny Police has 4 test records" in page


# --- ε per person (issue 17) ---------------------------------------------------------------------

# An epsilon_by_unit block as experiments.person_figures writes it (max over agencies, δ = 1e-5).
PERSON_BLOCK = {
    "unit": "person",
    "record": {"epsilon": 9.06, "delta": 1e-5, "agency": "Mid Police"},
    "person_within_agency": {"epsilon": 3.99, "delta": 1e-5, "agency": "Big Constabulary"},
    "person_across_federation": {"epsilon": 5.93, "delta": 1e-5, "max_agencies": 2},
    "group_conversion_heaviest_person": {"k": 42, "epsilon": 380.5, "delta": 1.0, "agency": "Big Constabulary"},
}
RECORD_BLOCK = {
    "unit": "record",
    "record": {"epsilon": 0.99, "delta": 1e-5, "agency": "Tiny Police"},
    "person_within_agency": {"epsilon": 47.52, "delta": 1.0, "agency": "Big Constabulary"},
    "person_across_federation": {"epsilon": 91.2, "delta": 1.0, "max_agencies": 2},
    "group_conversion_heaviest_person": {"k": 48, "epsilon": 47.52, "delta": 1.0, "agency": "Big Constabulary"},
}


def _with_block(block: dict | None, unit: str = "record") -> dict:
    summary = F.run_summary(archs=ALL)
    for entry in summary["architectures"].values():
        if entry["privacy_unit"] == "record":
            entry["privacy_unit"] = unit
            if block is not None:
                entry["epsilon_by_unit"] = block
    return summary


def test_person_run_shows_both_person_epsilons_beside_the_record_one(tmp_path):
    a = _answer(F.write_run(tmp_path / "run", _with_block(PERSON_BLOCK, unit="person")))
    item = next(i for i in a.items if i.key == "person")
    assert item.text.startswith("person within one agency ε 3.990; person across the federation ε 5.930 (a person in up to 2 agencies); δ = 1e-05")
    assert "Per incident record ε 9.060" in item.text
    assert "group privacy" not in item.text  # the contrast belongs to record-level runs
    assert item.source == "summary.json architectures.fedavg-dp.epsilon_by_unit.person_within_agency.epsilon, .person_across_federation.epsilon, .record.epsilon, .record.delta"
    keys = [i.key for i in a.items]
    assert keys.index("unit") + 1 == keys.index("person")  # right under the privacy unit


def test_a_person_figure_without_a_bound_says_why_and_both_units_are_named(tmp_path):
    block = {**PERSON_BLOCK, "person_within_agency": {"epsilon": None, "delta": 1e-5}, "released_at_both_units": ["Mid Police"]}
    text = _items(_answer(F.write_run(tmp_path / "run", _with_block(block, unit="person"))))["person"]
    assert text.startswith("person within one agency ε unbounded (an agency also released at the record unit")
    assert text.endswith("Mid Police also released at the record unit: counted in every figure")


def test_record_run_shows_the_heaviest_persons_group_epsilon(tmp_path):
    a = _answer(F.write_run(tmp_path / "run", _with_block(RECORD_BLOCK)))
    text = _items(a)["person"]
    assert text.startswith("record-level DP: ε 0.9900 per incident record is not a person's guarantee")
    # 48 records at record ε 0.99: 47.52 at δ = 1 (k·e^((k-1)ε)·δ is far past 1): said in words.
    assert "A person with 48 records (the heaviest, Big Constabulary): ε ≈ 47.52 at δ = 1, i.e. no meaningful guarantee (group privacy)" in text
    assert "across the federation ε ≈ 91.20" in text and text.endswith("A person-level guarantee needs privacy.unit: person")
    assert ".group_conversion_heaviest_person.k" in next(i.source for i in a.items if i.key == "person")


def test_a_group_conversion_still_under_delta_one_names_its_delta(tmp_path):
    block = {**RECORD_BLOCK, "group_conversion_heaviest_person": {"k": 2, "epsilon": 1.98, "delta": 5.4e-5, "agency": "Tiny Police"}}
    text = _items(_answer(F.write_run(tmp_path / "run", _with_block(block))))["person"]
    assert "A person with 2 records (the heaviest, Tiny Police): ε ≈ 1.980 at δ = 5.4e-05 (group privacy)" in text


def test_without_person_figures_the_first_screen_says_so(tmp_path):
    text = _items(_answer(F.write_run(tmp_path / "run", _with_block(None))))["person"]
    assert text.startswith("not measured: no epsilon_by_unit") and "k·ε" in text


def test_an_area_month_unit_has_no_person_item(tmp_path):
    # Hotspot examples are area-months: the unit item gives ε per incident; no per-person line.
    a = _answer(F.write_run(tmp_path / "run", _with_block(None, unit="area-month")))
    assert a.recommended == "fedavg-dp" and "unit" in _items(a) and "person" not in _items(a)


def _unit_sweep(folder: Path, record: float, person: float) -> Path:
    """A sweep over privacy.unit: fedavg-dp at the record and the person unit, at the same ε."""
    cells = []
    for unit, level in (("record", record), ("person", person)):
        summary = F.run_summary(archs=("central", "fedavg-dp"), levels={"fedavg-dp": level})
        summary["architectures"]["fedavg-dp"]["privacy_unit"] = unit
        F.write_run(folder / "cells" / unit, summary)
        cells.append({"cell": unit, "run_dir": f"cells/{unit}", "values": {"privacy.unit": unit}, "status": "done"})
    (folder / "sweep.json").write_text(json.dumps({"swept_keys": ["privacy.unit"], "cells": cells}), encoding="utf-8")
    return folder


def test_a_person_unit_line_far_below_the_record_one_says_its_promise_is_stronger(tmp_path):
    a = _answer(_unit_sweep(tmp_path / "sweep", 0.78, 0.75))
    assert a.recommended == "fedavg-dp (privacy.unit=record)"
    why = dict(a.not_recommended)["fedavg-dp (privacy.unit=person)"]
    assert why.startswith("AUC 0.748, 0.030 below fedavg-dp (privacy.unit=record)'s 0.778") and "holds per person" in why


def test_spent_to_date_names_the_unit_its_ledger_counts(tmp_path):
    a = _answer(F.write_run(tmp_path / "run", _with_block(PERSON_BLOCK, unit="person")))
    assert " per person (" in _items(a)["spent"]


def test_a_person_unit_line_close_to_the_record_one_is_recommended(tmp_path):
    # Within UNIT_TIE the stronger promise wins, and the record line says what it would have given.
    a = _answer(_unit_sweep(tmp_path / "sweep", 0.755, 0.75))
    assert a.recommended == "fedavg-dp (privacy.unit=person)"
    why = dict(a.not_recommended)["fedavg-dp (privacy.unit=record)"]
    assert why.startswith("AUC 0.753, 0.005 above fedavg-dp (privacy.unit=person)'s 0.748, less than 0.01") and "per person" in why
