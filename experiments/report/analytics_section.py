"""The report's analytics section (summary.json ``analytics``, written by `peel analyze`): per
query the mode, the mechanism and its noise (discrete Gaussian or Skellam: μ), σ, each agency's ε after the release and the error against the
exact pooled counts; for a top-k query the exact and the DP hotspot maps side by side (area
centroids coloured by count, the flagged areas ringed). Nothing for a run without analytics.

Hook: ``analytics_section.section(summary, run_dir)`` returns the HTML (an empty string when the
run has no analytics); ``plots(summary, run_dir)`` the figures; `peel analyze` also writes the
section alone as ``report/analytics.html`` (``write_page``)."""

from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from experiments.analytics_audit import audit_note, floor_note
from experiments.report import fmt
from experiments.report.figure import Plot, _png
from privacy.durable import replace_durably

TITLE = "Statistics across agencies (DP analytics)"
TRUST = {
    "central": "pools every record in one place: no privacy, the yardstick",
    "local": "no trust needed: each agency publishes its own noisy counts, and their noise adds up",
    "federated": "no trust in the coordinator: it sees only the masked sum; σ holds with up to t agencies missing or colluding with it",
    "federated-trusted": "TRUSTS the coordinator: it receives every agency's exact counts and promises to add the noise",
}


def _block(summary: dict[str, Any]) -> dict[str, Any] | None:
    block = summary.get("analytics")
    return block if isinstance(block, dict) and isinstance(block.get("queries"), dict) else None


def _areas(run_dir: Path) -> pd.DataFrame | None:
    try:
        spec = json.loads((run_dir / "federation.json").read_text(encoding="utf-8"))
        return pd.read_csv(spec["areas"], usecols=["LSOA code", "Longitude", "Latitude"]) if spec.get("areas") else None
    except (OSError, ValueError, KeyError):
        return None


def plots(summary: dict[str, Any], run_dir: Path) -> list[Plot]:
    """One exact-vs-DP map per top-k query whose CSV holds every area with its true count."""
    block, areas = _block(summary), _areas(run_dir)
    if block is None or areas is None:
        return []
    out = []
    for name, q in block["queries"].items():
        path = run_dir / "analytics" / f"{name}.csv"
        if q.get("kind") != "top_k" or q.get("refused") or not path.is_file():
            continue
        frame = pd.read_csv(path, dtype={"area": str})
        if "true" not in frame.columns or "area" not in frame.columns:  # a grid map has no area centroids to draw
            continue
        frame = frame.merge(areas, left_on="area", right_on="LSOA code", how="inner")
        k = int(q["k"])
        fig = Figure(figsize=(10, 4.6))
        top = max(float(frame["true"].quantile(0.99)), 1.0)  # the top 1% saturate: the rest stays readable
        for i, (column, label) in enumerate((("true", "exact pooled counts"), ("released", f"released ({q['mode']}, σ={fmt.num(q.get('released_sigma'))})"))):
            ax = fig.add_subplot(1, 2, i + 1)
            points = ax.scatter(frame["Longitude"], frame["Latitude"], c=frame[column].clip(lower=0), s=6, cmap="viridis", vmin=0, vmax=top)
            flagged = frame.nlargest(k, column)
            ax.scatter(flagged["Longitude"], flagged["Latitude"], s=40, facecolors="none", edgecolors="red", linewidths=0.8)
            ax.set_title(f"{label}: top {k} ringed", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(points, ax=fig.axes, shrink=0.8, label="records per area")
        caption = f"{name}: top-{k} overlap {fmt.percent(q.get('overlap'))}, PAI {fmt.num(q.get('pai'), 2)} (exact map {fmt.num(q.get('pai_exact'), 2)})"
        out.append(Plot(f"analytics-map-{name}", f"Hotspot map {name}: exact vs released", _png(fig), caption, f"Two maps of area centroids coloured by count; {caption}"))
    return out


def _row(name: str, q: dict[str, Any]) -> str:
    cells = [escape(name), escape(str(q.get("kind"))), escape(str(q.get("mode")))]
    if q.get("refused"):
        return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + f"<td colspan='6'>refused, nothing released: {escape(str(q['refused']))}</td></tr>"
    eps_after = max((q.get("epsilon_after") or {0: 0.0}).values())
    extra = f"overlap {fmt.percent(q.get('overlap'))}, PAI {fmt.num(q.get('pai'), 2)} / exact {fmt.num(q.get('pai_exact'), 2)}" if q.get("kind") == "top_k" else f"{q.get('cells')} cells"
    sigma = q.get("released_sigma")
    if q.get("kind") in ("sum", "mean"):  # σ of the fixed-point sum in the column's units; the charged σ stays in steps
        sigma = q.get("sum_released_sigma_value")
        bounds = q.get("bounds") or [None, None]
        extra += (f"; {q.get('column')} clamped into [{fmt.num(bounds[0])}, {fmt.num(bounds[1])}] ({q.get('clamped')} values clamped, {q.get('missing')} records without a value); "
                  f"fixed point: 1 step = {fmt.num(q.get('quantum'))}, σ charged in steps at sensitivity {q.get('sensitivity_steps')}")
    if q.get("dropped_by_person_cap") is not None:
        extra += f"; {q.get('dropped_by_person_cap')} records over the person caps dropped"
    if q.get("noise") == "skellam" and q.get("mu_charged") is not None:
        extra += f"; Skellam noise: μ charged {fmt.num(q.get('mu_charged'))} (σ = √(2μ))" + (f", each share Sk({fmt.num(q.get('share_mu'))})" if q.get("share_mu") is not None else "")
    extra += floor_note(q) + audit_note(q)  # the end table's words
    cells += [fmt.num(sigma), fmt.num(q.get("sigma_charged")), fmt.eps(eps_after), fmt.num(q.get("mae")), fmt.percent(q.get("relative_error"), 1), escape(extra)]
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def section(summary: dict[str, Any], run_dir: Path, figures: list[Plot] | None = None) -> str:
    """The section's HTML ('' when the run has no analytics)."""
    block = _block(summary)
    if block is None:
        return ""
    figures = plots(summary, run_dir) if figures is None else figures
    mode = str(block.get("mode"))
    noise = {"skellam": "Skellam Sk(μ), μ = σ²/2: federated shares sum to exactly a Skellam, so no share floor",
             "discrete-gaussian": "discrete Gaussian N_Z(0, σ²)"}.get(str(block.get("noise") or "discrete-gaussian"), "")
    head = "<tr><th>query</th><th>kind</th><th>mode</th><th>σ of released noise</th><th>σ charged</th><th>max ε per agency after</th><th>MAE</th><th>relative error (cells ≥ threshold)</th><th></th></tr>"
    rows = "".join(_row(n, q) for n, q in block["queries"].items())
    imgs = "".join(f"<figure><img alt='{escape(p.alt)}' src='data:image/png;base64,{base64.b64encode(p.png).decode()}'><figcaption>{escape(p.caption)}</figcaption></figure>" for p in figures)
    return (
        f"<section id='analytics'><h2>{escape(TITLE)}</h2>"
        f"<p>Mode <b>{escape(mode)}</b>: {escape(TRUST.get(mode, ''))}. Noise: {escape(noise if mode != 'central' else 'none')}. {block.get('agencies')} agencies, each spending at most ε = {fmt.num(block.get('epsilon'))} "
        f"on these queries at δ = {block.get('delta')} ({escape(str(block.get('unit_label') or 'record level, add/remove-one'))}; charged to each agency's ledger before the release left it). "
        f"Errors are against the exact pooled counts (a sum or mean: against the raw values, neither clamped nor rounded).</p>"
        f"<table>{head}{rows}</table>{imgs}</section>"
    )


def inline(page: str, summaries: list[dict[str, Any] | None], run_dir: Path) -> str:
    """`page` with the section of the first summary holding analytics inserted before </body>
    (the report's one-line hook; unchanged when no summary has analytics)."""
    for summary in summaries:
        body = section(summary, run_dir) if summary else ""
        if body:
            return page.replace("</body>", body + "</body>", 1)
    return page


def write_page(run_dir: Path) -> Path:
    """`<run_dir>/report/analytics.html`: this section as a page of its own."""
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    body = section(summary, run_dir)
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(TITLE)}</title></head><body>{body}</body></html>"
    out = run_dir / "report"
    out.mkdir(exist_ok=True)
    replace_durably(out / "analytics.html", page, sync=False)
    return out / "analytics.html"
