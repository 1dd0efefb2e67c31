"""experiments/report/hotspot_section.py: the hotspot section from a summary's hotspot_baselines
(figures, the naive-counts sentence per model, the DP-cost table, the feedback-loop note), and
nothing at all without it."""

from __future__ import annotations

import json

import numpy as np

from experiments.report import hotspot_section
from experiments.report.figure import Plot
from experiments.report.load import load
from policedata.synthetic import month_range
from tasks.hotspot import build_hotspot_split
from tasks.hotspot_baselines import evaluate_baselines
from tasks.hotspot_metrics import persistence_scores
from tests.test_tasks_hotspot import make_areas, records_from_counts

MONTHS = month_range("2023-01", 16)


def write_run(folder, block) -> None:
    folder.mkdir()
    summary = {"run_id": "r1", "task": "hotspot", "architectures": {"fedavg": {"metrics": {"pai": 2.0}, "per_agency": {}, "epsilon_max": None}}, "agencies": [{"name": "A", "n_test": 80}]}
    if block is not None:
        summary["hotspot_baselines"] = block
    (folder / "summary.json").write_text(json.dumps(summary))


def test_section_from_hotspot_baselines(tmp_path):
    rng = np.random.default_rng(3)
    counts = rng.poisson(np.exp(rng.normal(0, 1, 20))[:, None] * 2 * np.ones(len(MONTHS))).astype(np.int64)
    split = build_hotspot_split(records_from_counts(counts, MONTHS), make_areas(20), "2024-01", share=0.1, period=(MONTHS[0], MONTHS[-1]))
    block = evaluate_baselines({"A": split}, make_areas(20), models={"fedavg": {"A": persistence_scores(split)}}, replicates=100).as_dict()
    block = json.loads(json.dumps(block))
    block["grid"] = {**block, "models": [], "cells": "250 m grid squares"}  # the shape evaluate_grid gives
    write_run(tmp_path / "run", block)
    study = load(tmp_path / "run")
    figures = hotspot_section.plots(study)
    assert [f.name for f in figures] == ["hotspot-coverage-pooled", "hotspot-coverage-agencies"]
    assert all(isinstance(f, Plot) and f.png.startswith(b"\x89PNG") and f.units and f.caption for f in figures)
    page = hotspot_section.html(study, {f.name: f for f in figures}, lambda f: f"[{f.name}]")
    assert page.startswith('<section id="hotspot">')
    assert "[hotspot-coverage-pooled]" in page and "[hotspot-coverage-agencies]" in page
    # fedavg scores as naive-1m does, so its sentence must say it cannot be told apart (or name the reference).
    sentence = hotspot_section.model_sentences(block)[0]
    assert sentence.startswith("fedavg ") and "95% block-bootstrap interval" in sentence
    assert "Baselines on 250 m grid squares" in page
    assert 'id="table-hotspot-agencies"' in page and "<td>A</td>" in page
    assert "ε = ∞ (not private)" in page and "Feedback loops" in page and "street level" in page


def test_grid_not_computed_is_said(tmp_path):
    write_run(tmp_path / "run", {"curves": {"coverages": [0.05], "pooled": {}, "per_agency": {}}, "grid": {"cells": "250 m grid squares", "not_computed": "too many cells"}})
    page = hotspot_section.html(load(tmp_path / "run"), {}, lambda f: "")
    assert "not computed — too many cells" in page


def test_no_section_without_hotspot_baselines(tmp_path):
    write_run(tmp_path / "run", None)
    study = load(tmp_path / "run")
    assert hotspot_section.plots(study) == []
    assert hotspot_section.html(study, {}, lambda f: "") == ""
