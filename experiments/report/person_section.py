"""The report's "Person-level privacy" section (issue 17): who pays, agency by agency, and the
privacy–utility curve per person next to per record.

Who pays: each agency's people and how concentrated its records are on a few of them
(summary.json `persons`, the harness's figures), what the guarantee means for its heaviest
person (`epsilon_by_unit.per_agency`) and its utility under each unit. The curve: the
record-level DP architecture's headline metric against its ε budget, one line per privacy unit,
from a sweep over privacy.epsilon × privacy.unit (configs/person-sweep.yaml); the record-unit
points drawn again at the heaviest person's group-privacy ε, which is what they promise a person.
Nothing is computed here that the run did not write: the section reads summary.json only."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from html import escape
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from experiments.report import fmt, views
from experiments.report.figure import Missing, Plot, _png, colour
from experiments.report.load import Cell, Study
from experiments.report.tables import Table

NAME = "person-utility"
UNITS = ("record", "person")
SWEEP_COMMAND = "peel sweep configs/person-sweep.yaml"
UNIT_STYLE: dict[str, dict[str, Any]] = {"record": {"color": "#1f77b4", "marker": "o", "linestyle": "-"}, "person": {"color": "#d62728", "marker": "s", "linestyle": "-"}}


@dataclass(frozen=True)
class UnitCells:
    """The record-level DP architecture the section reads and, per privacy unit, the cell of the
    focus setting (ε, seed) that ran it."""

    arch: str
    cells: dict[str, Cell]


def _dp_arch(study: Study) -> str | None:
    """fedavg-dp if it ran, else the first architecture whose unit is a record or a person."""
    archs = study.archs
    if archs.empty:
        return None
    rows = archs[archs["privacy_unit"].isin(UNITS)]
    names = list(dict.fromkeys(rows["architecture"]))
    return "fedavg-dp" if "fedavg-dp" in names else (sorted(names, key=views.arch_order)[0] if names else None)


def unit_cells(study: Study, focus: views.Focus) -> UnitCells | None:
    arch = _dp_arch(study)
    if arch is None:
        return None
    archs = study.archs
    rows = archs[(archs["architecture"] == arch) & (archs["facet"] == focus.facet) & archs["eps_budget"].apply(lambda e: views.same_eps(e, focus.eps))]
    if focus.seed is not None:
        rows = rows[rows["seed"] == focus.seed]
    by_name = {c.name: c for c in study.cells}
    cells: dict[str, Cell] = {}
    for _, row in rows.iterrows():
        unit = str(row["privacy_unit"])
        if unit in UNITS and unit not in cells and row["cell"] in by_name:
            cells[unit] = by_name[row["cell"]]
    return UnitCells(arch, cells)


def _summary(cell: Cell | None) -> dict[str, Any]:
    return (cell.summary or {}) if cell is not None else {}


def _entry(cell: Cell | None, arch: str) -> dict[str, Any]:
    entry = (_summary(cell).get("architectures") or {}).get(arch)
    return entry if isinstance(entry, dict) else {}


def _persons(cell: Cell | None) -> dict[str, Any]:
    block = _summary(cell).get("persons")
    return block if isinstance(block, dict) else {}


def _per_agency_unit(cell: Cell | None, arch: str) -> dict[str, Any]:
    block = _entry(cell, arch).get("epsilon_by_unit")
    per = block.get("per_agency") if isinstance(block, dict) else None
    return per if isinstance(per, dict) else {}


def _metric(cell: Cell | None, arch: str, agency: str, headline: str) -> float:
    data = (_entry(cell, arch).get("per_agency") or {}).get(agency) or {}
    value = (data.get("metrics") or {}).get(headline) if isinstance(data, dict) else None
    return float(value) if isinstance(value, int | float) else math.nan


def who_pays(study: Study, focus: views.Focus) -> Table:
    """One row per agency (smallest first): its people and repeat concentration, what the
    guarantee is for its heaviest person under each unit run, its utility under each."""
    title = "Who pays: people and repeat victimisation per agency"
    found = unit_cells(study, focus)
    if study.task != "outcome" or found is None:
        return Table("who-pays", title, [], [], note=f"{fmt.NOT_MEASURED}: no record-level DP architecture on person-linked records was run")
    arch, cells = found.arch, found.cells
    record, person = cells.get("record"), cells.get("person")
    persons = _persons(person) or _persons(record)
    per: dict[str, Any] = persons["per_agency"] if isinstance(persons.get("per_agency"), dict) else {}
    if not per:
        return Table("who-pays", title, [], [], note=f"{fmt.NOT_MEASURED}: summary.json has no persons block (the data has no person keys, or the run predates it)")
    label = study.headline_label
    cap = persons.get("max_records")
    header = ["agency", "training records", "people (any role)", f"share of victim records: top {fmt.percent(persons.get('top_share', 0.05))} of victims", "records naming a repeat person", "heaviest person: records"]
    if record is not None:
        header += ["record unit: heaviest person's ε (group privacy)"]
    if person is not None:
        header += [f"person unit: records dropped by the cap ({cap} per person)", "person unit: ε per person"]
    header += [f"{label}, {u} unit" for u in UNITS if u in cells]
    if len(cells) == 2:
        header.append(f"{label} change, person − record")
    record_eps, person_eps = _per_agency_unit(record, arch), _per_agency_unit(person, arch)
    order = sorted(per, key=lambda a: (per[a].get("records") or 0, a))
    rows = []
    for agency in order:
        p = per[agency]
        row = [agency, fmt.count(p.get("records")), fmt.count(p.get("people")), fmt.percent(p.get("top_victim_share")), fmt.percent(p.get("repeat_record_share")), fmt.count(p.get("heaviest_person_records"))]
        if record is not None:
            conversion = (record_eps.get(agency) or {}).get("group_conversion_heaviest_person") or {}
            row.append(_group(conversion))
        if person is not None:
            dropped, records = p.get("dropped_by_cap"), p.get("records")
            share = f" ({fmt.percent(dropped / records, 1)})" if isinstance(dropped, int) and records else ""
            row.append(fmt.count(dropped) + share if dropped is not None else "— (not recorded)")
            row.append(fmt.eps((person_eps.get(agency) or {}).get("person_within_agency")))
        values = {u: _metric(c, arch, agency, study.headline) for u, c in cells.items()}
        row += [fmt.num(values[u]) for u in UNITS if u in cells]
        if len(cells) == 2:
            row.append(fmt.signed(values["person"] - values["record"]))
        rows.append(row)
    where = {u: c.source or "summary.json" for u, c in cells.items()}
    shown = focus.describe(study)
    note = (
        f"{arch}{', ' + shown if shown else ''}. From {' and '.join(f'{w} ({u} unit)' for u, w in where.items())}: persons.per_agency.<agency> "
        f"(records, people, top_victim_share, repeat_record_share, heaviest_person_records, dropped_by_cap), "
        f"architectures.{arch}.epsilon_by_unit.per_agency.<agency> (group_conversion_heaviest_person, person_within_agency) and "
        f".per_agency.<agency>.metrics.{study.headline}. {persons.get('note', '')}"
    )
    return Table("who-pays", title, header, rows, note=note)


def _group(conversion: Mapping[str, Any]) -> str:
    eps, delta = conversion.get("epsilon"), conversion.get("delta")
    if not isinstance(eps, int | float):
        return "— (not recorded)"
    if isinstance(delta, int | float) and delta >= 1:
        return f"{fmt.eps(eps)} at δ = 1 (none)"
    return f"{fmt.eps(eps)} at δ = {delta:.2g}" if isinstance(delta, int | float) else fmt.eps(eps)


def who_pays_sentences(study: Study, focus: views.Focus) -> list[str]:
    """Which agency carries most repeat victimisation, and where the person unit costs most."""
    found = unit_cells(study, focus)
    if found is None:
        return []
    cells = found.cells
    persons = _persons(cells.get("person")) or _persons(cells.get("record"))
    per: dict[str, Any] = persons["per_agency"] if isinstance(persons.get("per_agency"), dict) else {}
    shares = {a: p["top_victim_share"] for a, p in per.items() if isinstance(p.get("top_victim_share"), int | float)}
    out = []
    if shares:
        top, low = max(shares, key=lambda a: shares[a]), min(shares, key=lambda a: shares[a])
        out.append(
            f"Repeat victimisation is most concentrated in {top}: its most-victimised 5% of victims are in {fmt.percent(shares[top])} of its records with a victim "
            f"({low}: {fmt.percent(shares[low])}). These are the people a record-level ε protects least: group privacy multiplies it by their record count."
        )
    if len(cells) == 2:
        changes = {a: _metric(cells["person"], found.arch, a, study.headline) - _metric(cells["record"], found.arch, a, study.headline) for a in per}
        changes = {a: v for a, v in changes.items() if not math.isnan(v)}
        if changes:
            worst = min(changes, key=lambda a: changes[a])
            out.append(f"At the same ε, protecting people rather than records changes {study.headline_label} by {fmt.signed(changes[worst])} at most ({worst}); the test-weighted change is in the curve below.")
    return out


# --- the curve ------------------------------------------------------------------------------------


def curve_points(study: Study) -> pd.DataFrame:
    """Per (unit, ε budget) of the record-level DP architecture: the headline metric's mean, min
    and max over seeds, and the largest over seeds of the heaviest person's group-privacy ε (and
    k) of the record-unit cells (summary.json epsilon_by_unit.group_conversion_heaviest_person)."""
    columns = ["unit", "eps_budget", "headline", "headline_min", "headline_max", "n_seeds", "group_eps", "group_k"]
    arch = _dp_arch(study)
    if arch is None:
        return pd.DataFrame(columns=columns)
    archs = study.archs
    rows = archs[(archs["architecture"] == arch) & archs["privacy_unit"].isin(UNITS) & archs["eps_budget"].notna() & archs["headline"].notna()]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    by_name = {c.name: c for c in study.cells}

    def conversion(cell: str, key: str) -> float:
        block = _entry(by_name.get(cell), arch).get("epsilon_by_unit")
        value = ((block or {}).get("group_conversion_heaviest_person") or {}).get(key) if isinstance(block, dict) else None
        return float(value) if isinstance(value, int | float) else math.nan

    rows = rows.assign(group_eps=[conversion(c, "epsilon") if u == "record" else math.nan for c, u in zip(rows["cell"], rows["privacy_unit"], strict=True)])
    rows = rows.assign(group_k=[conversion(c, "k") if u == "record" else math.nan for c, u in zip(rows["cell"], rows["privacy_unit"], strict=True)])
    grouped = rows.groupby(["privacy_unit", "eps_budget"], sort=True)
    out = grouped["headline"].agg(["mean", "min", "max"]).rename(columns={"mean": "headline", "min": "headline_min", "max": "headline_max"})
    out["n_seeds"] = grouped["cell"].nunique()
    out["group_eps"] = grouped["group_eps"].max()  # the worst seed, as ε spent is everywhere
    out["group_k"] = grouped["group_k"].max()
    return out.reset_index().rename(columns={"privacy_unit": "unit"})[columns]


def _reference(study: Study, line: str) -> float:
    archs = study.archs
    rows = archs[archs["line"] == line] if not archs.empty else archs
    return float(rows["headline"].mean()) if not rows.empty else math.nan


def curve(study: Study) -> Plot | Missing:
    title = "Privacy–utility per person and per record"
    points = curve_points(study)
    units = sorted(set(points["unit"]), key=UNITS.index) if not points.empty else []
    budgets = sorted(set(points["eps_budget"])) if not points.empty else []
    how = f"run {SWEEP_COMMAND} (privacy.epsilon × privacy.unit, a few minutes) and open the report it writes"
    if study.task != "outcome":
        return Missing(NAME, title, f"not drawn: the {study.task} task's unit is not a record of a person")
    if len(units) < 2 or len(budgets) < 2:
        have = f"this {'sweep' if study.kind == 'sweep' else 'run'} has " + (f"the {units[0]} unit only" if len(units) == 1 else "no record-level DP architecture") + (f" and {len(budgets)} ε budget{'s' if len(budgets) != 1 else ''}" if units else "")
        return Missing(NAME, title, f"{have}: for the curve per person next to per record, {how}")
    label = study.headline_label
    fig = Figure(figsize=(8.5, 4.2), layout="constrained")
    ax = fig.subplots()
    multi_seed = bool((points["n_seeds"] > 1).any())
    for unit in units:
        pts = points[points["unit"] == unit].sort_values("eps_budget")
        x, y = pts["eps_budget"].to_numpy(float), pts["headline"].to_numpy(float)
        err = np.vstack([y - pts["headline_min"].to_numpy(float), pts["headline_max"].to_numpy(float) - y])
        what = "ε per person (person unit)" if unit == "person" else "ε per incident record (record unit)"
        ax.errorbar(x, y, yerr=err if multi_seed else None, capsize=3, label=what, **UNIT_STYLE[unit])
    group = points[(points["unit"] == "record") & points["group_eps"].notna()].sort_values("eps_budget")
    if not group.empty:
        k = int(group["group_k"].max())
        ax.plot(group["group_eps"], group["headline"], color=UNIT_STYLE["record"]["color"], marker="o", markerfacecolor="white", linestyle=":", label=f"record unit, ε of its heaviest person (group privacy, k ≤ {k} records, δ up to 1)")
    for line, style in (("central", "--"),):
        level = _reference(study, line)
        if not math.isnan(level):
            ax.axhline(level, color=colour(line), linestyle=style, linewidth=1.2, label=f"{line} (pooled, no DP): {level:.3f}")
    ax.set_xscale("log")
    # The swept budgets, then round numbers along the group-privacy points (far to the right).
    far = float(group["group_eps"].max()) if not group.empty else 0.0
    ticks = [*budgets, *(t for t in (30, 100, 300, 1000, 3000, 10000) if 1.8 * budgets[-1] < t <= 1.5 * far)]
    ax.set_xticks(ticks, [f"{b:g}" for b in ticks])
    ax.minorticks_off()
    ax.set_xlabel("ε (log scale): per person for the person unit, per record for the record unit")
    ax.set_ylabel(f"{label} (higher is better)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    arch = _dp_arch(study)
    seeds = int(points["n_seeds"].max())
    bars = f"Points are means over {seeds} seeds; bars span the lowest to the highest seed" if multi_seed else "One seed per point"
    return Plot(
        NAME,
        title,
        _png(fig),
        f"{arch}'s {label} against its ε budget per agency, protecting people (red) or records (blue).",
        f"{label} against ε for the person and record privacy units of {arch}, with the record unit's group-privacy ε per person",
        units=f"x: ε budget per agency (dimensionless, log scale; lower is more private); y: {label} on held-out test months, test-weighted",
        detail=(
            f"At equal ε the person unit promises far more: the same bound for a person with all their records, where the record unit's bound holds per record "
            f"and a person with k records gets only group privacy, k·ε at δ·k·e^((k-1)ε) (hollow points, drawn at the heaviest person's figure, max over agencies). {bars}. "
            f"From each cell's summary.json: architectures.{arch}.metrics.{study.headline}, .epsilon_by_unit.group_conversion_heaviest_person, and its privacy.epsilon and privacy.unit."
        ),
    )


def curve_table(study: Study) -> Table:
    """The curve's numbers: per ε budget, the headline metric per unit and their difference."""
    points = curve_points(study)
    label = study.headline_label
    title = f"{label} per ε budget and privacy unit"
    if points.empty or len(set(points["unit"])) < 2:
        return Table("person-curve", title, [], [], note="")
    header = ["ε budget per agency", f"{label}, record unit", f"{label}, person unit", "person − record", "record unit: heaviest person's group ε"]
    rows = []
    for eps in sorted(set(points["eps_budget"])):
        at = points[points["eps_budget"] == eps].set_index("unit")
        rec = at["headline"].get("record", math.nan)
        per = at["headline"].get("person", math.nan)
        group = at["group_eps"].get("record", math.nan)
        rows.append([fmt.budget(eps), fmt.num(rec), fmt.num(per), fmt.signed(per - rec), fmt.eps(group) + (f" (k = {int(at['group_k']['record'])})" if not fmt.missing(group) else "")])
    seeds = int(points["n_seeds"].max())
    return Table("person-curve", title, header, rows, note=f"{label}: means over {seeds} seed{'s' if seeds > 1 else ''}; group ε and k: the largest over seeds. The same numbers as the figure.")


def plots(study: Study) -> list[Plot | Missing]:
    return [curve(study)]


def html(study: Study, focus: views.Focus, figures: Mapping[str, Plot | Missing], render_figure: Callable[[Plot | Missing], str], render_table: Callable[[Table], str]) -> str:
    """The section, or "" for a task whose examples are not persons' records."""
    if study.task != "outcome":
        return ""
    intro = (
        "<p>A record-level ε bounds what one incident record can reveal; the people police records are about appear in many "
        "(repeat victims, prolific suspects), and a person with k records gets only about k·ε. Under <code>privacy.unit: person</code> "
        "each agency bounds and clips each person's records together, so its ε holds per person.</p>"
    )
    sentences = who_pays_sentences(study, focus)
    parts = [intro, "<h3>Who pays</h3>"]
    if sentences:
        parts.append("<ul>" + "".join(f"<li>{escape(s)}</li>" for s in sentences) + "</ul>")
    parts.append(render_table(who_pays(study, focus)))
    parts.append(render_figure(figures.get(NAME) or curve(study)))
    table = curve_table(study)
    if table.rows:
        parts.append(render_table(table))
    return f'<section id="person"><h2>Person-level privacy</h2>{"".join(parts)}</section>'
