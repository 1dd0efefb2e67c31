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

from experiments.report import fmt, reference_section, views
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
"""
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
SECTIONS = (
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
)


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
        f"<tr{marked if i in t.highlight else ''}>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>"
        for i, row in enumerate(t.rows)
    )
    note = f'<p class="note">{escape(t.note)}</p>' if t.note else ""
    return f'<table id="table-{escape(t.name)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}'


def _figure(p: Plot | Missing) -> str:
    if isinstance(p, Missing):
        return f'<h3>{escape(p.title)}</h3><p class="missing" id="missing-{escape(p.name)}">{escape(p.reason)}</p>'
    width, height = png_size(p.png)
    data = base64.b64encode(p.png).decode("ascii")
    return (
        f'<figure id="figure-{escape(p.name)}"><img src="data:image/png;base64,{data}" alt="{escape(p.alt)}" width="{width}" height="{height}">'
        f"<figcaption>{escape(p.caption)}</figcaption>"
        f'<p class="file">Also saved as <code>{escape(p.name)}.png</code> beside this report.</p></figure>'
    )


def _section(key: str, body: str) -> str:
    title = dict(SECTIONS)[key]
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
    if study.kind == "sweep":
        items.append(("Swept keys", ", ".join(study.swept_keys) or "none"))
        items.append(("Cells", f"{len(study.cells)} with results" + (f"; without results: {', '.join(study.missing)}" if study.missing else "")))
        if focus.describe(study):
            items.append(("Per-agency figures show", focus.describe(study)))
    rows = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items)
    title = f"Peel report: {study.task} task, {kind.lower()} {study.study_id}"
    return f"<header><h1>{escape(title)}</h1><dl class=\"meta\">{rows}</dl></header>"


def _privacy_notes(study: Study) -> str:
    notes = study.privacy_notes
    if not notes:
        return f'<p class="missing">{fmt.NOT_MEASURED}: summary.json has no privacy notes.</p>'
    return "<dl class=\"meta\">" + "".join(f"<dt>{escape(str(k))}</dt><dd>{escape(str(v))}</dd>" for k, v in notes.items()) + "</dl>"


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


def render(study: Study, focus: views.Focus, sentences: Sequence[str], tables: dict[str, Table], plots: Sequence[Plot | Missing], generated: datetime) -> str:
    by_name = {p.name: p for p in plots}
    body = [
        _header(study, focus, generated),
        _section("reading", "<ul class=\"reading\">" + "".join(f"<li>{escape(s)}</li>" for s in sentences) + "</ul>"),
        _section("comparison", _table(tables["comparison"]) + "".join(f"<h3>{escape(t.title)}</h3>{_table(t)}" for t in reference_section.tables(study))),
        _section("privacy-utility", _figure(by_name["privacy-utility"])),
        _section("per-agency", _figure(by_name["per-agency-utility"]) + _table(tables["per-agency"])),
        _section("epsilon", _figure(by_name["epsilon-per-agency"])),
        _section("movement", _figure(by_name["data-movement"])),
        _section("fairness", _figure(by_name["fairness-agencies"]) + _figure(by_name["fairness-quintiles"]) + _table(tables["fairness"])),
        _section("poisoning", _figure(by_name["utility-under-attack"]) + _table(tables["poisoning"])),
        _section("privacy-notes", _privacy_notes(study)),
        _section("sources", _sources(study, plots)),
    ]
    title = f"Peel report {study.study_id}"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>" + "\n".join(body) + "</body></html>\n"
    )
