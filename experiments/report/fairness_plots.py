"""The report's fairness figures and tables: the spread of the headline metric across agencies,
and hotspot flags against incidents per deprivation quintile (experiments/report/plots.py draws
the others and lists them all)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from experiments.report import views
from experiments.report.figure import Missing, Plot, _png, colour, marker, smallest
from experiments.report.load import Study

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
    title = f"Spread of {study.headline_label} across agencies"
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
    return Plot(
        "fairness-agencies",
        title,
        _png(fig),
        f"How unequal {study.headline_label} is across agencies under each architecture, smallest agencies in red.",
        f"Spread of {study.headline_label} across agencies per architecture, smallest agencies in red",
        units=f"y: {study.headline_label} per agency on its own test months; dot area ∝ training records" + ("; right: best − worst agency against ε (dimensionless, log scale)" if sweep_panel else ""),
        detail=caption + " From summary.json: architectures.<arch>.per_agency.<agency>.metrics.",
    )


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
    return Plot(
        "fairness-quintiles",
        title,
        _png(fig),
        "Whether hotspot flags fall on deprived areas more than their incidents do.",
        "Grouped bars of flag share and incident share per deprivation quintile",
        units="y: share of flags or incidents per deprivation quintile (0–1; 1 = most deprived)" + ("; right: largest gap in percentage points against ε" if sweep_panel else ""),
        detail=caption + " From summary.json: architectures.<arch>.fairness.quintiles.",
    )
