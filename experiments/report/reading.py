"""The plain-language reading: sentences computed from the numbers, never fixed prose.

Each `*_sentence` function takes plain numbers and chooses its wording from them (better or worse,
within or over budget, gained or lost), so a sentence cannot claim what its numbers contradict.
`reading()` pulls those numbers out of a study; the sentences are in experiments/report/sentences.py."""

from __future__ import annotations

import math

import pandas as pd

from experiments.report import fmt, plots, views
from experiments.report.load import Study
from experiments.report.sentences import (
    DP_KIND,
    _list,
    _m,
    _plural,
    attack_sentence,
    budget_sentence,
    ceiling_sentence,
    chance_sentence,
    collaboration_sentence,
    movement_sentence,
    quintile_sentence,
    spread_sentence,
    time_sentence,
    trend_sentence,
    utility_sentence,
    worse_sentence,
)
from federation import architectures


def _spends(study: Study, dp_rows: pd.DataFrame) -> pd.DataFrame:
    """ε spent against budget per (DP line, agency, cell). A line that records no per-agency ε
    (agency-level DP: one ε covers the federation) contributes its one ε per cell instead."""
    columns = ["line", "agency", "epsilon", "budget", "n_errors", "first_error"]
    if dp_rows.empty:
        return pd.DataFrame(columns=columns)
    per_cell = dp_rows.groupby(["cell", "line"])["epsilon"].transform(lambda e: e.notna().any())
    rows = [dp_rows.loc[per_cell, columns]]
    whole = study.archs[study.archs["is_dp"]].merge(dp_rows.loc[~per_cell, ["cell", "line"]].drop_duplicates(), on=["cell", "line"])
    if not whole.empty:
        errors = dp_rows.loc[~per_cell].groupby(["cell", "line"])["n_errors"].sum().rename("n_errors").reset_index()
        whole = whole.drop(columns="n_errors").merge(errors, on=["cell", "line"])
        rows.append(pd.DataFrame({"line": whole["line"], "agency": "the federation (agency-level ε)", "epsilon": whole["epsilon_max"], "budget": whole["eps_budget"], "n_errors": whole["n_errors"], "first_error": ""}))
    return pd.concat(rows, ignore_index=True)


def _worse_by_budget(study: Study, focus: views.Focus, label: str) -> list[str]:
    """For sweeps over ε: the budgets at which a DP architecture spreads utility across agencies
    more, or skews hotspot flags more, than fedavg without DP (seed means)."""
    if study.kind != "sweep" or len(views.dp_budgets(study, focus.facet)) < 2:
        return []
    out = []
    for frame, column, what, scale, unit, word in (
        (plots.spreads(study), "range", f"the spread of {label} across agencies", 1.0, "", "wider"),
        (plots.quintile_gaps(study), "gap", "the largest flag-vs-incident gap across deprivation quintiles", 100.0, " points", "larger"),
    ):
        if frame.empty:
            continue
        frame = frame[frame["facet"] == focus.facet]
        reference = "fedavg" if "fedavg" in set(frame["line"]) else "central" if "central" in set(frame["line"]) else None
        if reference is None:
            continue
        ref_value = frame.loc[frame["line"] == reference, column].mean()
        for line in sorted(set(frame.loc[frame["is_dp"], "line"]), key=views.arch_order):
            means = frame[frame["line"] == line].groupby("eps_budget")[column].mean()
            sentence = worse_sentence(what, line, list(means.items()), reference, ref_value, scale=scale, unit=unit, word=word)
            if sentence:
                out.append(sentence)
    return out


# --- the reading of a study -----------------------------------------------------------------------


def reading(study: Study, focus: views.Focus, full: Study | None = None) -> list[str]:
    """The sentences, most important first. `full`: the whole study when `study` leaves some
    lines out (attacked ones), so that the budget check still covers every cell."""
    label, chance = study.headline_label, study.chance
    archs = views.focus_archs(study, focus)
    get = {r["line"]: r for _, r in archs.iterrows()}

    def note(line: str) -> str:
        seeds = int(get[line]["n_seeds"]) if line in get else 1
        return f", mean over {seeds} seeds" if seeds > 1 else ""

    central = get["central"]["headline"] if "central" in get else math.nan
    out: list[str] = []

    dp_lines = [line for line in sorted(get, key=views.arch_order) if get[line]["is_dp"]]
    for line in dp_lines:
        r = get[line]
        kind = "with " + DP_KIND.get(str(r["privacy_unit"]), "DP") + (f" at ε = {fmt.budget(r['eps_budget'])}" if not _m(r["eps_budget"]) else "")
        out.append(utility_sentence(label, chance, line, kind, r["headline"], central, note(line)))
    if "fedavg" in get:
        out.append(utility_sentence(label, chance, "fedavg", "without DP", get["fedavg"]["headline"], central, note("fedavg")))
    if not dp_lines and "fedavg" not in get and "local" in get:
        out.append(utility_sentence(label, chance, "Each agency training alone (local)", "", get["local"]["headline"], central, note("local")))

    table = views.summary_table(study)
    if not table.empty:
        sub = table[table["facet"] == focus.facet]
        reference = "fedavg" if "fedavg" in set(sub["line"]) else "central" if "central" in set(sub["line"]) else None
        ref_value = sub.loc[sub["line"] == reference, "headline"].mean() if reference else None
        for line in sorted(set(sub.loc[sub["is_dp"], "line"]), key=views.arch_order):
            pts = sub[sub["line"] == line]
            sentence = trend_sentence(label, line, list(zip(pts["eps_budget"], pts["headline"], strict=True)), reference, ref_value)
            if sentence:
                out.append(sentence)
        failures = [(r["line"], r["eps_budget"], r["headline"]) for _, r in sub.iterrows() if r["is_dp"] and chance is not None and not _m(r["headline"]) and r["headline"] <= chance]
        fed = sub.loc[sub["line"] == "fedavg", "headline"].mean() if "fedavg" in set(sub["line"]) else None
        sentence = chance_sentence(label, chance, failures, "fedavg" if fed is not None else None, fed)
        if sentence:
            out.append(sentence)

    whole = full or study
    agencies = whole.agencies
    dp_rows = agencies[agencies["is_dp"]] if not agencies.empty else agencies
    scope = "in every cell of the sweep" if study.kind == "sweep" else ""
    out.append(budget_sentence(_spends(whole, dp_rows), scope))
    record_dp = [line for line in dp_lines if str(get[line]["privacy_unit"]) in ("record", "person", "area-month")]
    if record_dp:
        out.append(
            f"From the agencies under {_list(record_dp)} only what the release boundary declares left (summary.json "
            "'releases'): DP model updates, each agency's record count released once with noise, and figures derived "
            "from those and its own policy; no training loss, batch size or label count, and each agency's test "
            "metrics stayed in its own folder."
        )

    attacks = [attack_sentence(line, r["mia_auc"], r["mia_bound"], r["eps_claimed"], r["eps_lower"], note(line), r.get("eps_ceiling", math.nan)) for line, r in sorted(get.items(), key=lambda kv: views.arch_order(kv[0]))]
    attacks = [a for a in attacks if a]
    out.extend(attacks if attacks else [f"Membership-inference attack: {fmt.NOT_MEASURED} (no audit in these results)."])
    over = int(table["mia_over_bound"].sum()) if not table.empty else 0
    if study.kind == "sweep" and over:
        out.append(f"In {_plural(over, 'cell')} of the sweep the membership attack beat the AUC its claimed ε permits.")

    per_agency = views.focus_agencies(study, focus)
    if not per_agency.empty:
        fed = next((line for line in dp_lines if line in set(per_agency["line"])), "fedavg" if "fedavg" in set(per_agency["line"]) else None)
        if fed:
            local = per_agency[per_agency["line"] == "local"].set_index("agency")["headline"]
            fed_rows = per_agency[per_agency["line"] == fed]
            frame = pd.DataFrame({"agency": fed_rows["agency"], "n_train": fed_rows["n_train"], "fed": fed_rows["headline"], "local": fed_rows["agency"].map(local)})
            out.append(collaboration_sentence(label, fed, frame))
    if not archs.empty:
        out.append(movement_sentence(archs[["line", "records_moved", "update_bytes"]]))

    spread = plots.spreads(study)
    spread = views.at_focus(spread, focus).drop_duplicates("line")
    lines = set(spread["line"]) if not spread.empty else set()
    reference = "fedavg" if "fedavg" in lines else "central" if "central" in lines else None
    sentence = spread_sentence(label, spread, reference)
    if sentence:
        out.append(sentence)
    out.extend(_worse_by_budget(study, focus, label))
    gaps = plots.quintile_gaps(study)
    gaps = views.at_focus(gaps, focus).drop_duplicates("line")
    sentence = quintile_sentence(gaps, "fedavg" if not gaps.empty and "fedavg" in set(gaps["line"]) else None)
    if sentence:
        out.append(sentence)
    elif study.task == "hotspot":
        out.append(f"Flags per deprivation quintile: {fmt.NOT_MEASURED}.")

    if not archs.empty:
        federated = archs["architecture"].map(architectures.is_federated).any()
        sentence = time_sentence(archs[["line", "wall_s"]], archs["flower_startup_s"].mean() if federated else math.nan)
        if sentence:
            out.append(sentence)
        best = archs.loc[archs["headline"].idxmax()] if archs["headline"].notna().any() else None
        out.append(ceiling_sentence(label, archs["ceiling"].mean(), best["line"] if best is not None else None, best["headline"] if best is not None else None))
    if focus.describe(study):
        out.append(
            f"Per-agency statements (who gains, spread across agencies, quintiles) are for {focus.describe(study)}; "
            "utility, attack, movement and time are seed means at that ε; the budget check covers every cell."
        )
    return out
