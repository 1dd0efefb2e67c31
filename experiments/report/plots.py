"""The report's figures, drawn with matplotlib's Agg canvas (no display, no pyplot state).

Each function returns a `Plot` (PNG bytes plus a caption that says what is shown and from which
numbers) or a `Missing` that says why the figure could not be drawn ("not measured")."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from experiments.report import views
from experiments.report.load import Study
from federation import architectures

# Labels are agency names and config values, never markup: with math parsing on, a name such as
# "$\fakecmd{x}$ Police" is read as TeX and fails the whole figure (and the report). Text objects
# read this when they are made, tick labels at draw time, so it is set for the process.
matplotlib.rcParams["text.parse_math"] = False

# Colours and markers by the architecture's place in the registry (declaration order), so every
# report draws one architecture alike; architectures past the palette, and variants, get OTHER_COLOURS.
PALETTE = ("#4d4d4d", "#a6761d", "#1f77b4", "#d62728", "#ff7f0e", "#2ca02c")
OTHER_COLOURS = ("#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
MARKER_CYCLE = ("s", "o", "D", "^", "v", "P")
SMALL_SHARE = 0.25  # "smallest agencies": the quarter with the fewest training records (at least one)


@dataclass
class Plot:
    name: str  # file stem: <name>.png
    title: str
    png: bytes
    caption: str
    alt: str


@dataclass
class Missing:
    name: str
    title: str
    reason: str


def colour(line: str) -> str:
    """A fixed colour per architecture; variants such as "fedavg-dp (privacy.delta=1e-06)" get
    their own, chosen from the name so that it does not change between reports."""
    place = architectures.order(line)
    return PALETTE[place] if place < len(PALETTE) else OTHER_COLOURS[sum(map(ord, line)) % len(OTHER_COLOURS)]


def marker(line: str) -> str:
    place = architectures.order(line.split(" (")[0])
    return MARKER_CYCLE[place] if place < len(MARKER_CYCLE) else "o"


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    # No "Software" text chunk: the same numbers give the same bytes across matplotlib versions.
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()


def smallest(agencies: pd.DataFrame) -> list[str]:
    """Names of the smallest agencies by training records (the bottom quarter, at least one)."""
    sizes = agencies.drop_duplicates("agency").sort_values(["n_train", "agency"])
    k = max(1, int(len(sizes) * SMALL_SHARE))
    return list(sizes["agency"].head(k))


def _agency_label(row: pd.Series) -> str:
    n = row["n_train"]
    return f"{row['agency']} ({int(n):,} train)" if not math.isnan(n) else str(row["agency"])


# --- privacy–utility curve ------------------------------------------------------------------------


def privacy_utility(study: Study) -> Plot | Missing:
    title = "Privacy–utility curve"
    table = views.summary_table(study)
    if table.empty or not table["is_dp"].any():
        return Missing("privacy-utility", title, "not measured: no differentially private architecture was run")
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
    return Plot("privacy-utility", title, _png(fig), caption, alt)


# --- per-agency utility ---------------------------------------------------------------------------


def per_agency_utility(study: Study, focus: views.Focus) -> Plot | Missing:
    title = "Per-agency utility: alone or together"
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
    return Plot("per-agency-utility", title, _png(fig), caption, f"Dot plot of each agency's {study.headline_label} under " + ", ".join(lines))


# --- ε per agency ---------------------------------------------------------------------------------


def epsilon_per_agency(study: Study, focus: views.Focus) -> Plot | Missing:
    title = "Privacy budget spent per agency"
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
    return Plot("epsilon-per-agency", title, _png(fig), caption, "Bar chart of ε spent per agency against its budget for " + ", ".join(lines))


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
    title = "What left each agency"
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
    return Plot("data-movement", title, _png(fig), caption, "Bar charts of raw records moved per architecture and megabytes of updates sent per agency")


# --- fairness -------------------------------------------------------------------------------------


def spreads(study: Study) -> pd.DataFrame:
    """Per (cell, line): the range of the headline metric across agencies, and its worst agency."""
    rows = study.agencies
    if rows.empty:
        return pd.DataFrame(columns=["cell", "facet", "line", "is_dp", "eps_budget", "min", "max", "range", "worst"])
    out = []
    for (cell, line), group in rows[rows["headline"].notna()].groupby(["cell", "line"], sort=False):
        worst = group.sort_values("headline").iloc[0]
        out.append(
            {
                "cell": cell,
                "facet": group["facet"].iloc[0],
                "line": line,
                "is_dp": bool(group["is_dp"].iloc[0]),
                "eps_budget": group["eps_budget"].iloc[0],
                "min": group["headline"].min(),
                "max": group["headline"].max(),
                "range": group["headline"].max() - group["headline"].min(),
                "worst": worst["agency"],
            }
        )
    return pd.DataFrame(out)


def fairness_spread(study: Study, focus: views.Focus) -> Plot | Missing:
    title = "Fairness across agencies"
    rows = views.focus_agencies(study, focus)
    rows = rows[rows["headline"].notna()] if not rows.empty else rows
    if rows.empty:
        return Missing("fairness-agencies", title, "not measured: no per-agency scores in the results")
    spread = spreads(study)
    sweep_panel = study.kind == "sweep" and len(views.dp_budgets(study, focus.facet)) > 1
    fig = Figure(figsize=(10 if sweep_panel else 8, 4), layout="constrained")
    axes = fig.subplots(1, 2 if sweep_panel else 1, squeeze=False)[0]
    ax = axes[0]
    small = set(smallest(rows))
    lines = sorted(set(rows["line"]), key=views.arch_order)
    sizes = rows["n_train"].fillna(rows["n_train"].median())
    scale = 300 / math.sqrt(max(sizes.max(), 1))
    for x, line in enumerate(lines):
        pts = rows[rows["line"] == line]
        ax.vlines(x, pts["headline"].min(), pts["headline"].max(), color=colour(line), linewidth=3, alpha=0.35)
        for _, r in pts.iterrows():
            is_small = r["agency"] in small
            s = max(12.0, scale * math.sqrt(r["n_train"] if not math.isnan(r["n_train"]) else 1))
            ax.scatter(x, r["headline"], s=s, color="red" if is_small else colour(line), edgecolor="black" if is_small else "none", zorder=3, alpha=0.8)
    ax.scatter([], [], color="red", edgecolor="black", label=f"smallest agencies ({', '.join(sorted(small))})")
    ax.set_xticks(range(len(lines)), lines, rotation=20, fontsize=8)
    ax.set_ylabel(f"{study.headline_label} per agency")
    ax.set_title("spread across agencies (dot area ∝ training records)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    if sweep_panel:
        ax2 = axes[1]
        sub = spread[spread["facet"] == focus.facet]
        for line in sorted(set(sub.loc[sub["is_dp"], "line"]), key=views.arch_order):
            pts = sub[sub["line"] == line].groupby("eps_budget")["range"].mean().sort_index()
            ax2.plot(pts.index, pts.to_numpy(), color=colour(line), marker=marker(line), label=line)
        for line in sorted(set(sub.loc[~sub["is_dp"], "line"]), key=views.arch_order):
            ax2.axhline(sub.loc[sub["line"] == line, "range"].mean(), color=colour(line), linestyle="--", linewidth=1, label=f"{line} (no DP)")
        ax2.set_xscale("log")
        budgets = views.dp_budgets(study, focus.facet)
        ax2.set_xticks(budgets, [f"{b:g}" for b in budgets])
        ax2.minorticks_off()
        ax2.set_xlabel("ε budget per agency (log scale)")
        ax2.set_ylabel(f"best − worst agency {study.headline_label} (lower is fairer)")
        ax2.set_title("spread against ε (mean over seeds)", fontsize=10)
        ax2.grid(alpha=0.3)
        ax2.legend(fontsize=7)
    shown = focus.describe(study)
    caption = (
        f"Each dot is one agency's {study.headline_label}; the bar spans the worst to the best agency. Red dots are the "
        f"smallest agencies by training records (the quarter with the fewest, at least one)."
        + (" Right: that spread against the ε budget." if sweep_panel else "")
        + (f" Shown: {shown}." if shown else "")
    )
    return Plot("fairness-agencies", title, _png(fig), caption, f"Spread of {study.headline_label} across agencies per architecture, smallest agencies in red")


def quintile_gaps(study: Study) -> pd.DataFrame:
    """Per (cell, line): the largest gap, in share points, between a deprivation quintile's share of
    flags and its share of true incidents (recorded incidents when there is no ground truth)."""
    q = study.quintiles
    out = []
    for (cell, line), group in q.groupby(["cell", "line"], sort=False):
        reference = "true" if group["true_share"].notna().all() else "recorded"
        target = group[f"{reference}_share"]
        if target.isna().all() or group["flag_share"].isna().all():
            continue
        diff = group["flag_share"] - target
        worst = diff.abs().idxmax()
        out.append(
            {
                "cell": cell,
                "facet": group["facet"].iloc[0],
                "line": line,
                "is_dp": bool(group["is_dp"].iloc[0]),
                "eps_budget": group["eps_budget"].iloc[0],
                "gap": float(diff.abs().max()),
                "quintile": group.loc[worst, "quintile"],
                "flag_share": float(group.loc[worst, "flag_share"]),
                "target_share": float(target[worst]),
                "reference": reference,
            }
        )
    return pd.DataFrame(out, columns=["cell", "facet", "line", "is_dp", "eps_budget", "gap", "quintile", "flag_share", "target_share", "reference"])


def fairness_quintiles(study: Study, focus: views.Focus) -> Plot | Missing:
    title = "Who gets flagged: deprivation quintiles"
    q = study.quintiles
    if q.empty:
        reason = "not measured: this task flags no areas" if study.task != "hotspot" else "not measured: the results hold no per-quintile flag shares"
        return Missing("fairness-quintiles", title, reason)
    rows = views.at_focus(q, focus)
    if rows.empty:
        return Missing("fairness-quintiles", title, "not measured for the setting shown")
    gaps = quintile_gaps(study)
    sweep_panel = study.kind == "sweep" and len(views.dp_budgets(study, focus.facet)) > 1 and not gaps.empty
    fig = Figure(figsize=(10 if sweep_panel else 8, 4), layout="constrained")
    axes = fig.subplots(1, 2 if sweep_panel else 1, squeeze=False)[0]
    ax = axes[0]
    quintiles = sorted(set(rows["quintile"]), key=str)
    lines = sorted(set(rows["line"]), key=views.arch_order)
    first = rows.drop_duplicates("quintile").set_index("quintile")
    width = 0.8 / (len(lines) + 2)
    x = np.arange(len(quintiles))
    series = [("true incidents", first["true_share"], "white", "//"), ("recorded incidents", first["recorded_share"], "#cccccc", None)]
    k = 0
    for label, shares, face, hatch in series:
        values = [shares.get(qq, math.nan) for qq in quintiles]
        if not all(math.isnan(v) for v in values):
            ax.bar(x - 0.4 + width * (k + 0.5), np.nan_to_num(values), width, color=face, edgecolor="black", hatch=hatch, label=f"share of {label}")
            k += 1
    for line in lines:
        shares = rows[rows["line"] == line].drop_duplicates("quintile").set_index("quintile")["flag_share"]
        ax.bar(x - 0.4 + width * (k + 0.5), [shares.get(qq, 0.0) for qq in quintiles], width, color=colour(line), label=f"share of flags: {line}")
        k += 1
    ax.set_xticks(x, [f"quintile {qq}" for qq in quintiles], fontsize=8)
    ax.set_ylabel("share")
    ax.set_title("share of flags vs share of incidents", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    if sweep_panel:
        ax2 = axes[1]
        sub = gaps[gaps["facet"] == focus.facet]
        for line in sorted(set(sub.loc[sub["is_dp"], "line"]), key=views.arch_order):
            pts = sub[sub["line"] == line].groupby("eps_budget")["gap"].mean().sort_index()
            ax2.plot(pts.index, 100 * pts.to_numpy(), color=colour(line), marker=marker(line), label=line)
        for line in sorted(set(sub.loc[~sub["is_dp"], "line"]), key=views.arch_order):
            ax2.axhline(100 * sub.loc[sub["line"] == line, "gap"].mean(), color=colour(line), linestyle="--", linewidth=1, label=f"{line} (no DP)")
        ax2.set_xscale("log")
        budgets = views.dp_budgets(study, focus.facet)
        ax2.set_xticks(budgets, [f"{b:g}" for b in budgets])
        ax2.minorticks_off()
        ax2.set_xlabel("ε budget per agency (log scale)")
        ax2.set_ylabel("largest gap, percentage points (lower is fairer)")
        ax2.set_title("largest flag-vs-incident gap against ε (mean over seeds)", fontsize=10)
        ax2.grid(alpha=0.3)
        ax2.legend(fontsize=7)
    shown = focus.describe(study)
    caption = (
        "For each area-deprivation quintile: its share of the areas flagged as hotspots against its share of true incidents "
        "(synthetic ground truth) and of recorded incidents. A quintile whose flag share is far above its incident share is over-policed by the model."
        + (" Right: the largest gap against ε." if sweep_panel else "")
        + (f" Shown: {shown}." if shown else "")
    )
    return Plot("fairness-quintiles", title, _png(fig), caption, "Grouped bars of flag share and incident share per deprivation quintile")


def all_plots(study: Study, focus: views.Focus) -> list[Plot | Missing]:
    return [
        privacy_utility(study),
        per_agency_utility(study, focus),
        epsilon_per_agency(study, focus),
        data_movement(study, focus),
        fairness_spread(study, focus),
        fairness_quintiles(study, focus),
    ]
