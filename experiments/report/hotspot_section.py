"""The report's hotspot section (summary.json ``hotspot_baselines``, written by
experiments/hotspot_baselines.py): every model next to the analysts' baselines — coverage curves
(PAI against area share) pooled and per agency, the comparison with naive counts at 5% of areas
with its block-bootstrap interval, the DP cost of each map, and a note on feedback loops.
Nothing at all for a study without hotspot baselines (the outcome task)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from html import escape
from typing import Any

from matplotlib.figure import Figure

from experiments.report import fmt
from experiments.report.figure import Missing, Plot, _png, colour, marker
from experiments.report.load import Study

TITLE = "Hotspot forecasts against analysts' baselines"
HEADLINE = "5%"
MAX_AGENCY_PANELS = 12  # per-agency curves: the largest agencies by test rows, so the figure stays legible
# Baselines are drawn dashed in greys and browns, models solid in their architecture's colour.
BASELINE_STYLE: dict[str, tuple[str, str]] = {
    "naive-1m": ("#bdbdbd", "--"),
    "naive-3m": ("#969696", "--"),
    "naive-12m": ("#636363", "--"),
    "naive-3m-dp": ("#e7969c", "--"),
    "kde": ("#c7a76c", "-."),
    "promap": ("#8c6d31", "-."),
    "sepp": ("#6b4c9a", ":"),
    "oracle": ("#000000", ":"),
}
FEEDBACK_NOTE = (
    "Feedback loops. Recorded counts of offences found mostly by police activity — drugs and possession of weapons, "
    "largely from stop and search and patrols — measure where officers looked as much as where the offences happened. "
    "A map trained on them and used to direct patrols sends officers back where they already were, who then record more "
    "of the same there (Lum & Isaac, 'To predict and serve?', Significance 2016; Ensign et al., 'Runaway feedback loops in "
    "predictive policing', FAT* 2018). Victim-reported offences such as burglary depend far less on where police are, so "
    "their maps are less exposed, though reporting rates still differ between areas. These maps pool every crime type, "
    "police-generated ones included: before a map directs patrols, score it per crime type and leave police-generated "
    "types out, or at least show them apart. The synthetic data here have no such loop (the generator does not react to "
    "any forecast), so nothing in this section measures one."
)
SNAP_NOTE = (
    "Cells are LSOAs (or, with task.hotspot.cells: grid, squares); police.uk snaps every location to one of a set of "
    "anonymous map points, so no result here supports a claim at street level."
)


def _block(study: Study) -> tuple[str, dict[str, Any]] | None:
    """(cell name, hotspot_baselines) of the first cell that has one."""
    for cell in study.cells:
        block = (cell.summary or {}).get("hotspot_baselines")
        if isinstance(block, dict) and isinstance(block.get("curves"), dict):
            return cell.name, block
    return None


def _style(name: str, models: list[str]) -> dict[str, Any]:
    if name in models:
        return {"color": colour(name), "linestyle": "-", "marker": marker(name), "markersize": 4, "linewidth": 1.6}
    c, ls = BASELINE_STYLE.get(name, ("#7f7f7f", "--"))
    return {"color": c, "linestyle": ls, "linewidth": 1.4}


def _curves(ax: Any, shares: list[float], lines: Mapping[str, list[float | None]], models: list[str]) -> None:
    for name, values in lines.items():
        points = [(100 * s, v) for s, v in zip(shares, values, strict=False) if v is not None and math.isfinite(v)]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], label=name, **_style(name, models))
    ax.axhline(1.0, color="#d9d9d9", linewidth=0.8)
    ax.set_xlabel("share of areas flagged (%)")
    ax.set_ylabel("PAI")
    ax.grid(alpha=0.3)


def plots(study: Study) -> list[Plot | Missing]:
    """The pooled and the per-agency coverage curves ([] without hotspot baselines)."""
    found = _block(study)
    if found is None:
        return []
    cell, block = found
    curves = block["curves"]
    shares = [float(s) for s in curves["coverages"]]
    models = [str(m) for m in block.get("models") or []]
    where = f" (cell {cell})" if study.kind == "sweep" else ""
    units = "x: share of the agency's areas flagged each month, %; y: PAI = share of incidents in flagged areas ÷ share of areas flagged (1 = no better than random)"
    fig = Figure(figsize=(7.5, 4.6))
    ax = fig.add_subplot(1, 1, 1)
    _curves(ax, shares, curves["pooled"], models)
    ax.set_title("PAI against area share, pooled over agencies")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    pooled = Plot(
        "hotspot-coverage-pooled",
        "Coverage curves: every model and baseline, pooled" + where,
        _png(fig),
        "How much more crime than its share of area each map's flagged areas held, at each area share, over the test months.",
        "Line chart of PAI against the share of areas flagged, one line per model and baseline.",
        units,
        "Models are solid lines, baselines dashed, the oracle (true intensity, synthetic data only) dotted. Every agency flags its own "
        "areas; hits and areas are summed over agencies and test months. Point values; the table below gives intervals at 1%, 5% and 10%. "
        "Source: summary.json hotspot_baselines.curves.",
    )
    per_agency = curves.get("per_agency") or {}
    if not per_agency:
        return [pooled, Missing("hotspot-coverage-agencies", "Coverage curves per agency", "not measured: no per-agency curves in summary.json")]
    sizes = {str(a.get("name")): int(a.get("n_test") or 0) for a in (study.cells[0].summary or {}).get("agencies") or [] if isinstance(a, dict)}
    names = sorted(per_agency, key=lambda a: (-sizes.get(a, 0), a))[:MAX_AGENCY_PANELS]
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig = Figure(figsize=(3.2 * cols, 2.6 * rows + 0.8))
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        _curves(ax, shares, per_agency[name], models)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.xaxis.label.set_fontsize(8)
        ax.yaxis.label.set_fontsize(8)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    shown = "every agency" if len(names) == len(per_agency) else f"the {len(names)} agencies with the most test rows of {len(per_agency)}"
    return [
        pooled,
        Plot(
            "hotspot-coverage-agencies",
            "Coverage curves per agency" + where,
            _png(fig),
            f"PAI against area share for {shown}, each flagging its own areas.",
            "Small multiples: one line chart of PAI against area share per agency.",
            units,
            "Small agencies have few areas, so their curves move in steps (1% of 20 areas is still one area). Source: summary.json hotspot_baselines.curves.per_agency.",
        ),
    ]


def _interval(e: Mapping[str, Any] | None) -> str:
    if not isinstance(e, Mapping) or e.get("value") is None:
        return fmt.NOT_MEASURED
    low, high = e.get("low"), e.get("high")
    return f"{float(e['value']):.2f} [{fmt.num(low, 2) if low is not None else '–'}, {fmt.num(high, 2) if high is not None else '–'}]"


def model_sentences(block: Mapping[str, Any], coverage: str = HEADLINE) -> list[str]:
    """One sentence per model: does it beat the naive reference at ``coverage``, by how much,
    with the bootstrap interval of the pooled PAI difference — whatever the answer."""
    reference = str(block.get("reference"))
    ref = ((block.get("pooled") or {}).get(reference) or {}).get(coverage, {}).get("pai")
    out = []
    for model in block.get("models") or []:
        d = ((block.get("pai_minus_reference") or {}).get(model) or {}).get(coverage)
        if not isinstance(d, Mapping) or d.get("value") is None:
            out.append(f"{model}: no PAI difference from {reference} at {coverage} could be computed.")
            continue
        low, high, value = d.get("low"), d.get("high"), float(d["value"])
        if low is not None and high is not None and low > 0:
            verdict = "beats naive counts"
        elif low is not None and high is not None and high < 0:
            verdict = "does worse than naive counts"
        else:
            verdict = "cannot be told apart from naive counts"
        pai = ((block.get("pooled") or {}).get(model) or {}).get(coverage, {}).get("pai")
        out.append(
            f"{model} {verdict} at {coverage} of areas: PAI {_interval(pai)} against {reference}'s {_interval(ref)}, "
            f"a difference of {value:+.2f} (95% block-bootstrap interval {fmt.num(low, 2)} to {fmt.num(high, 2)})."
        )
    return out


def _metrics_table(block: Mapping[str, Any]) -> str:
    coverages = [str(c) for c in block.get("coverages") or []]
    names = [*(block.get("models") or []), *(block.get("baselines") or [])]
    head = "<th>map</th><th>kind</th>" + "".join(f"<th>PAI at {escape(c)}</th><th>PEI* at {escape(c)}</th>" for c in coverages)
    head += f"<th>PAI − {escape(str(block.get('reference')))} at {HEADLINE}</th>"
    body = []
    for name in names:
        by_cov = (block.get("pooled") or {}).get(name) or {}
        kind = "model" if name in (block.get("models") or []) else "baseline"
        cells = "".join(f"<td>{escape(_interval(by_cov.get(c, {}).get('pai')))}</td><td>{escape(_interval(by_cov.get(c, {}).get('pei_star')))}</td>" for c in coverages)
        diff = (block.get("pai_minus_reference") or {}).get(name, {}).get(HEADLINE)
        diff_text = "reference" if name == block.get("reference") else _interval(diff)
        body.append(f"<tr><td>{escape(str(name))}</td><td>{kind}</td>{cells}<td>{escape(diff_text)}</td></tr>")
    return f'<table id="table-hotspot-metrics"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _agency_table(block: Mapping[str, Any], coverage: str = HEADLINE) -> str:
    """Agencies (rows) × maps (columns): PAI at ``coverage`` with its interval."""
    names = [*(block.get("models") or []), *(block.get("baselines") or [])]
    head = "<th>agency</th>" + "".join(f"<th>{escape(str(n))}</th>" for n in names)
    body = []
    for agency, maps in (block.get("per_agency") or {}).items():
        cells = "".join(f"<td>{escape(_interval(((maps.get(n) or {}).get(coverage) or {}).get('pai')))}</td>" for n in names)
        body.append(f"<tr><td>{escape(str(agency))}</td>{cells}</tr>")
    note = "Each agency flags its own areas; small agencies flag at least one area, so their shares can exceed the nominal one (summary.json hotspot_baselines.flagged_share gives the pooled share)."
    return f'<table id="table-hotspot-agencies"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table><p class="note">{escape(note)}</p>'


def _dp_table(study: Study, block: Mapping[str, Any]) -> str:
    summary = study.cells[0].summary or {}
    rows = []
    for model in block.get("models") or []:
        entry = (summary.get("architectures") or {}).get(model) or {}
        eps = entry.get("epsilon_max")
        if eps is None:
            text, incident = "ε = ∞ (not private): trained on exact counts", "ε = ∞"
        else:
            unit = entry.get("privacy_unit") or "example"
            text = f"ε = {fmt.eps(eps)} per {unit} (max over agencies, δ = {entry.get('delta')})"
            per = [a.get("epsilon_per_incident", {}) or {} for a in (entry.get("per_agency") or {}).values() if isinstance(a, dict)]
            values = [float(p["epsilon"]) for p in per if isinstance(p, dict) and p.get("epsilon") is not None]
            incident = f"ε = {fmt.eps(max(values))} per incident record (max over agencies)" if values else "not computed"
        rows.append((model, "model", text, incident))
    for name, cost in (block.get("dp_cost") or {}).items():
        rows.append((name, "baseline", str(cost.get("as_computed_here")), str(cost.get("from_dp_counts"))))
    body = "".join(f"<tr><td>{escape(a)}</td><td>{escape(b)}</td><td>{escape(c)}</td><td>{escape(d)}</td></tr>" for a, b, c, d in rows)
    head = "<th>map</th><th>kind</th><th>DP cost as computed in this run</th><th>models: per incident record; baselines: if computed from DP counts</th>"
    note = (
        "Baselines are computed here by the evaluation harness from exact counts: released by an agency they are not private (ε = ∞). "
        "Computed from DP area-month counts they cost what those counts cost and nothing more, and their noise lowers their PAI: "
        "naive-3m-dp is naive-3m from Laplace-noised counts (its ε in the table), so its PAI next to naive-3m's is that cost for the strongest simple map."
    )
    return f'<table id="table-hotspot-dp"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table><p class="note">{escape(note)}</p>'


def html(study: Study, figures: Mapping[str, Plot | Missing], render_figure: Callable[[Plot | Missing], str]) -> str:
    """The section's markup ("" without hotspot baselines); ``figures`` by name, drawn by
    ``plots``, and ``render_figure`` the page's own figure markup."""
    found = _block(study)
    if found is None:
        return ""
    _, block = found
    parts = [f"<p>{escape(str(block.get('sentence', '')))}</p>"]
    sentences = model_sentences(block)
    if sentences:
        parts.append("<ul>" + "".join(f"<li>{escape(s)}</li>" for s in sentences) + "</ul>")
    for name in ("hotspot-coverage-pooled", "hotspot-coverage-agencies"):
        if name in figures:
            parts.append(render_figure(figures[name]))
    parts.append("<h3>Pooled metrics with 95% block-bootstrap intervals over test months</h3>" + _metrics_table(block))
    parts.append(f"<h3>PAI at {HEADLINE} of areas per agency, 95% intervals</h3>" + _agency_table(block))
    grid = block.get("grid")
    if isinstance(grid, dict) and grid.get("not_computed"):
        parts.append(f'<p class="missing">Baselines on {escape(str(grid.get("cells")))}: not computed — {escape(str(grid["not_computed"]))}</p>')
    elif isinstance(grid, dict):  # task.hotspot.cells: grid — the baselines again on grid squares
        parts.append(f"<h3>Baselines on {escape(str(grid.get('cells')))} (models learn on LSOAs and are not scored here)</h3>")
        parts.append(f"<p>{escape(str(grid.get('sentence', '')))}</p>" + _metrics_table(grid))
    parts.append("<h3>What each map would cost in privacy</h3>" + _dp_table(study, block))
    sepp = block.get("sepp") or {}
    if sepp:
        fits = "; ".join(f"{a}: branching ratio {fmt.num(f.get('branching_ratio'), 2)}, mean lag {fmt.num(f.get('mean_lag_months'), 2)} months, σ {fmt.num(f.get('sigma_m'), 0)} m" for a, f in sepp.items())
        parts.append(f'<p class="note">SEPP fits (training months only): {escape(fits)}.</p>')
    notes = [*(str(n) for n in block.get("notes") or []), SNAP_NOTE]
    parts.append("<ul>" + "".join(f'<li class="note">{escape(n)}</li>' for n in notes) + "</ul>")
    parts.append(f'<p class="note" id="hotspot-feedback">{escape(FEEDBACK_NOTE)}</p>')
    return f'<section id="hotspot"><h2>{escape(TITLE)}</h2>{"".join(parts)}</section>'
