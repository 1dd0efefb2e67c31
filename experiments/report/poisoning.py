"""Utility under attack: what one agency's poisoned updates (faults.malicious) did to each
federated architecture under each aggregator (federation.aggregator), against the clean runs.

Every sentence is chosen from the numbers: whether an aggregator held, and by how many points."""

from __future__ import annotations

import dataclasses
import math
import re

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from experiments.report import fmt, views
from experiments.report.load import Study
from experiments.report.plots import Missing, Plot, _png, colour
from experiments.report.tables import Table
from federation import architectures

CLEAN = "none"
# Below this change (in points of the headline metric ×100) a model "held".
HELD_POINTS = 1.0
# A robust aggregator under attack "keeps" the clean plain-averaging model within this many points.
KEEP_POINTS = 3.0
HATCHES = (None, "//", "..", "xx", "\\\\")  # one per attack when a study has several
# What each aggregator is, in words.
AGGREGATOR = {
    "fedavg": "plain averaging (weighted by records)",
    "median": "the coordinate-wise median",
    "trimmed_mean": "a trimmed mean",
    "krum": "Krum (one agency's update)",
    "clipped_mean": "the mean of updates clipped to a norm (agency-level DP)",
}


def without_attacks(study: Study) -> Study:
    """The study without its attacked lines: the general reading (DP against pooling, noise
    against chance, spreads) must not blame DP or federation for what an attacker did; this
    section reads those lines."""
    archs = study.archs
    if archs.empty or "poisoning" not in archs:
        return study
    attacked = set(archs.loc[archs["poisoning"].notna() & (archs["poisoning"] != CLEAN), "line"])
    if not attacked:
        return study
    keep = {name: frame[~frame["line"].isin(attacked)] if not frame.empty else frame for name, frame in (("archs", study.archs), ("agencies", study.agencies), ("quintiles", study.quintiles))}
    return dataclasses.replace(study, **keep)


def outcomes(study: Study) -> pd.DataFrame:
    """Seed means of the headline per (architecture, ε budget, aggregator, attack) for the
    federated architectures whose summary states an aggregator; empty when none does."""
    archs = study.archs
    if archs.empty or "aggregator" not in archs or archs["aggregator"].isna().all():
        return pd.DataFrame()
    rows = archs[archs["aggregator"].notna()].assign(poisoning=lambda f: f["poisoning"].fillna(CLEAN), eps=lambda f: f["eps_budget"].fillna(-1.0))
    grouped = rows.groupby(["facet", "setting", "architecture", "eps", "aggregator", "poisoning"], sort=False)
    out = grouped["headline"].agg(["mean", "min", "max"]).rename(columns={"mean": "headline", "min": "lo", "max": "hi"})
    out["n_seeds"] = grouped["seed"].nunique().clip(lower=1)
    out["clipping_norm"] = grouped["clipping_norm"].first()
    out = out.reset_index()
    order = list(AGGREGATOR)
    out["_order"] = [(views.arch_order(s), order.index(g) if g in order else len(order), g, p != CLEAN, p) for s, g, p in zip(out["setting"], out["aggregator"], out["poisoning"], strict=True)]
    return out.sort_values(["facet", "_order", "eps"]).drop(columns="_order").reset_index(drop=True)


def _clean(table: pd.DataFrame, row: pd.Series, aggregator: str | None = None) -> float:
    """The clean run's headline of `row`'s architecture (same facet and ε), under `aggregator`
    (None: `row`'s own); NaN when it was not run."""
    same = table[(table["facet"] == row["facet"]) & (table["setting"] == row["setting"]) & (table["eps"] == row["eps"]) & (table["poisoning"] == CLEAN)]
    same = same[same["aggregator"] == (aggregator or row["aggregator"])]
    return float(same["headline"].iloc[0]) if not same.empty else math.nan


def _who(row: pd.Series) -> str:
    """The architecture and its non-poisoning settings, e.g. "fedavg-dp at ε = 1"."""
    return str(row["setting"]) + (f" at ε = {fmt.budget(row['eps'])}" if row["eps"] >= 0 else "")


def _tick(row: pd.Series) -> str:
    """A short x label, one item a line: architecture, its other settings, ε, aggregator."""
    arch, _, rest = str(row["setting"]).partition(" (")
    settings = [part for part in re.sub(r"privacy\.(central\.)?", "", rest.rstrip(")")).split(", ") if part]
    eps = [f"ε = {fmt.budget(row['eps'])}"] if row["eps"] >= 0 else []
    return "\n".join([arch, *settings, *eps, str(row["aggregator"])])


def _points(change: float) -> str:
    if fmt.missing(change):
        return "–"
    return "±0.0 points" if round(100 * change, 1) == 0 else f"{100 * change:+.1f} points"


def _averaging(row: pd.Series) -> str:
    """The aggregator of an architecture's reference run: its plain average (its registry entry's
    own aggregator when it allows only one, e.g. the clipped mean of central DP)."""
    known = architectures.find(str(row["architecture"]))
    return known.aggregators[0] if known is not None and known.aggregators and not known.robust else "fedavg"


def table(study: Study) -> Table:
    """One row per architecture, aggregator and attack: utility, and its change against the
    clean run with the same aggregator and against the clean plain-averaging run."""
    label = study.headline_label
    rows = outcomes(study)
    header = ["architecture", "aggregator", "attack", f"{label}" + (" mean (min–max over seeds)" if study.kind == "sweep" else ""), "vs clean, same aggregator", "vs clean plain averaging"]
    if rows.empty:
        return Table("poisoning", "Utility under attack", header, [], f"{fmt.NOT_MEASURED}: no federated architecture in these results states its aggregator.")
    show_facet = rows["facet"].nunique() > 1 or bool(rows["facet"].iloc[0])
    out, highlight = [], set()
    for _, r in rows.iterrows():
        value = fmt.num(r["headline"]) + (f" ({fmt.num(r['lo'])}–{fmt.num(r['hi'])})" if r["n_seeds"] > 1 and not fmt.missing(r["headline"]) else "")
        attacked = r["poisoning"] != CLEAN
        line = ([r["facet"]] if show_facet else []) + [
            _who(r),
            AGGREGATOR.get(str(r["aggregator"]), str(r["aggregator"])) + (f", C = {fmt.budget(r['clipping_norm'])}" if not fmt.missing(r["clipping_norm"]) else ""),
            "none (clean)" if not attacked else str(r["poisoning"]),
            value,
            _points(r["headline"] - _clean(rows, r)) if attacked else "— (the clean run)",
            _points(r["headline"] - _clean(rows, r, _averaging(r))) if attacked or r["aggregator"] != _averaging(r) else "— (the reference)",
        ]
        if attacked:
            highlight.add(len(out))
        out.append(line)
    note = (
        f"Points are 100 × the change in {label}. The attacker trains honestly, then manipulates its update Δ = trained − global "
        "(scale: global + factor·Δ; sign flip: global − factor·Δ; noise: + N(0, factor²) per parameter) before it leaves; its DP "
        "training and budget charge are unchanged — DP bounds what an update reveals about records, not how far a lying agency moves "
        "the model. federation.aggregator applies to fedavg and fedavg-dp; fedavg-dp-secagg sees only the masked sum and always "
        "averages; fedavg-central-dp keeps the clipped mean its noise is calibrated to, and that clipping bounds any one update."
    )
    return Table("poisoning", "Utility under attack", header if not show_facet else ["setting", *header], out, note, highlight)


def held_sentence(label: str, architecture: str, aggregator: str, attack: str, attacked: float, clean_same: float, clean_avg: float, clipping_norm: float | None = None) -> str:
    """How one aggregator of `architecture` fared under `attack`, from its numbers."""
    how = AGGREGATOR.get(aggregator, aggregator)
    if aggregator == "clipped_mean" and not fmt.missing(clipping_norm):
        how = f"the mean of updates clipped to norm C = {clipping_norm:g}"
    if fmt.missing(attacked) or fmt.missing(clean_same):
        return f"Under attack ({attack}), {architecture} with {how}: {label} {fmt.num(attacked)}; its clean run {fmt.NOT_MEASURED}."
    drop = 100 * (clean_same - attacked)
    head = f"Under attack ({attack}), {architecture} with {how}"
    if abs(drop) < HELD_POINTS:
        text = f"{head} held: {label} {fmt.num(attacked)} against {fmt.num(clean_same)} clean ({_points(attacked - clean_same)})"
    elif drop > 0:
        text = f"{head} fell from {label} {fmt.num(clean_same)} to {fmt.num(attacked)} ({_points(attacked - clean_same)})"
    else:
        text = f"{head} rose from {label} {fmt.num(clean_same)} to {fmt.num(attacked)} ({_points(attacked - clean_same)})"
    if not fmt.missing(clean_avg) and aggregator not in ("fedavg", "clipped_mean"):
        gap = 100 * (clean_avg - attacked)
        where = "within" if gap <= KEEP_POINTS else "more than"
        text += f"; that is {where} {KEEP_POINTS:g} points {'of' if gap <= KEEP_POINTS else 'below'} the clean plain-averaging run ({fmt.num(clean_avg)}, {_points(attacked - clean_avg)})"
    if aggregator == "clipped_mean" and abs(drop) < HELD_POINTS:
        text += ": clipping every update bounds what one agency can add, whatever it scales its update by"
    elif _trainer(architecture) == "secagg":
        text += ": its coordinator sees only the masked sum, so it cannot aggregate robustly"
    return text + "."


def _trainer(architecture: str) -> str | None:
    known = architectures.find(architecture)
    return known.trainer if known is not None else None


def sentences(study: Study) -> list[str]:
    """One sentence per attacked (architecture, aggregator), in table order; the aggregator and
    attack of a single run when nothing was attacked."""
    rows = outcomes(study)
    if rows.empty:
        return []
    attacked = rows[rows["poisoning"] != CLEAN]
    if attacked.empty:
        used = ", ".join(f"{a}: {AGGREGATOR.get(str(g), str(g))}" for a, g in rows.drop_duplicates("architecture")[["architecture", "aggregator"]].itertuples(index=False))
        return [f"No agency sent poisoned updates (faults.malicious not set); aggregators: {used}."]
    return [
        held_sentence(
            study.headline_label,
            _who(r),
            str(r["aggregator"]),
            str(r["poisoning"]),
            r["headline"],
            _clean(rows, r),
            _clean(rows, r, _averaging(r)),
            r["clipping_norm"],
        )
        for _, r in attacked.iterrows()
    ]


def plot(study: Study) -> Plot | Missing:
    """Clean against attacked utility per architecture and aggregator, one bar per attack
    (seed means; whiskers span the seeds)."""
    name, title = "utility-under-attack", "Clean against poisoned: each aggregator's utility"
    rows = outcomes(study)
    attacked = rows[rows["poisoning"] != CLEAN] if not rows.empty else rows
    if attacked.empty:
        return Missing(name, title, f"{fmt.NOT_MEASURED}: no agency sent poisoned updates in these results (faults.malicious).")
    variants = [CLEAN, *sorted(set(attacked["poisoning"]))]
    style = {CLEAN: (0.35, None)} | {v: (1.0, HATCHES[i % len(HATCHES)]) for i, v in enumerate(variants[1:])}
    width = 0.8 / len(variants)
    groups = attacked.drop_duplicates(["facet", "setting", "eps", "aggregator"])
    fig = Figure(figsize=(max(6.0, 0.55 * len(groups) * len(variants) + 2.5), 4.6))
    ax = fig.add_subplot()
    ticks = []
    for i, (_, g) in enumerate(groups.iterrows()):
        same = rows[(rows["facet"] == g["facet"]) & (rows["setting"] == g["setting"]) & (rows["eps"] == g["eps"]) & (rows["aggregator"] == g["aggregator"])]
        for j, variant in enumerate(variants):
            frame = same[same["poisoning"] == variant]
            if frame.empty:
                continue
            r, (alpha, hatch) = frame.iloc[0], style[variant]
            err = [[r["headline"] - r["lo"]], [r["hi"] - r["headline"]]] if r["n_seeds"] > 1 else None
            ax.bar(i + (j - (len(variants) - 1) / 2) * width, r["headline"], width * 0.95, color=colour(str(g["architecture"])), alpha=alpha, hatch=hatch, edgecolor="white", yerr=err, capsize=3)
        ticks.append(_tick(g))
    ax.set_xticks(range(len(ticks)), ticks, fontsize=7)
    if study.chance is not None:
        ax.axhline(study.chance, color="grey", linestyle=":", linewidth=1)
    low = min(v for v in [rows["lo"].min(), study.chance] if v is not None and not fmt.missing(v))
    ax.set_ylim(max(0.0, low - 0.05), min(1.0, rows["hi"].max() + 0.03) if study.headline == "auc" else None)
    ax.set_ylabel(study.headline_label)
    handles = [Patch(facecolor="grey", alpha=style[v][0], hatch=style[v][1], edgecolor="white", label="clean" if v == CLEAN else v) for v in variants]
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("clean (light) and attacked (dark)" + (f"; dotted: chance, {study.chance:g}" if study.chance is not None else ""), fontsize=9)
    fig.tight_layout()
    caption = (
        f"{study.headline_label} of each federated architecture and aggregator, clean (light) and with one agency's poisoned "
        "updates (dark, one bar per attack); seed means, whiskers min–max over seeds. From summary.json (aggregator, attack, metrics)."
    )
    return Plot(
        name,
        title,
        _png(fig),
        f"How far one agency's poisoned updates moved each architecture's {study.headline_label}, per aggregator.",
        f"Bar chart of {study.headline_label} clean and attacked per architecture and aggregator",
        units=f"y: {study.headline_label} on the agencies' held-out test months, test-weighted; bars: architecture × aggregator",
        detail=caption,
    )
