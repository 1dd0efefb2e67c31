"""The report page: one self-contained HTML document (inline CSS, images as data URIs, no script).

A Content-Security-Policy meta tag forbids every network fetch and every script, so the page
provably shows only what is in the file."""

from __future__ import annotations

import base64
import re
import struct
from collections.abc import Sequence
from datetime import datetime
from html import escape

from experiments.report import fmt, glossary, hotspot_section, person_section, reference_section, views
from experiments.report.answer import Answer
from experiments.report.load import Study
from experiments.report.plots import Missing, Plot
from experiments.report.tables import Table

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 2rem auto; max-width: 72rem; padding: 0 1rem; color: #1b1b1b; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #ccc; padding-bottom: 0.2rem; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 0.15rem 1rem; font-size: 0.92rem; }
dl.meta dt { font-weight: 600; color: #444; } dl.meta dd { margin: 0; }
ul.reading li { margin-bottom: 0.45rem; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.6rem 0; display: block; overflow-x: auto; }
th, td { border: 1px solid #d0d0d0; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f2f2f2; } tr.highlight td { font-weight: 600; background: #fff4f0; }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption, p.note { font-size: 0.85rem; color: #444; } p.file { font-size: 0.8rem; color: #666; margin: 0.2rem 0; }
p.missing { font-style: italic; color: #8a4b00; }
code { font-size: 0.85em; background: #f5f5f5; padding: 0 0.2em; }
header h1 { margin: 0 0 0.4rem; }
section#answer { border: 2px solid #2c5d8a; border-radius: 6px; padding: 0.3rem 1rem 0.6rem; background: #f5f9fc; }
section#answer h2 { margin-top: 0.3rem; border-bottom: none; }
p.verdict { font-size: 1.12rem; font-weight: 600; margin: 0 0 0.5rem; }
dl.answer { display: grid; grid-template-columns: 12rem 1fr; gap: 0.3rem 1rem; font-size: 0.9rem; margin: 0; }
dl.answer dt { font-weight: 600; color: #2c3e50; } dl.answer dd { margin: 0; }
span.src { display: block; font-size: 0.72rem; color: #6b6b6b; }
ul.why-not { margin: 0; padding-left: 1.1rem; } ul.why-not li { margin: 0; }
p.fail { color: #8a1f11; }
figure h3 { font-size: 1rem; margin: 0 0 0.3rem; } figcaption span.units, figcaption span.detail { display: block; }
dl.glossary dt { font-weight: 600; margin-top: 0.4rem; } dl.glossary dd { margin: 0 0 0 1.2rem; font-size: 0.92rem; }
"""
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
SECTIONS = (
    ("answer", "The answer"),
    ("run", "This run"),
    ("reading", "What the numbers say"),
    ("comparison", "Architectures side by side"),
    ("privacy-utility", "Privacy against utility"),
    ("per-agency", "Per agency: alone or together"),
    ("epsilon", "Privacy budget spent per agency"),
    ("movement", "What left each agency"),
    ("fairness", "Fairness"),
    ("poisoning", "Utility under attack"),
    ("privacy-notes", "What the privacy figures cover"),
    ("sources", "Where each number comes from"),
    ("glossary", "Glossary"),
)
# What a table cell says when its value is absent (never "None" or "nan").
ABSENT = "— (not recorded)"


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    return struct.unpack(">II", data[16:24])


def _run_date(study_id: str) -> str:
    m = re.match(r"(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})", study_id)
    return f"{m[1]}-{m[2]}-{m[3]} {m[4]}:{m[5]}:{m[6]} (from the id)" if m else "not recorded"


def _table(t: Table) -> str:
    if not t.rows:
        return f'<p class="missing">{escape(t.note or fmt.NOT_MEASURED)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in t.header)
    marked = ' class="highlight"'
    body = "".join(
        f"<tr{marked if i in t.highlight else ''}>" + "".join(f"<td>{escape(_cell(c))}</td>" for c in row) + "</tr>"
        for i, row in enumerate(t.rows)
    )
    note = f'<p class="note">{escape(t.note)}</p>' if t.note else ""
    return f'<table id="table-{escape(t.name)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}'


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and value != value) or str(value) in ("None", "nan"):
        return ABSENT
    return str(value)


def _figure(p: Plot | Missing) -> str:
    if isinstance(p, Missing):
        return f'<h3>{escape(p.title)}</h3><p class="missing" id="missing-{escape(p.name)}">{escape(p.reason)}</p>'
    width, height = png_size(p.png)
    data = base64.b64encode(p.png).decode("ascii")
    units = f'<span class="units">Units: {escape(p.units)}</span>' if p.units else ""
    detail = f'<span class="detail">{escape(p.detail)}</span>' if p.detail else ""
    return (
        f'<figure id="figure-{escape(p.name)}"><h3>{escape(p.title)}</h3><img src="data:image/png;base64,{data}" alt="{escape(p.alt)}" width="{width}" height="{height}">'
        f"<figcaption><strong>{escape(p.caption)}</strong>{units}{detail}</figcaption>"
        f'<p class="file">Also saved as <code>{escape(p.name)}.png</code> beside this report.</p></figure>'
    )


def _drawn(*plots: Plot | Missing) -> str:
    """The figures that were drawn; when none was, the first one's reason (one line, not one per figure)."""
    drawn = [p for p in plots if isinstance(p, Plot)]
    return "".join(_figure(p) for p in drawn) if drawn else _figure(plots[0])


def _answer(a: Answer) -> str:
    """The first screen: the recommendation, then one line per question, each with its source."""
    rows = "".join(f'<dt>{escape(i.label)}</dt><dd id="answer-{escape(i.key)}">{escape(i.text)}<span class="src">{escape(i.source)}</span></dd>' for i in a.items)
    if a.not_recommended:
        others = "".join(f"<li><strong>{escape(line)}</strong>: {escape(why)}</li>" for line, why in a.not_recommended)
        rows += f'<dt>Not recommended</dt><dd id="answer-others"><ul class="why-not">{others}</ul><span class="src">the same numbers; the table below gives every figure</span></dd>'
    return f'<p class="verdict" id="answer-recommendation">{escape(a.headline)}</p><dl class="answer">{rows}</dl>'


def _failures(a: Answer | None) -> str:
    """Architectures that fail at the configured budget, explained where their figures are shown."""
    if a is None or not a.failed:
        return ""
    return '<p class="note fail">Not usable at this budget: ' + "; ".join(f"{escape(line)} — {escape(why)}" for line, why in a.failed.items()) + ".</p>"


def _section(key: str, body: str, title: str | None = None) -> str:
    title = title or dict(SECTIONS)[key]
    return f'<section id="{key}"><h2>{escape(title)}</h2>{body}</section>'


def _header(study: Study, focus: views.Focus, generated: datetime) -> str:
    first = study.cells[0].summary or {}
    agencies = [a for a in first.get("agencies") or [] if isinstance(a, dict)]
    agency_text = ", ".join(f"{a.get('name')} ({fmt.count(a.get('n_train'))} train / {fmt.count(a.get('n_test'))} test)" for a in sorted(agencies, key=lambda a: a.get("n_train") or 0))
    if study.kind == "sweep" and "data.agencies" in study.swept_keys:
        agency_text = "varies by cell (data.agencies is swept); first cell: " + agency_text
    kind = "Run" if study.kind == "run" else "Sweep"
    items = [
        (f"{kind} id", study.study_id),
        ("Folder", str(study.folder.resolve())),
        ("Config file", study.config_file or "not recorded"),
        ("Run started", _run_date(study.study_id)),
        ("Report written", generated.strftime("%Y-%m-%d %H:%M:%S")),
        ("Task", f"{study.task} (headline metric: {study.headline_label})"),
        (f"Agencies ({len(agencies)})" if study.kind == "run" else "Agencies", agency_text or "not recorded"),
    ]
    data = first.get("data") if isinstance(first.get("data"), dict) else {}
    set_aside = data.get("set_aside") if isinstance(data.get("set_aside"), dict) else {}
    if set_aside:  # rows whose agency could not be derived (data.agency.unmatched: drop)
        why = {"empty": "the agency column is empty", "no_match": "the agency column does not match data.agency.pattern"}
        items.append(("Records set aside", "; ".join(f"{fmt.count(n)}: {why.get(str(r), str(r))}" for r, n in set_aside.items()) + " (not in any agency's data)"))
    quality = _data_quality(agencies)
    if quality:
        items.append(("Data quality", quality))
    warnings = [str(w) for w in first.get("warnings") or []]
    if warnings:
        items.append((f"Warnings ({len(warnings)})", " · ".join(warnings)))
    if study.kind == "sweep":
        items.append(("Swept keys", ", ".join(study.swept_keys) or "none"))
        items.append(("Cells", f"{len(study.cells)} with results" + (f"; without results: {', '.join(study.missing)}" if study.missing else "")))
        if focus.describe(study):
            items.append(("Per-agency figures show", focus.describe(study)))
    rows = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items)
    return f"<dl class=\"meta\">{rows}</dl>"


# summary.json agencies[].counts keys, in words (counted by the loader and the task's features).
COUNT_WORDS = {
    "rows_no_outcome": "without an outcome",
    "rows_no_location": "without a location",
    "rows_unknown_area": "in no known area",
    "rows_unknown_category": "with a category outside the declared list",
    "rows_outside_region": "with coordinates outside the declared region",
    "rows_outside_period": "outside the data period",
}


def _data_quality(agencies: list[dict]) -> str:
    """The records' data-quality counts summed over agencies, with the agency that has most."""
    counts: list[dict] = [a["counts"] for a in agencies if isinstance(a.get("counts"), dict)]
    total = sum(int(c.get("rows_total") or 0) for c in counts)
    parts = []
    for key, words in COUNT_WORDS.items():
        per = {str(a.get("name")): int(a["counts"].get(key) or 0) for a in agencies if isinstance(a.get("counts"), dict)}
        n = sum(per.values())
        if n:
            most = max(per, key=lambda name: per[name])
            parts.append(f"{fmt.count(n)} {words} (most: {most}, {fmt.count(per[most])})")
    if not parts:
        return ""
    return f"of {fmt.count(total)} records: " + "; ".join(parts) + " (summary.json agencies[].counts)"


def _title(study: Study) -> str:
    kind = "run" if study.kind == "run" else "sweep"
    return f"<header><h1>{escape(f'Peel report: {study.task} task, {kind} {study.study_id}')}</h1></header>"


def _privacy_notes(study: Study) -> str:
    notes = study.privacy_notes
    if not notes:
        return f'<p class="missing">{fmt.NOT_MEASURED}: summary.json has no privacy notes.</p>'
    return "<dl class=\"meta\">" + "".join(f"<dt>{escape(str(k))}</dt><dd>{escape(_cell(v))}</dd>" for k, v in notes.items()) + "</dl>"


def _sources(study: Study, plots: Sequence[Plot | Missing]) -> str:
    items = "".join(f"<li><code>{escape(f)}</code>: {escape(what)}</li>" for f, what in study.sources)
    text = f"<p>All paths are relative to <code>{escape(str(study.folder.resolve()))}</code> unless absolute.</p><ul>{items}</ul>"
    if study.kind == "sweep":
        cells = "".join(
            f"<tr><td>{escape(c.name)}</td><td>{escape(', '.join(f'{k}={v}' for k, v in c.values.items()))}</td><td>{escape(c.status)}</td><td><code>{escape(c.source)}</code></td></tr>"
            for c in study.cells
        )
        text += f"<table id=\"table-cells\"><thead><tr><th>cell</th><th>values</th><th>status</th><th>numbers from</th></tr></thead><tbody>{cells}</tbody></table>"
    drawn = [p.name for p in plots if isinstance(p, Plot)]
    if drawn:
        text += "<p>Figures saved beside this report: " + ", ".join(f"<code>{escape(n)}.png</code>" for n in drawn) + ".</p>"
    return text


def _glossary() -> str:
    return '<dl class="glossary">' + "".join(f"<dt>{escape(term)}</dt><dd>{escape(text)}</dd>" for term, text in glossary.TERMS) + "</dl>"


def render(
    study: Study,
    focus: views.Focus,
    sentences: Sequence[str],
    tables: dict[str, Table],
    plots: Sequence[Plot | Missing],
    generated: datetime,
    answer: Answer | None = None,
) -> str:
    by_name = {p.name: p for p in plots}
    curve, bars = by_name["privacy-utility"], by_name.get("utility-at-budget")
    one_budget = isinstance(curve, Missing) and isinstance(bars, Plot)
    terms = '<p class="note">Terms (ε, δ, AUC, DP-SGD, secure aggregation, ...) are explained in the <a href="#glossary">glossary</a> at the end; the details follow.</p>'
    body = [
        _title(study),
        _section("answer", _answer(answer) + terms) if answer is not None else "",
        _section("run", _header(study, focus, generated)),
        _section("reading", "<ul class=\"reading\">" + "".join(f"<li>{escape(s)}</li>" for s in sentences) + "</ul>"),
        _section("comparison", _table(tables["comparison"]) + "".join(f"<h3>{escape(t.title)}</h3>{_table(t)}" for t in reference_section.tables(study))),
        _section("privacy-utility", _drawn(curve, *([bars] if bars is not None else [])) + _failures(answer), "Utility at the configured budget" if one_budget else None),
        _section("per-agency", _figure(by_name["per-agency-utility"]) + _failures(answer) + _table(tables["per-agency"])),
        _section("epsilon", _figure(by_name["epsilon-per-agency"])),
        person_section.html(study, focus, by_name, _figure, _table),  # "" unless the task's examples are persons' records
        hotspot_section.html(study, by_name, _figure),  # "" unless summary.json has hotspot_baselines
        _section("movement", _figure(by_name["data-movement"])),
        _section("fairness", _figure(by_name["fairness-agencies"]) + _figure(by_name["fairness-quintiles"]) + _table(tables["fairness"])),
        # No attack and no aggregator stated: one line, not the figure's and the table's both.
        _section("poisoning", (_figure(by_name["utility-under-attack"]) if tables["poisoning"].rows else "") + _table(tables["poisoning"])),
        _section("privacy-notes", _privacy_notes(study)),
        _section("sources", _sources(study, plots)),
        _section("glossary", _glossary()),
    ]
    title = f"Peel report {study.study_id}"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>" + "\n".join(body) + "</body></html>\n"
    )
