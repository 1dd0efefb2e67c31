"""The report's tables, as header + rows of strings (the HTML writer only escapes and lays out)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from experiments.report import fmt, plots, views
from experiments.report.answer import Answer
from experiments.report.load import Study
from federation import architectures

UNIT = {"record": "per incident record", "person": "per person (all their records)", "agency": "per agency (all its records)", "area-month": "per area and month"}


def _what(arch: str) -> str:
    """The registry's one-line description of `arch` ("" for a name it does not know)."""
    known = architectures.find(arch)
    return known.description if known is not None else ""


@dataclass
class Table:
    name: str
    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""
    highlight: set[int] = field(default_factory=set)  # row indices drawn in bold


def _utility(row: pd.Series, column: str) -> str:
    value = fmt.num(row[column])
    if row["n_seeds"] > 1 and not fmt.missing(row[column]):
        value += f" ({fmt.num(row[f'{column}_min'])}–{fmt.num(row[f'{column}_max'])})"
    return value


def _privacy(row: pd.Series) -> str:
    if not row["is_dp"]:
        return "none (no DP)"
    unit = UNIT.get(str(row["privacy_unit"]), str(row["privacy_unit"] or "unit not stated"))
    delta = f", δ = {fmt.budget(row['delta'])}" if not fmt.missing(row["delta"]) else ""
    spent = fmt.eps(row["epsilon_max"]) if not fmt.missing(row["epsilon_max"]) else "not recorded"
    relation = row.get("neighbouring")
    return f"{spent}{delta}, {unit}" + (f" ({relation} neighbours)" if isinstance(relation, str) and relation else "")


def attack_text(mia: float, bound: float) -> str:
    if fmt.missing(mia):
        return fmt.NOT_MEASURED
    if fmt.missing(bound):
        return f"{fmt.num(mia)} (no ε bound: no DP)"
    relation = "≤" if mia <= bound else "> (exceeds)"
    return f"{fmt.num(mia)} {relation} {fmt.num(bound)} allowed by ε"


def _verdict(r: pd.Series, first_screen: Answer | None, focus: views.Focus | None) -> str:
    """The first screen's verdict on a row, where the row is the setting it judged."""
    if first_screen is None or focus is None:
        return "— (no recommendation made)"
    judged = r["facet"] == focus.facet and (not r["is_dp"] or views.same_eps(r["eps_budget"], focus.eps))
    if not judged:
        return f"— (judged at ε = {fmt.budget(focus.eps)})"
    return first_screen.verdicts.get(r["line"], "— (not judged: an attacked or extra line)")


def comparison(study: Study, first_screen: Answer | None = None, focus: views.Focus | None = None) -> Table:
    """One row per architecture (and ε budget, and other swept setting): utility, privacy spent,
    attack, what moved, time, and the first screen's verdict (why it is or is not recommended)."""
    table = views.summary_table(study)
    sweep = study.kind == "sweep"
    facets = sorted(set(table["facet"])) if not table.empty else []
    show_facet = len(facets) > 1 or (facets and facets[0])
    label = study.headline_label
    header = (["setting"] if show_facet else []) + ["architecture", "what it is", "ε budget"]
    header += [f"{label}" + (" mean (min–max over seeds)" if sweep else "")]
    if study.headline != "auc":
        header.append("AUC")
    header += ["ε spent to date (max over agencies" + (", seeds" if sweep else "") + ")", "membership attack AUC", "attack TPR at 1% FPR", "raw records moved", "model updates sent", "wall time"]
    if sweep:
        header.append("seeds")
    header.append("recommendation at this budget")
    rows = []
    for _, r in table.iterrows():
        line = [r["facet"]] if show_facet else []
        base = r["architecture"]
        line += [r["line"], _what(base), fmt.budget(r["eps_budget"]) if r["is_dp"] else "— (no DP)", _utility(r, "headline")]
        if study.headline != "auc":
            line.append(_utility(r, "auc"))
        line += [
            _privacy(r),
            attack_text(r["mia_auc"], r["mia_bound"]) + (f"; above it in {int(r['mia_over_bound'])} of the cells" if r["mia_over_bound"] > 0 else ""),
            fmt.num(r["mia_tpr"]) if not fmt.missing(r["mia_tpr"]) else fmt.NOT_MEASURED,
            fmt.count(r["records_moved"]),
            fmt.megabytes(r["update_bytes"]),
            fmt.seconds(r["wall_s"]),
        ]
        if sweep:
            line.append(str(int(r["n_seeds"])))
        line.append(_verdict(r, first_screen, focus))
        rows.append(line)
    ceiling = table["ceiling"].mean() if not table.empty else float("nan")
    notes = [
        f"{label}: each agency scored on its own held-out test months, averaged with weights = test records.",
        "ε spent is each agency's spend to date: cumulative over all rounds, architectures and runs in its own ledger, at the δ its ledger pinned, for the neighbouring relation shown; the max over agencies is shown, never an average.",
        "Membership attack: AUC 0.5 means the attacker cannot tell training records from others; 'allowed by ε' is the highest AUC the claimed (ε, δ) permits.",
        "Wall times of federated architectures exclude Flower's one-off start-up"
        + (f" ({fmt.seconds(table['flower_startup_s'].mean())})." if not fmt.missing(table["flower_startup_s"].mean()) else "."),
        f"Ceiling (ground truth): {fmt.num(ceiling)}." if not fmt.missing(ceiling) else f"Ceiling (ground truth): {fmt.NOT_MEASURED} (no ground truth for these records).",
    ]
    return Table("comparison", "Architectures side by side", header, rows, " ".join(notes))


def per_agency(study: Study, focus: views.Focus) -> Table:
    """Each agency (smallest first): its size, its score under every architecture, ε spent
    against its budget, what left it."""
    rows = plots.movement_per_agency(study, focus)
    if rows.empty:
        return Table("per-agency", "Per agency", ["agency"], [], fmt.NOT_MEASURED)
    lines = sorted(set(rows["line"]), key=views.arch_order)
    dp_lines = [line for line in lines if rows.loc[rows["line"] == line, "is_dp"].any()]
    header = ["agency", "training records"] + [f"{line} {study.headline_label}" for line in lines]
    header += [f"{line} ε this run / spent to date / budget" for line in dp_lines] + ["ceiling", "raw records that left it", "model updates sent", "rounds without an update"]
    out = []
    small = set(plots.smallest(rows))
    highlight = set()
    for agency, group in rows.groupby("agency", sort=False):
        by_line = group.set_index("line")
        line = [agency + (" (smallest)" if agency in small else ""), fmt.count(group["n_train"].iloc[0])]
        line += [fmt.num(by_line["headline"].get(name)) for name in lines]
        for name in dp_lines:
            spent, cap = by_line["epsilon"].get(name), by_line["budget"].get(name)
            this_run = by_line["epsilon_this_run"].get(name) if "epsilon_this_run" in by_line else None
            known = this_run is not None and not fmt.missing(this_run)
            run_part = f"{fmt.eps(this_run)} / " if known else "— / "
            cell = f"{run_part}{fmt.eps(spent)} / {fmt.budget(cap)}" + (" OVER" if not fmt.missing(spent) and not fmt.missing(cap) and spent > cap * (1 + 1e-9) else "")
            line.append(cell + ("" if known else " (this run's ε not recorded)"))
        line += [
            fmt.num(group["ceiling"].iloc[0]) if not fmt.missing(group["ceiling"].iloc[0]) else fmt.NOT_MEASURED,
            _moved(group, "records_moved", fmt.count),
            _moved(group, "update_bytes_sent", fmt.megabytes),
            str(int(group["n_errors"].sum())),
        ]
        if agency in small:
            highlight.add(len(out))
        out.append(line)
    shown = focus.describe(study)
    return Table("per-agency", "Per agency", header, out, f"Shown: {shown}." if shown else "", highlight)


def _moved(group: pd.DataFrame, column: str, show) -> str:
    """The architectures under which something left this agency, with how much; "none" only
    when every architecture is known to have moved nothing."""
    parts = [f"{r['line']}: {show(r[column])}" for _, r in group.iterrows() if not fmt.missing(r[column]) and r[column] > 0]
    parts += [f"{r['line']}: not recorded" for _, r in group.iterrows() if fmt.missing(r[column])]
    return "; ".join(parts) if parts else "none"


def fairness(study: Study, focus: views.Focus) -> Table:
    """Per architecture at the focus setting: the worst and best agency, the spread, the smallest
    agencies' score, and for hotspot flags the largest quintile gap."""
    rows_all = views.focus_agencies(study, focus)
    small = set(plots.smallest(rows_all)) if not rows_all.empty else set()
    gaps = plots.quintile_gaps(study)
    gaps = views.at_focus(gaps, focus)
    label = study.headline_label
    header = ["architecture", f"worst agency {label}", f"best agency {label}", "spread (best − worst)", f"smallest agencies' mean {label}", "largest flag-vs-incident gap (quintile)"]
    out = []
    for line in sorted(set(rows_all["line"]) if not rows_all.empty else [], key=views.arch_order):
        group = rows_all[(rows_all["line"] == line) & rows_all["headline"].notna()]
        if group.empty:
            continue
        worst, best = group.sort_values("headline").iloc[0], group.sort_values("headline").iloc[-1]
        gap = gaps[gaps["line"] == line] if not gaps.empty else gaps
        gap_text = fmt.NOT_MEASURED
        if not gap.empty:
            g = gap.iloc[0]
            gap_text = f"{100 * g['gap']:.1f} points (quintile {g['quintile']}: {fmt.percent(g['flag_share'])} of flags vs {fmt.percent(g['target_share'])} of {g['reference']} incidents)"
        out.append(
            [
                line,
                f"{fmt.num(worst['headline'])} ({worst['agency']})",
                f"{fmt.num(best['headline'])} ({best['agency']})",
                fmt.num(best["headline"] - worst["headline"]),
                fmt.num(group.loc[group["agency"].isin(small), "headline"].mean()),
                gap_text,
            ]
        )
    disparity = views.at_focus(study.archs, focus).drop_duplicates("line")
    extra = [f"{r['line']}: {fmt.num(r['disparity'])}" for _, r in disparity.iterrows() if not fmt.missing(r["disparity"])]
    note = ("Disparity index from summary.json: " + "; ".join(extra) + ". ") if extra else ""
    shown = focus.describe(study)
    return Table("fairness", "Fairness", header, out, note + (f"Shown: {shown}." if shown else ""))
