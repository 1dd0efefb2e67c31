"""The report's figures, drawn with matplotlib's Agg canvas (no display, no pyplot state).

Each function returns a `Plot` (PNG bytes plus a caption that says what is shown and from which
numbers) or a `Missing` that says why the figure could not be drawn ("not measured"). The
fairness figures are in experiments/report/fairness_plots.py, what figures share in
experiments/report/figure.py (both re-exported here)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from experiments.report import fmt, views
from experiments.report.fairness_plots import fairness_quintiles, fairness_spread, quintile_gaps, spreads
from experiments.report.figure import Missing, Plot, _agency_label, _png, colour, marker, smallest
from experiments.report.load import Study

# --- privacy–utility curve ------------------------------------------------------------------------


def privacy_utility(study: Study) -> Plot | Missing:
    title = "Privacy–utility curve"
    table = views.summary_table(study)
    if table.empty or not table["is_dp"].any():
        return Missing("privacy-utility", title, "not measured: no differentially private architecture was run")
    if len(views.dp_budgets(study)) < 2:  # one point per line: the bars at that budget instead
        return Missing("privacy-utility", title, "one ε budget was run, so there is no curve: the bars show each architecture at that budget")
    dp = table[table["is_dp"] & table["eps_budget"].notna() & table["headline"].notna()]
    if dp.empty:
        return Missing("privacy-utility", title, "not measured: the DP architectures have no ε budget or no utility recorded")
    facets = sorted(set(table["facet"]))
    fig = Figure(figsize=(8, 3.6 * len(facets)), layout="constrained")
    axes = fig.subplots(len(facets), 1, squeeze=False)[:, 0]
    label = study.headline_label
    multi_seed = bool((table["n_seeds"] > 1).any())
    for ax, facet in zip(axes, facets, strict=True):
        rows = table[table["facet"] == facet]
        for line in sorted(set(rows.loc[rows["is_dp"], "line"]), key=views.arch_order):
            pts = rows[(rows["line"] == line) & rows["eps_budget"].notna() & rows["headline"].notna()].sort_values("eps_budget")
            if pts.empty:
                continue
            x, y = pts["eps_budget"].to_numpy(float), pts["headline"].to_numpy(float)
            err = np.vstack([y - pts["headline_min"].to_numpy(float), pts["headline_max"].to_numpy(float) - y])
            ax.errorbar(x, y, yerr=err if multi_seed else None, color=colour(line), marker=marker(line), capsize=3, label=line)
        styles = iter(("--", "-.", ":", (0, (5, 1)), (0, (1, 1))))
        for line in sorted(set(rows.loc[~rows["is_dp"], "line"]), key=views.arch_order):
            level = rows.loc[rows["line"] == line, "headline"].mean()
            if not math.isnan(level):
                ax.axhline(level, color=colour(line), linestyle=next(styles, "--"), linewidth=1.2, label=f"{line} (no DP): {level:.3f}")
        ceiling = rows["ceiling"].mean()
        if not math.isnan(ceiling):
            ax.axhline(ceiling, color="black", linestyle=":", linewidth=1.5, label=f"ceiling (ground truth): {ceiling:.3f}")
        ax.set_xscale("log")
        budgets = sorted(set(rows.loc[rows["is_dp"], "eps_budget"].dropna()))
        if budgets:
            ax.set_xticks(budgets, [f"{b:g}" for b in budgets])
            ax.minorticks_off()
        ax.set_xlabel("ε budget per agency (log scale)")
        ax.set_ylabel(f"{label} (higher is better)")
        ax.set_title(facet or "all agencies, test-weighted", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    seeds = int(table["n_seeds"].max())
    bars = f"Points are means over {seeds} seeds; bars span the lowest to the highest seed (min–max)" if multi_seed else "One seed per point: no error bars"
    caption = (
        f"{label} of every architecture on the agencies' held-out test months (test-weighted over agencies) "
        f"against the ε budget each agency was given. Lines: DP architectures; horizontal lines: architectures "
        f"without DP and the best score the synthetic ground truth allows. {bars}."
    )
    alt = f"{label} against ε budget for " + ", ".join(sorted(set(dp["line"]))) + ", with reference lines for the architectures without DP"
    return Plot(
        "privacy-utility",
        title,
        _png(fig),
        f"How {label} changes as each agency's ε budget grows (higher and further left is better).",
        alt,
        units=f"x: ε budget per agency (dimensionless, log scale; lower is more private); y: {label} on held-out test months ({_scale(study)})",
        detail=caption + " From summary.json: architectures.<arch>.metrics and each cell's privacy.epsilon.",
    )


def _scale(study: Study) -> str:
    """The headline metric's scale, in words."""
    if study.headline == "auc":
        return "AUC: 0.5 = chance, 1 = perfect ranking"
    if study.headline == "pai":
        return "PAI: 1 = chance, higher = more incidents per area flagged"
    return "higher is better"


# --- utility at one budget --------------------------------------------------------------------------


def utility_at_budget(study: Study, focus: views.Focus) -> Plot | Missing:
    """One bar per architecture at the focus setting: what the privacy–utility curve shows when
    only one ε budget was run (a curve of one point per line says little)."""
    name, label = "utility-at-budget", study.headline_label
    title = f"{label} of each architecture" + (f" at ε = {focus.eps:g}" if focus.eps is not None else "")
    if len(views.dp_budgets(study, focus.facet)) > 1:
        return Missing(name, title, "drawn as the privacy–utility curve above (several ε budgets were run)")
    table = views.focus_archs(study, focus)
    table = table[table["headline"].notna()] if not table.empty else table
    if table.empty:
        return Missing(name, title, f"{fmt.NOT_MEASURED}: no {label} recorded")
    lines = sorted(table["line"], key=views.arch_order)
    values = table.set_index("line")["headline"]
    fig = Figure(figsize=(9, 0.9 + 0.5 * len(lines)), layout="constrained")
    ax = fig.subplots()
    ax.barh(range(len(lines)), [values[line] for line in lines], color=[colour(line) for line in lines])
    low = min([float(values.min())] + ([study.chance] if study.chance is not None else []))
    high = float(values.max())
    ax.set_xlim(max(0.0, low - 0.05 * max(high, 1.0)) if study.headline == "auc" else 0.0, high + 0.12 * (high - low + 0.01) + 0.02)
    for i, line in enumerate(lines):
        ax.annotate(f"{values[line]:.3f}", (values[line], i), xytext=(4, 0), textcoords="offset points", va="center", fontsize=9)
    if study.chance is not None:
        ax.axvline(study.chance, color="grey", linestyle=":", linewidth=1.5, label=f"chance ({study.chance:g})")
    if "central" in values:
        ax.axvline(values["central"], color=colour("central"), linestyle="--", linewidth=1, label=f"pooled (central): {values['central']:.3f}")
    ax.set_yticks(range(len(lines)), lines, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel(f"{label} on the agencies' held-out test months, test-weighted (higher is better)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    shown = focus.describe(study)
    return Plot(
        name,
        title,
        _png(fig),
        f"Every architecture's {label} at the one ε budget run, against chance and pooling.",
        f"Bar chart of {label} per architecture at the configured budget",
        units=f"x: {label} ({_scale(study)}); rows: architectures",
        detail=(
            "With one ε budget the privacy–utility curve has one point per line, so bars replace it; run a sweep over "
            "privacy.epsilon (configs/sweep-epsilon.yaml) for the curve." + (f" Shown: {shown}." if shown else "")
            + f" From summary.json: architectures.<arch>.metrics.{study.headline}."
        ),
    )


# --- per-agency utility ---------------------------------------------------------------------------


def per_agency_utility(study: Study, focus: views.Focus) -> Plot | Missing:
    title = f"Each agency's {study.headline_label} under each architecture"
    rows = views.focus_agencies(study, focus)
    if rows.empty or rows["headline"].notna().sum() == 0:
        return Missing("per-agency-utility", title, "not measured: no per-agency scores in the results")
    agencies = rows.drop_duplicates("agency")  # already smallest first
    ypos = {name: i for i, name in enumerate(agencies["agency"])}
    fig = Figure(figsize=(9, 1.2 + 0.42 * len(ypos)), layout="constrained")
    ax = fig.subplots()
    lines = sorted(set(rows["line"]), key=views.arch_order)
    offsets = np.linspace(-0.25, 0.25, len(lines)) if len(lines) > 1 else [0.0]
    for offset, line in zip(offsets, lines, strict=True):
        pts = rows[(rows["line"] == line) & rows["headline"].notna()]
        ax.scatter(pts["headline"], [ypos[a] + offset for a in pts["agency"]], color=colour(line), marker=marker(line), s=36, label=line, zorder=3)
    ceiling = agencies[agencies["ceiling"].notna()]
    if not ceiling.empty:
        ax.scatter(ceiling["ceiling"], [ypos[a] for a in ceiling["agency"]], color="black", marker="|", s=300, label="ceiling (ground truth)", zorder=2)
    ax.set_yticks(range(len(ypos)), [_agency_label(r) for _, r in agencies.iterrows()], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"{study.headline_label} on the agency's own test months (higher is better)")
    ax.grid(axis="x", alpha=0.3)
    fig.legend(*ax.get_legend_handles_labels(), fontsize=8, loc="outside right upper")
    shown = focus.describe(study)
    caption = (
        f"Each agency's {study.headline_label} under every architecture, smallest agency at the top. "
        f"A federated marker to the right of 'local' means the agency gained from collaborating."
        + (f" Shown: {shown}." if shown else "")
    )
    return Plot(
        "per-agency-utility",
        title,
        _png(fig),
        f"Each agency's {study.headline_label} under every architecture: does collaborating help it?",
        f"Dot plot of each agency's {study.headline_label} under " + ", ".join(lines),
        units=f"x: {study.headline_label} on the agency's own held-out test months ({_scale(study)}); rows: agencies with their training records",
        detail=caption + " From summary.json: architectures.<arch>.per_agency.<agency>.metrics.",
    )


# --- ε per agency ---------------------------------------------------------------------------------


def epsilon_per_agency(study: Study, focus: views.Focus) -> Plot | Missing:
    title = "ε spent to date by each agency, against its budget"
    rows = views.focus_agencies(study, focus)
    rows = rows[rows["is_dp"]] if not rows.empty else rows
    if rows.empty:
        return Missing("epsilon-per-agency", title, "not measured: no differentially private architecture was run")
    if rows["epsilon"].notna().sum() == 0:
        return Missing("epsilon-per-agency", title, "not measured: no agency recorded a per-agency ε (agency-level DP reports one ε for the whole federation, in the table)")
    agencies = rows.drop_duplicates("agency")
    ypos = {name: i for i, name in enumerate(agencies["agency"])}
    lines = sorted(set(rows["line"]), key=views.arch_order)
    height = 0.8 / len(lines)
    fig = Figure(figsize=(8, 1.2 + 0.42 * len(ypos) * max(1, len(lines) / 2)), layout="constrained")
    ax = fig.subplots()
    for i, line in enumerate(lines):
        pts = rows[rows["line"] == line]
        y = [ypos[a] - 0.4 + height * (i + 0.5) for a in pts["agency"]]
        ax.barh(y, pts["epsilon"].fillna(0), height=height * 0.9, color=colour(line), label=f"{line} (ε spent)")
        for _, r in pts[pts["epsilon"].isna()].iterrows():
            ax.annotate(f"{line}: no ε recorded", (0, ypos[r["agency"]] - 0.4 + height * (i + 0.5)), fontsize=8, xytext=(4, 0), textcoords="offset points", va="center")
        over = pts[pts["epsilon"] > pts["budget"] * (1 + 1e-9)]
        for _, r in over.iterrows():
            ax.annotate("over budget", (r["epsilon"], ypos[r["agency"]]), fontsize=8, color="red", xytext=(4, 0), textcoords="offset points", va="center")
    budgets = rows[rows["budget"].notna()].drop_duplicates(["agency", "budget"])
    if not budgets.empty:
        y = np.array([ypos[a] for a in budgets["agency"]])
        ax.vlines(budgets["budget"], y - 0.45, y + 0.45, color="black", linewidth=2.5, label="budget", zorder=4)
    top = np.nanmax(np.concatenate([rows["epsilon"].to_numpy(float), rows["budget"].to_numpy(float)]))
    ax.set_xlim(0, 1.12 * top)
    ax.set_yticks(range(len(ypos)), [_agency_label(r) for _, r in agencies.iterrows()], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("ε spent over the whole run (cumulative; lower is more private)")
    ax.grid(axis="x", alpha=0.3)
    fig.legend(*ax.get_legend_handles_labels(), fontsize=8, loc="outside lower center", ncol=len(lines) + 1)
    shown = focus.describe(study)
    caption = (
        "Cumulative ε each agency spent over all rounds (bars) against the budget it was given (black tick), "
        "computed by its accountant before each update left it." + (f" Shown: {shown}." if shown else "")
    )
    return Plot(
        "epsilon-per-agency",
        title,
        _png(fig),
        "The privacy budget each agency has spent, against the budget it set.",
        "Bar chart of ε spent per agency against its budget for " + ", ".join(lines),
        units="x: ε spent to date (dimensionless, cumulative over all rounds; lower is more private); black tick: the agency's ε budget",
        detail=caption + " From summary.json: architectures.<arch>.per_agency.<agency>.epsilon and .epsilon_budget.",
    )


# --- data movement --------------------------------------------------------------------------------


def movement_per_agency(study: Study, focus: views.Focus) -> pd.DataFrame:
    """Records and bytes that left each agency under each architecture. A per-agency count the
    results do not hold is known to be 0 when the architecture's total is 0, else left NaN."""
    rows = views.focus_agencies(study, focus)
    if rows.empty:
        return rows
    archs = views.at_focus(study.archs, focus).drop_duplicates("line").set_index("line")
    rows = rows.copy()
    for column, total in (("records_moved", "records_moved"), ("update_bytes_sent", "update_bytes")):
        known_zero = rows["line"].map(lambda line, total=total: archs[total].get(line) == 0)
        rows.loc[rows[column].isna() & known_zero, column] = 0.0
    return rows


def data_movement(study: Study, focus: views.Focus) -> Plot | Missing:
    title = "Raw records and model updates that left the agencies"
    rows = movement_per_agency(study, focus)
    totals = views.focus_archs(study, focus)
    if rows.empty or totals.empty:
        return Missing("data-movement", title, "not measured: no per-agency results")
    agencies = rows.drop_duplicates("agency")
    ypos = {name: i for i, name in enumerate(agencies["agency"])}
    lines = sorted(set(rows["line"]), key=views.arch_order)
    height = 0.8 / len(lines)
    fig = Figure(figsize=(11, 1.6 + 0.45 * len(ypos) * max(1, len(lines) / 3)), layout="constrained")
    ax_rec, ax_mb = fig.subplots(1, 2, width_ratios=[1, 1.6])
    # Left: raw records per architecture, summed over agencies (always known, unlike per agency).
    order = sorted(totals["line"], key=views.arch_order)
    records = totals.set_index("line")["records_moved"]
    values = [records.get(line, math.nan) for line in order]
    ax_rec.barh(range(len(order)), np.nan_to_num(values), color=[colour(line) for line in order])
    top = max([v for v in values if not math.isnan(v)], default=0.0)
    for i, v in enumerate(values):
        # White inside a long bar, black where the bar is short or absent.
        inside = not math.isnan(v) and v > 0.25 * top
        ax_rec.annotate("not recorded" if math.isnan(v) else f"{v:,.0f}", (0, i), xytext=(4, 0), textcoords="offset points", va="center", fontsize=9, color="white" if inside else "black")
    ax_rec.set_yticks(range(len(order)), order, fontsize=8)
    ax_rec.invert_yaxis()
    ax_rec.set_xlim(0, max(1.0, top) * 1.05)
    ax_rec.xaxis.set_major_locator(MaxNLocator(4))
    ax_rec.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))
    ax_rec.set_xlabel("raw records that left the agencies (all agencies)")
    ax_rec.grid(axis="x", alpha=0.3)
    # Right: megabytes of model updates per agency.
    for i, line in enumerate(lines):
        pts = rows[rows["line"] == line]
        y = [ypos[a] - 0.4 + height * (i + 0.5) for a in pts["agency"]]
        ax_mb.barh(y, pts["update_bytes_sent"].fillna(0) / 1e6, height=height * 0.9, color=colour(line), label=line)
    ax_mb.set_yticks(range(len(ypos)), [_agency_label(r) for _, r in agencies.iterrows()], fontsize=8)
    ax_mb.invert_yaxis()
    ax_mb.set_xlabel("MB of model updates each agency sent (whole run)")
    ax_mb.grid(axis="x", alpha=0.3)
    fig.legend(*ax_mb.get_legend_handles_labels(), fontsize=8, loc="outside lower center", ncol=len(lines))
    shown = focus.describe(study)
    caption = (
        "Left: raw incident records that left the agencies under each architecture (pooling copies records out; "
        "per-agency counts are in the table below the per-agency figure). Right: megabytes of model updates each agency "
        "sent to the coordinator over all rounds (architectures that send nothing have no bar)." + (f" Shown: {shown}." if shown else "")
    )
    return Plot(
        "data-movement",
        title,
        _png(fig),
        "What each architecture moves out of the agencies: raw records, or model updates.",
        "Bar charts of raw records moved per architecture and megabytes of updates sent per agency",
        units="left: raw incident records (count, all agencies); right: model updates sent (MB = 10⁶ bytes, whole run, per agency)",
        detail=caption + " From summary.json: architectures.<arch>.records_moved, .update_bytes and per_agency.<agency>.update_bytes_sent.",
    )


__all__ = ["Missing", "Plot", "_png", "all_plots", "colour", "marker", "quintile_gaps", "smallest", "spreads", "utility_at_budget"]


def all_plots(study: Study, focus: views.Focus) -> list[Plot | Missing]:
    return [
        privacy_utility(study),
        utility_at_budget(study, focus),
        per_agency_utility(study, focus),
        epsilon_per_agency(study, focus),
        data_movement(study, focus),
        fairness_spread(study, focus),
        fairness_quintiles(study, focus),
    ]
