"""The slices of a study the report shows: seed means per architecture and ε, and the one
"focus" setting (one ε, one seed) whose per-agency numbers the per-agency figures show."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from experiments.report.load import Study
from federation import architectures

MEAN_COLUMNS = ("headline", "auc", "records_moved", "update_bytes", "wall_s", "mia_auc", "mia_tpr", "mia_bound", "eps_lower", "eps_ceiling", "eps_claimed", "disparity", "ceiling", "flower_startup_s")


def arch_order(name: str) -> tuple[int, str]:
    """Tables and legends list architectures in the registry's order (others follow, by name)."""
    return (architectures.order(name.split(" (")[0]), name)


@dataclass(frozen=True)
class Focus:
    facet: str
    eps: float | None  # the ε budget of the DP architectures shown per agency (None: no DP)
    seed: object  # the seed whose cells are shown per agency (None for a single run)
    cells: tuple[str, ...]  # the cells the per-agency rows come from

    def describe(self, study: Study) -> str:
        """Which setting the per-agency figures show, in words."""
        if study.kind == "run":
            return ""
        parts = []
        if self.eps is not None:
            parts.append(f"DP architectures at ε = {self.eps:g}")
        if self.seed is not None:
            parts.append(f"seed {self.seed}")
        if self.facet:
            parts.append(self.facet)
        return "; ".join(parts)


def summary_table(study: Study) -> pd.DataFrame:
    """One row per (facet, line, ε budget): seed means, min and max of each number, ε spent as
    the max over seeds (the worst case is what the guarantee must cover), and the seed count."""
    archs = study.archs
    if archs.empty:
        return archs
    archs = archs.assign(_over=(archs["mia_auc"] > archs["mia_bound"]).astype(int))
    keys = ["facet", "line", "architecture", "is_dp", "eps_budget"]
    grouped = archs.groupby(keys, dropna=False, sort=False)
    out = grouped[list(MEAN_COLUMNS)].mean()
    for column in ("headline", "auc"):
        out[f"{column}_min"] = grouped[column].min()
        out[f"{column}_max"] = grouped[column].max()
    out["epsilon_max"] = grouped["epsilon_max"].max()
    out["delta"] = grouped["delta"].max()
    out["privacy_unit"] = grouped["privacy_unit"].first()
    out["neighbouring"] = grouped["neighbouring"].first() if "neighbouring" in archs else None
    out["accountant"] = grouped["accountant"].first()
    out["n_errors"] = grouped["n_errors"].sum()
    out["n_seeds"] = grouped["seed"].nunique().clip(lower=1)  # a single run has no seed column value
    out["mia_over_bound"] = grouped["_over"].sum()  # cells where the attack beat the bound ε allows
    out = out.reset_index()
    out["_order"] = [arch_order(line) for line in out["line"]]
    return out.sort_values(["facet", "_order", "eps_budget"]).drop(columns="_order").reset_index(drop=True)


def dp_budgets(study: Study, facet: str | None = None) -> list[float]:
    archs = study.archs
    if archs.empty:
        return []
    rows = archs[archs["is_dp"]] if facet is None else archs[archs["is_dp"] & (archs["facet"] == facet)]
    return sorted({float(e) for e in rows["eps_budget"] if not math.isnan(e)})


def focus(study: Study) -> Focus:
    """The setting shown per agency: the first facet, ε = 1 when it was run (the usual default
    budget) else the lower median budget, the smallest seed."""
    archs = study.archs
    facets = sorted(set(archs["facet"])) if not archs.empty else [""]
    facet = facets[0]
    budgets = dp_budgets(study, facet)
    eps = None
    if budgets:
        eps = 1.0 if 1.0 in budgets else budgets[(len(budgets) - 1) // 2]
    rows = archs[archs["facet"] == facet] if not archs.empty else archs
    seeds = sorted({s for s in rows["seed"] if s is not None and not (isinstance(s, float) and math.isnan(s))}, key=str) if not rows.empty else []
    seed = seeds[0] if seeds and study.kind == "sweep" else None
    if seed is not None:
        rows = rows[rows["seed"] == seed]
    # Prefer cells that ran the DP architectures at the focus ε; the non-DP ones come from the
    # first cell of that seed that has them.
    chosen: list[str] = []
    seen: set[str] = set()
    ordered = sorted(rows.itertuples(), key=lambda r: (not (r.is_dp and same_eps(r.eps_budget, eps)), str(r.cell)))
    for row in ordered:
        if row.is_dp and not same_eps(row.eps_budget, eps):
            continue
        if row.line not in seen:
            seen.add(row.line)
            if row.cell not in chosen:
                chosen.append(row.cell)
    return Focus(facet=facet, eps=eps, seed=seed, cells=tuple(chosen))


def same_eps(a: float, b: float | None) -> bool:
    """Whether budget `a` (NaN: none) is the focus budget `b` (None: none)."""
    if b is None:
        return math.isnan(a)
    return not math.isnan(a) and math.isclose(a, b)


def at_focus(frame: pd.DataFrame, f: Focus) -> pd.DataFrame:
    """Rows of `frame` (with cell, facet, is_dp, eps_budget columns) in the focus setting."""
    if frame.empty:
        return frame
    frame = frame[frame["cell"].isin(f.cells) & (frame["facet"] == f.facet)]
    return frame[~frame["is_dp"].astype(bool) | frame["eps_budget"].apply(lambda e: same_eps(e, f.eps))]


def focus_agencies(study: Study, f: Focus) -> pd.DataFrame:
    """Per-agency rows of the focus setting, one per (line, agency), smallest agency first."""
    rows = at_focus(study.agencies, f)
    if rows.empty:
        return rows
    rows = rows.drop_duplicates(["line", "agency"])
    return rows.sort_values(["n_train", "agency"]).reset_index(drop=True)


def focus_archs(study: Study, f: Focus) -> pd.DataFrame:
    """Seed-mean rows (summary_table) of the focus facet, DP architectures at the focus ε."""
    table = summary_table(study)
    if table.empty:
        return table
    table = table[table["facet"] == f.facet]
    return table[~table["is_dp"] | table["eps_budget"].apply(lambda e: same_eps(e, f.eps))].reset_index(drop=True)
