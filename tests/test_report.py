"""The HTML report (`experiments.report`) on fixture run and sweep folders: every section is
there, every image is an embedded PNG also saved on disk, the reading follows the numbers, and
missing optional data is stated as "not measured"."""

from __future__ import annotations

import base64
import io
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from experiments.report import ReportError, fmt, reading, views, write_report
from experiments.report.html import SECTIONS
from experiments.report.load import load
from tests.fixtures.report import report_fixtures as F


class _Page(HTMLParser):
    """Section ids, images (src, alt, figure id) and the reading's sentences of a report."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.images: list[dict] = []
        self.scripts = 0
        self.links: list[str] = []
        self.sentences: list[str] = []
        self._figure = None
        self._in_reading = False
        self._li: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "figure":
            self._figure = a.get("id")
        if tag == "img":
            self.images.append({**a, "figure": self._figure})
        if tag == "script":
            self.scripts += 1
        if tag in ("a", "link") and "href" in a:
            self.links.append(a["href"])
        if tag == "section":
            self._in_reading = a.get("id") == "reading"
        if tag == "li" and self._in_reading:
            self._li = []

    def handle_endtag(self, tag):
        if tag == "li" and self._li is not None:
            self.sentences.append("".join(self._li))
            self._li = None

    def handle_data(self, data):
        if self._li is not None:
            self._li.append(data)


def _parse(path: Path) -> tuple[str, _Page]:
    text = path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    return text, page


def _check_page(html_path: Path) -> _Page:
    """Assertions every report must pass; returns the parsed page."""
    text, page = _parse(html_path)
    for key, _ in SECTIONS:
        assert key in page.ids, f"section {key} missing"
    assert page.scripts == 0 and "<script" not in text.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text), "the report must not load anything from the network"
    assert page.images, "no figure drawn"
    on_disk = {p.name for p in html_path.parent.glob("*.png")}
    embedded = set()
    for img in page.images:
        prefix = "data:image/png;base64,"
        assert img["src"].startswith(prefix), img["src"][:40]
        data = base64.b64decode(img["src"][len(prefix):], validate=True)
        with Image.open(io.BytesIO(data)) as im:
            im.verify()  # raises on a truncated or corrupt PNG
        with Image.open(io.BytesIO(data)) as im:
            assert im.format == "PNG" and im.size == (int(img["width"]), int(img["height"]))
        name = img["figure"].removeprefix("figure-") + ".png"
        assert (html_path.parent / name).read_bytes() == data, f"{name} on disk differs from the embedded image"
        assert img["alt"]
        embedded.add(name)
    assert embedded == on_disk
    return page


def _sentences(folder: Path) -> list[str]:
    study = load(folder)
    return reading.reading(study, views.focus(study))


def _one(sentences: list[str], start: str) -> str:
    found = [s for s in sentences if s.startswith(start)]
    assert len(found) == 1, (start, sentences)
    return found[0]


# --- whole reports --------------------------------------------------------------------------------


def test_run_report_has_every_section_and_embedded_pngs(tmp_path):
    folder = F.write_run(tmp_path / "run", F.run_summary())
    path = write_report(folder)
    assert path == folder / "report" / "report.html"
    page = _check_page(path)
    assert {i["figure"] for i in page.images} >= {"figure-utility-at-budget", "figure-per-agency-utility", "figure-epsilon-per-agency", "figure-data-movement", "figure-fairness-agencies"}
    text = path.read_text(encoding="utf-8")
    # Header traces the numbers to the run and its config; the footer lists the files.
    for needle in ("20260101-120000-abc123", "configs/default.yaml", "summary.json", "config.yaml", "Tiny Police", "2026-01-01 12:00:00"):
        assert needle in text
    # Outcome task: no quintile flags, said in words.
    assert "not measured: this task flags no areas" in text
    assert any(s.startswith("Federated learning with record-level DP at ε = 1 (fedavg-dp)") for s in page.sentences)


def test_report_is_rebuilt_in_place_and_stale_figures_removed(tmp_path):
    folder = F.write_run(tmp_path / "run", F.run_summary())
    first = write_report(folder)
    png = (folder / "report" / "utility-at-budget.png").read_bytes()
    assert write_report(folder) == first
    assert (folder / "report" / "utility-at-budget.png").read_bytes() == png, "same numbers, same PNG bytes"
    F.write_run(folder, F.run_summary(archs=("central", "local", "fedavg")))
    text = write_report(folder).read_text(encoding="utf-8")
    assert not (folder / "report" / "epsilon-per-agency.png").exists()
    assert "not measured: no differentially private architecture was run" in text
    assert "No architecture here uses differential privacy" in text
    assert not list((folder / "report").glob(".*tmp")), "temporary files left behind"
    _check_page(first)


def test_sweep_report(tmp_path):
    folder = F.write_sweep(tmp_path / "sweep", csv_only=("eps2-seed1",), unfinished=("eps8-seed2",))
    page = _check_page(write_report(folder))
    text = (folder / "report" / "report.html").read_text(encoding="utf-8")
    assert "without results: eps8-seed2 (unfinished)" in text
    assert "Points are means over 3 seeds; bars span the lowest to the highest seed (min–max)" in text
    assert re.search(r"<td>eps2-seed1</td>.*?<code>sweep.csv</code>", text), "a cell read from sweep.csv must say so"
    # One comparison row per ε budget of fedavg-dp, plus the three references.
    table = text[text.index('id="table-comparison"') :].split("</table>")[0]
    assert table.count("<tr>") == 1 + 5 + 3
    trend = _one(page.sentences, "As the ε budget grows, fedavg-dp's AUC rose")
    assert "ε = 0.5" in trend and "ε = 8" in trend and "below fedavg without DP" in trend
    assert any("budget check covers every cell" in s for s in page.sentences)


def test_sweep_cell_from_csv_matches_its_summary(tmp_path):
    """A cell read from sweep.csv gives the same overall numbers as its summary.json."""
    a = F.write_sweep(tmp_path / "a", eps_values=(1.0,), seeds=(0,))
    b = F.write_sweep(tmp_path / "b", eps_values=(1.0,), seeds=(0,), csv_only=("eps1-seed0",))
    cols = ["line", "headline", "epsilon_max", "records_moved", "update_bytes", "ceiling"]
    left, right = load(a).archs[cols], load(b).archs[cols]
    pd.testing.assert_frame_equal(left.reset_index(drop=True), right.reset_index(drop=True), check_exact=False, rtol=1e-9)


def test_hotspot_sweep_shows_quintiles_and_pai(tmp_path):
    folder = F.write_sweep(tmp_path / "hot", task="hotspot", seeds=(0, 1), archs=("central", "local", "fedavg", "fedavg-dp", "fedavg-central-dp"))
    page = _check_page(write_report(folder))
    assert "figure-fairness-quintiles" in {i["figure"] for i in page.images}
    assert _one(page.sentences, "Federated learning with record-level DP at ε = 1 (fedavg-dp)").find("PAI gain over chance") > 0
    quintiles = _one(page.sentences, "Under fedavg-dp, deprivation quintile 5")
    assert "larger than under fedavg" in quintiles and "DP makes the flags less even" in quintiles
    # Agency-level DP has one ε for the federation, checked against its budget.
    assert any("stayed within its budget" in s for s in page.sentences)


def test_missing_optional_data_is_stated_not_measured(tmp_path):
    summary = F.run_summary(audit=False, bayes=False, fairness=False)
    # An older summary.json: none of the keys added later.
    del summary["headline_metric"], summary["flower_startup_s"], summary["privacy"]
    for entry in summary["architectures"].values():
        entry.pop("privacy_unit"), entry.pop("accountant")
        for agency in entry["per_agency"].values():
            agency.pop("records_moved")
    folder = F.write_run(tmp_path / "old", summary)
    (folder / "metrics.jsonl").unlink()
    text = write_report(folder).read_text(encoding="utf-8")
    page = _check_page(folder / "report" / "report.html")
    assert "Membership-inference attack: not measured (no audit in these results)." in page.sentences
    assert "Best achievable score: not measured (these records carry no ground truth)." in page.sentences
    assert "Ceiling (ground truth): not measured" in text
    assert "not measured: summary.json has no privacy notes." in text
    assert "central: not recorded" in text  # per-agency raw records of central
    assert "per incident record" in text  # fedavg-dp's unit inferred for an older summary
    # The budget still comes from config.yaml.
    assert "Every agency's ε spent to date (its own ledger, all runs) stayed within its budget (max 0.9900 ≤ 1)." in page.sentences


def test_not_a_results_folder_is_one_clear_line(tmp_path):
    with pytest.raises(ReportError, match=r"neither summary.json .* nor sweep.json") as err:
        write_report(tmp_path)
    assert "\n" not in str(err.value) and str(tmp_path) in str(err.value)
    (tmp_path / "summary.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ReportError, match="summary.json: cannot be read as JSON"):
        write_report(tmp_path)
    with pytest.raises(ReportError, match="no such folder"):
        write_report(tmp_path / "absent")


# --- the reading follows the numbers --------------------------------------------------------------


def test_reading_flips_when_dp_beats_or_trails_pooling(tmp_path):
    trails = _sentences(F.write_run(tmp_path / "a", F.run_summary()))
    s = _one(trails, "Federated learning with record-level DP at ε = 1 (fedavg-dp)")
    assert "kept" in s and "% of the AUC gain over chance" in s
    beats = _sentences(F.write_run(tmp_path / "b", F.run_summary(levels={"fedavg-dp": 0.80})))
    assert "beat pooling all records" in _one(beats, "Federated learning with record-level DP at ε = 1 (fedavg-dp)")
    chance = _sentences(F.write_run(tmp_path / "c", F.run_summary(levels={"fedavg-dp": 0.45})))
    assert "did no better than chance" in _one(chance, "Federated learning with record-level DP at ε = 1 (fedavg-dp)")
    assert "so at those budgets the DP noise destroyed what the model learnt" in _one(chance, "No better than chance")
    # When the federation without DP fails too, the DP noise is not blamed.
    both = _sentences(F.write_run(tmp_path / "d", F.run_summary(levels={"fedavg-dp": 0.45, "fedavg": 0.46})))
    assert "DP noise" not in _one(both, "No better than chance")


def test_reading_flips_on_budget_overrun_and_refusals(tmp_path):
    ok = _sentences(F.write_run(tmp_path / "ok", F.run_summary()))
    assert "Every agency's ε spent to date (its own ledger, all runs) stayed within its budget (max 0.9900 ≤ 1)." in ok
    spent = {name: 0.5 for name, _, _, _ in F.AGENCIES} | {"Mid Police": 1.04}
    errors = {"Tiny Police": [{"round": 9, "reason": "budget would be exceeded"}]}
    over = _sentences(F.write_run(tmp_path / "over", F.run_summary(spent=spent, errors=errors)))
    text = " ".join(over)
    assert "Budget exceeded: Mid Police under fedavg-dp (ε 1.040 > 1)" in text
    assert "stayed within its budget" not in text
    assert "Tiny Police under fedavg-dp (1 round; first round 9: budget would be exceeded)" in text


def test_reading_names_an_agency_that_never_answered(tmp_path):
    summary = F.run_summary()
    tiny = summary["architectures"]["fedavg-dp"]["per_agency"]["Tiny Police"]
    tiny.update(metrics=None, epsilon=None, errors=[{"round": 1, "reason": "timeout"}])
    folder = F.write_run(tmp_path / "run", summary)
    sentences = _sentences(folder)
    text = " ".join(sentences)
    assert "Every agency that recorded an ε stayed within its budget (max 0.9800 ≤ 1)." in text
    assert "1 agency recorded no ε (Tiny Police): its spend is not measured." in text
    # The smallest agency is still Tiny Police, whose gain cannot be measured: never another agency.
    assert "the smallest agency (Tiny Police, 300 training records) has no score under both" in _one(sentences, "Under fedavg-dp,")
    _check_page(write_report(folder))


def test_reading_flips_when_attack_beats_the_bound(tmp_path):
    within = _sentences(F.write_run(tmp_path / "a", F.run_summary()))
    assert "within the 0.620 its claimed ε permits" in _one(within, "The membership attack on fedavg-dp")
    beaten = _sentences(F.write_run(tmp_path / "b", F.run_summary(mia={"fedavg-dp": 0.70})))
    s = _one(beaten, "The membership attack on fedavg-dp")
    assert "above the 0.620 its claimed ε permits" in s and "contradicts" in s


def test_reading_flips_who_gains_from_collaboration(tmp_path):
    gains = _sentences(F.write_run(tmp_path / "a", F.run_summary()))
    assert "the smallest agency (Tiny Police, 300 training records) gained most" in _one(gains, "Under fedavg-dp,")
    # fedavg-dp far below local: nobody gains.
    loses = _sentences(F.write_run(tmp_path / "b", F.run_summary(levels={"fedavg-dp": 0.60})))
    assert "no agency gained from collaborating" in _one(loses, "Under fedavg-dp,")


def test_reading_flips_the_trend_over_epsilon(tmp_path):
    rising = _sentences(F.write_sweep(tmp_path / "up", seeds=(0,)))
    assert any(s.startswith("As the ε budget grows, fedavg-dp's AUC rose") for s in rising)
    falling = _sentences(F.write_sweep(tmp_path / "down", seeds=(0,), level=lambda eps, seed: 0.76 - 0.01 * eps))
    assert any(s.startswith("As the ε budget grows, fedavg-dp's AUC fell") for s in falling)
    bumpy = _sentences(F.write_sweep(tmp_path / "bumpy", seeds=(0,), level=lambda eps, seed: 0.70 + (0.02 if eps == 1.0 else 0.0) + 0.005 * eps))
    assert any("rose" in s and "though not at every step" in s for s in bumpy)


# --- sentence functions on plain numbers ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "central", "expected"),
    [
        (0.712, 0.721, "kept 95% of the AUC gain"),  # (0.212 / 0.221) = 95.9%: floored
        (0.7204, 0.721, "kept 99% of the AUC gain"),  # 99.7%: never "100%" below pooling
        (0.72051, 0.721, "matched pooling all records in one place to three decimals"),
        (0.721, 0.721, "matched pooling"),
        (0.730, 0.721, "beat pooling"),
        (0.49, 0.721, "did no better than chance"),
        (0.45, 0.49, "Pooling all records did no better than chance"),
        (math.nan, 0.721, "AUC not measured"),
        (0.70, math.nan, "pooling all records was not run"),
    ],
)
def test_utility_sentence(value, central, expected):
    assert expected in reading.utility_sentence("AUC", 0.5, "fedavg-dp", "with record-level DP at ε = 1", value, central)


def test_trend_and_spread_sentences_on_numbers():
    assert "stayed level" in reading.trend_sentence("AUC", "x", [(0.5, 0.7001), (8, 0.7003)], None, None)
    assert "reaching the level of fedavg" in reading.trend_sentence("AUC", "x", [(0.5, 0.70), (8, 0.75)], "fedavg", 0.7502)
    assert "above fedavg" in reading.trend_sentence("AUC", "x", [(0.5, 0.70), (8, 0.76)], "fedavg", 0.75)
    assert reading.trend_sentence("AUC", "x", [(1, 0.7)], None, None) is None
    spreads = pd.DataFrame(
        [
            {"line": "fedavg", "min": 0.70, "max": 0.75, "range": 0.05, "worst": "A", "is_dp": False},
            {"line": "fedavg-dp", "min": 0.66, "max": 0.75, "range": 0.09, "worst": "A", "is_dp": True},
        ]
    )
    assert "wider than fedavg's 0.050, and its worst agency scores lower (0.660 vs 0.700 under fedavg): here DP widens the gap at the bottom" in reading.spread_sentence("AUC", spreads, "fedavg")
    spreads.loc[1, ["min", "max", "range"]] = [0.70, 0.79, 0.09]  # wider because the best agency rose
    assert "though its worst agency scores no lower" in reading.spread_sentence("AUC", spreads, "fedavg")
    spreads.loc[1, ["min", "max", "range"]] = [0.72, 0.75, 0.03]
    assert "narrower than fedavg's 0.050" in reading.spread_sentence("AUC", spreads, "fedavg")


def test_worse_sentence_names_the_budgets():
    s = reading.worse_sentence("the spread", "fedavg-dp", [(0.5, 0.03), (1, 0.02), (8, 0.012)], "fedavg", 0.012)
    assert s.endswith("wider at ε = 0.5 and 1; not at ε = 8.")
    assert "no wider at any ε budget" in reading.worse_sentence("the spread", "x", [(0.5, 0.01), (8, 0.0124)], "fedavg", 0.012)
    gap = reading.worse_sentence("the gap", "x", [(1, 0.08), (2, 0.07)], "fedavg", 0.02, scale=100, unit=" points", word="larger")
    assert "(2.0 points): larger at every ε budget (ε = 1 and 2)" in gap


def test_epsilon_is_never_printed_below_its_value():
    for value in (0.99944, 0.5, 1.0, 1.00001, 3.14159, 12.3456, 0.1 + 0.2):
        assert float(fmt.eps(value)) >= value - 1e-9, value
    assert fmt.eps(0.99944) == "0.9995" and fmt.eps(1.00001) == "1.001" and fmt.eps(0.5) == "0.5000"


def test_module_entry_point_errors_in_one_line(tmp_path, capsys):
    from experiments.report.__main__ import main

    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("peel: ") and err.count("\n") == 1 and "neither summary.json" in err
    assert main([]) == 2
