"""The report's "Person-level privacy" section (experiments/report/person_section.py) on
hand-built run and sweep folders: every number it shows is the one summary.json holds (who pays
per agency, the AUC change person − record, the curve's points and the record unit's group ε),
and a run without the sweep says how to get the curve."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from experiments.report import person_section, views, write_report
from experiments.report.figure import Missing, Plot
from experiments.report.load import load
from tests.fixtures.report import report_fixtures as F

ARCHS = ("central", "fedavg-dp")
NAMES = [a[0] for a in F.AGENCIES]
# Per agency (smallest first): records, people, top-5% victims' share, repeat share, heaviest, dropped.
WHO = {
    "Tiny Police": (300, 280, 0.16, 0.38, 3, 0),
    "Small Constabulary": (1200, 1000, 0.23, 0.59, 10, 10),
    "Mid Police": (5000, 3800, 0.25, 0.59, 25, 158),
    "Big Constabulary": (40000, 30000, 0.31, 0.55, 48, 2400),
}


def _level(unit: str, eps: float) -> float:
    """fedavg-dp's level: the person unit costs 0.02 at ε 0.5, nothing from ε 2 on."""
    return 0.765 - 0.04 / (1 + eps) - (0.01 / eps if unit == "person" else 0.0)


def _summary(unit: str, eps: float) -> dict:
    summary = F.run_summary(archs=ARCHS, levels={"fedavg-dp": _level(unit, eps)}, budget=eps, audit=False)
    dp = summary["architectures"]["fedavg-dp"]
    dp["privacy_unit"] = unit
    per_agency = {}
    for name, (_, _, _, _, heaviest, _) in WHO.items():
        figures: dict = {"record": eps, "person_within_agency": eps if unit == "person" else heaviest * eps, "heaviest_person_records": heaviest}
        figures["group_conversion_heaviest_person"] = {"k": heaviest, "epsilon": heaviest * eps, "delta": 1.0 if heaviest > 3 else 3e-4}
        per_agency[name] = figures
    dp["epsilon_by_unit"] = {
        "unit": unit,
        "record": {"epsilon": eps, "delta": 1e-5},
        "person_within_agency": {"epsilon": eps if unit == "person" else 48 * eps, "delta": 1e-5 if unit == "person" else 1.0},
        "person_across_federation": {"epsilon": 1.5 * eps, "delta": 1e-5, "max_agencies": 2},
        "group_conversion_heaviest_person": {"k": 48, "epsilon": 48 * eps, "delta": 1.0, "agency": "Big Constabulary"},
        "per_agency": per_agency,
    }
    summary["persons"] = {
        "unit": unit,
        "max_records": 5,
        "top_share": 0.05,
        "note": "the harness's figures",
        "per_agency": {
            name: {"records": r, "people": p, "top_victim_share": t, "repeat_record_share": s, "heaviest_person_records": h, "dropped_by_cap": d if unit == "person" else None}
            for name, (r, p, t, s, h, d) in WHO.items()
        },
    }
    return summary


def _sweep(folder: Path, eps_values=(0.5, 1.0, 2.0), units=("record", "person")) -> Path:
    folder.mkdir(parents=True)
    cells = []
    for eps in eps_values:
        for unit in units:
            name = f"eps{eps:g}-{unit}"
            values = {"privacy.epsilon": eps, "privacy.unit": unit}
            F.write_run(folder / "cells" / name, _summary(unit, eps), budget=eps)
            cells.append({"cell": name, "run_dir": f"cells/{name}", "values": values, "status": "done"})
    spec = {"config_file": "configs/person-sweep.yaml", "swept_keys": ["privacy.epsilon", "privacy.unit"], "cells": cells}
    (folder / "sweep.json").write_text(json.dumps(spec), encoding="utf-8")
    return folder


def _weighted(unit: str, eps: float) -> float:
    return F._weighted(F._agency_values("fedavg-dp", _level(unit, eps)))


def test_curve_points_are_the_cells_auc_per_unit_and_the_group_epsilon(tmp_path):
    study = load(_sweep(tmp_path / "sweep"))
    points = person_section.curve_points(study).set_index(["unit", "eps_budget"])
    assert len(points) == 6
    for eps in (0.5, 1.0, 2.0):
        for unit in ("record", "person"):
            assert points.loc[(unit, eps), "headline"] == pytest.approx(_weighted(unit, eps))
        assert points.loc[("record", eps), "group_eps"] == pytest.approx(48 * eps)  # the record unit read per heaviest person
        assert points.loc[("person", eps), "group_eps"] != points.loc[("person", eps), "group_eps"]  # NaN: not a person-unit figure
    table = person_section.curve_table(study)
    first = table.rows[0]
    assert first[0] == "0.5" and first[1] == f"{_weighted('record', 0.5):.3f}" and first[2] == f"{_weighted('person', 0.5):.3f}"
    assert first[3] == f"{_weighted('person', 0.5) - _weighted('record', 0.5):+.3f}" and first[4] == "24.00 (k = 48)"


def test_curve_is_drawn_from_a_sweep_over_epsilon_and_unit(tmp_path):
    plot = person_section.curve(load(_sweep(tmp_path / "sweep")))
    assert isinstance(plot, Plot) and plot.png.startswith(b"\x89PNG")
    assert "group-privacy" in plot.alt and "epsilon_by_unit.group_conversion_heaviest_person" in plot.detail


@pytest.mark.parametrize("units, eps_values, says", [(("record",), (1.0,), "the record unit only and 1 ε budget"), (("record", "person"), (1.0,), "1 ε budget"), (("person",), (0.5, 1.0), "the person unit only")])
def test_without_both_units_and_budgets_the_section_says_how_to_get_the_curve(tmp_path, units, eps_values, says):
    plot = person_section.curve(load(_sweep(tmp_path / "sweep", eps_values=eps_values, units=units)))
    assert isinstance(plot, Missing)
    assert says in plot.reason and "peel sweep configs/person-sweep.yaml" in plot.reason


def test_who_pays_table_reads_the_persons_block_and_the_auc_change(tmp_path):
    study = load(_sweep(tmp_path / "sweep"))
    focus = views.focus(study)
    assert focus.eps == 1.0
    table = person_section.who_pays(study, focus)
    header = table.header
    rows = {r[0]: dict(zip(header, r, strict=True)) for r in table.rows}
    assert [r[0] for r in table.rows] == NAMES  # smallest first
    big = rows["Big Constabulary"]
    assert big["training records"] == "40,000" and big["people (any role)"] == "30,000"
    assert big["share of victim records: top 5% of victims"] == "31%" and big["records naming a repeat person"] == "55%"
    assert big["heaviest person: records"] == "48"
    assert big["record unit: heaviest person's ε (group privacy)"] == "48.00 at δ = 1 (none)"
    assert rows["Tiny Police"]["record unit: heaviest person's ε (group privacy)"] == "3.000 at δ = 0.0003"
    assert big["person unit: records dropped by the cap (5 per person)"] == "2,400 (6.0%)"
    assert big["person unit: ε per person"] == "1.000"
    change = F._agency_values("fedavg-dp", _level("person", 1.0))["Big Constabulary"] - F._agency_values("fedavg-dp", _level("record", 1.0))["Big Constabulary"]
    assert big["AUC change, person − record"] == f"{change:+.3f}" == "-0.010"
    assert "cells/eps1-person/summary.json (person unit)" in table.note and "cells/eps1-record/summary.json (record unit)" in table.note
    sentences = person_section.who_pays_sentences(study, focus)
    assert sentences[0].startswith("Repeat victimisation is most concentrated in Big Constabulary: its most-victimised 5% of victims are in 31%")
    assert "(Tiny Police: 16%)" in sentences[0] and "-0.010 at most" in sentences[1]


def test_a_run_report_has_the_section_and_the_command_for_the_curve(tmp_path):
    page = write_report(F.write_run(tmp_path / "run", _summary("record", 1.0))).read_text(encoding="utf-8")
    section = re.search(r'<section id="person">(.*?)</section>', page, re.S)[1]
    assert "<h2>Person-level privacy</h2>" in section and 'id="table-who-pays"' in section
    assert 'id="missing-person-utility"' in section and "peel sweep configs/person-sweep.yaml" in section
    assert "person unit: records dropped" not in section  # a record-unit run shows no cap column
    assert page.index('id="epsilon"') < page.index('id="person"') < page.index('id="movement"')


def test_the_sweep_report_saves_the_curve_beside_it(tmp_path):
    folder = _sweep(tmp_path / "sweep")
    page = write_report(folder).read_text(encoding="utf-8")
    assert 'id="figure-person-utility"' in page and 'id="table-person-curve"' in page
    assert (folder / "report" / "person-utility.png").read_bytes().startswith(b"\x89PNG")


def test_without_persons_block_the_table_says_not_measured(tmp_path):
    summary = _summary("record", 1.0)
    del summary["persons"]
    study = load(F.write_run(tmp_path / "run", copy.deepcopy(summary)))
    table = person_section.who_pays(study, views.focus(study))
    assert not table.rows and table.note.startswith("not measured: summary.json has no persons block")


def test_hotspot_reports_have_no_person_section(tmp_path):
    page = write_report(F.write_run(tmp_path / "run", F.run_summary(task="hotspot"))).read_text(encoding="utf-8")
    assert 'id="person"' not in page
