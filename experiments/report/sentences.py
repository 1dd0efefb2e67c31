"""The reading's sentences: each `*_sentence` function takes plain numbers and chooses its
wording from them (better or worse, within or over budget, gained or lost), so a sentence cannot
claim what its numbers contradict. `experiments/report/reading.py` pulls the numbers out of a study."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

import pandas as pd

from experiments.report import fmt

DP_KIND = {"record": "record-level DP", "person": "person-level DP", "agency": "agency-level DP", "area-month": "area-month-level DP"}


def _m(value: object) -> bool:
    return fmt.missing(value)


def _plural(n: int, word: str) -> str:
    if n == 1:
        return f"{n} {word}"
    return f"{n} {word[:-1]}ies" if word.endswith("y") else f"{n} {word}s"


def _list(items: Sequence[str], limit: int = 3) -> str:
    items = list(items)
    if len(items) > limit:
        items = items[:limit] + [f"{len(items) - limit} more"]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _precision(digits: int = 3) -> float:
    """Differences smaller than half the last printed digit read as "the same"."""
    return 0.5 * 10**-digits


# --- utility --------------------------------------------------------------------------------------


def kept_share(value: float, central: float, chance: float | None) -> float | None:
    """The share of pooling's gain over chance that `value` keeps: (value − chance) ÷ (central −
    chance); without a chance level, value ÷ central. None when it is not defined."""
    if _m(value) or _m(central):
        return None
    if chance is None:
        return value / central if central > 0 else None
    if central <= chance:
        return None
    return (value - chance) / (central - chance)


def percent_kept(share: float | None) -> str:
    """A kept share as a whole percentage, rounded down: "100%" is never printed for a model
    below pooling."""
    return fmt.NOT_MEASURED if share is None else f"{math.floor(100 * share + 1e-9)}%"


def utility_sentence(label: str, chance: float | None, name: str, kind: str, value: float, central: float, note: str = "") -> str:
    """How `name` compares with pooling; `kind` says what it is ("with record-level DP at ε = 1",
    "without DP"; empty: `name` says it all)."""
    who = f"Federated learning {kind} ({name})" if kind else name
    if _m(value):
        return f"{who}: {label} {fmt.NOT_MEASURED}."
    if _m(central):
        return f"{who} reached {label} {fmt.num(value)}{note}; pooling all records was not run, so there is nothing to compare it with."
    tail = f" ({fmt.num(value)} vs {fmt.num(central)}{note})"
    if value >= central - _precision():
        if abs(value - central) < _precision():
            return f"{who} matched pooling all records in one place to three decimals: {label}{tail}."
        return f"{who} beat pooling all records in one place: {label}{tail}."
    if chance is not None:
        if central <= chance:
            return f"Pooling all records did no better than chance ({label} {fmt.num(central)}; chance is {chance:g}), so no share of its gain can be kept; {name} reached {fmt.num(value)}."
        if value <= chance:
            return f"{who} did no better than chance ({label} {fmt.num(value)}; chance is {chance:g}) while pooling reached {fmt.num(central)}."
        return f"{who} kept {percent_kept(kept_share(value, central, chance))} of the {label} gain over chance that pooling all records achieved{tail}."
    return f"{who} reached {percent_kept(kept_share(value, central, None))} of the {label} of pooling all records{tail}."


def trend_sentence(label: str, name: str, points: Sequence[tuple[float, float]], reference: str | None, ref_value: float | None) -> str | None:
    """How `name`'s utility moves across ε budgets, and where it ends against `reference`."""
    points = sorted((e, v) for e, v in points if not _m(v))
    if len(points) < 2:
        return None
    (e0, v0), (e1, v1) = points[0], points[-1]
    values = [v for _, v in points]
    ends = f"{fmt.num(v0)} at ε = {e0:g} to {fmt.num(v1)} at ε = {e1:g}"
    if abs(v1 - v0) < _precision():
        text = f"Across budgets, {name}'s {label} stayed level ({ends})"
    elif v1 > v0:
        steady = all(b >= a - _precision() for a, b in pairwise(values))
        text = f"As the ε budget grows, {name}'s {label} rose from {ends}" + ("" if steady else ", though not at every step")
    else:
        steady = all(b <= a + _precision() for a, b in pairwise(values))
        text = f"As the ε budget grows, {name}'s {label} fell from {ends}" + ("" if steady else ", though not at every step")
    if reference and not _m(ref_value):
        gap = ref_value - v1
        if abs(gap) < _precision():
            text += f", reaching the level of {reference} without DP ({fmt.num(ref_value)})"
        elif gap > 0:
            text += f", ending {fmt.num(gap)} below {reference} without DP ({fmt.num(ref_value)})"
        else:
            text += f", ending {fmt.num(-gap)} above {reference} without DP ({fmt.num(ref_value)})"
    return text + "."


def chance_sentence(label: str, chance: float | None, failures: Sequence[tuple[str, float, float]], reference: str | None, ref_value: float | None) -> str | None:
    """(line, ε, value) DP settings that did no better than chance. The DP noise is named as the
    cause only when `reference` (the same federation without DP) did beat chance."""
    if chance is None or not failures:
        return None
    parts = [f"{line} at ε = {e:g} ({label} {fmt.num(v)})" if not _m(e) else f"{line} ({label} {fmt.num(v)})" for line, e, v in failures]
    text = f"No better than chance (chance is {label} {chance:g}): {_list(parts, 5)}"
    if reference and not _m(ref_value) and ref_value > chance:
        text += f"; {reference} without DP reached {fmt.num(ref_value)}, so at those budgets the DP noise destroyed what the model learnt"
    return text + "."


# --- privacy --------------------------------------------------------------------------------------


def budget_sentence(spends: pd.DataFrame, scope: str = "") -> str:
    """Whether every agency stayed within its ε budget. `spends` has columns line, agency,
    epsilon, budget, n_errors, first_error (one row per DP architecture, agency and cell)."""
    if spends.empty:
        return "No architecture here uses differential privacy: no ε was spent or bounded, and nothing formally limits what the shared models reveal."
    where = f" {scope}" if scope else ""
    known = spends[spends["epsilon"].notna()]
    over = known[known["budget"].notna() & (known["epsilon"] > known["budget"] * (1 + 1e-9))]
    no_eps = spends[spends["epsilon"].isna()]
    sentences = []
    if not over.empty:
        items = [f"{r['agency']} under {r['line']} (ε {fmt.eps(r['epsilon'])} > {fmt.budget(r['budget'])})" for _, r in over.iterrows()]
        sentences.append(f"Budget exceeded{where}: {_list(items)}. That agency's guarantee is weaker than configured.")
    elif not known.empty:
        with_budget = known[known["budget"].notna()]
        if with_budget.empty:
            sentences.append(f"Agencies spent up to ε = {fmt.eps(known['epsilon'].max())}{where}; no budget was recorded to compare against.")
        else:
            ratio = with_budget["epsilon"] / with_budget["budget"]
            worst = with_budget.loc[ratio.idxmax()]
            budgets = set(with_budget["budget"])
            who = "Every agency that recorded an ε stayed" if not no_eps.empty or len(with_budget) < len(known) else "Every agency's ε spent to date (its own ledger, all runs) stayed"
            if len(budgets) == 1:
                sentences.append(f"{who} within its budget{where} (max {fmt.eps(with_budget['epsilon'].max())} ≤ {fmt.budget(next(iter(budgets)))}).")
            else:
                sentences.append(
                    f"{who} within its budget{where}; the closest was {worst['agency']} under {worst['line']} "
                    f"(ε {fmt.eps(worst['epsilon'])} of {fmt.budget(worst['budget'])}, {math.ceil(1000 * ratio.max()) / 10:g}% of it)."
                )
    if not no_eps.empty:
        n = no_eps["agency"].nunique()
        sentences.append(f"{_plural(n, 'agency')} recorded no ε ({_list(sorted(set(no_eps['agency'])))}): {'its' if n == 1 else 'their'} spend is {fmt.NOT_MEASURED}.")
    refused = spends[spends["n_errors"] > 0]
    if not refused.empty:
        items = [f"{r['agency']} under {r['line']} ({_plural(int(r['n_errors']), 'round')}; first {r['first_error']})" for _, r in refused.iterrows()]
        sentences.append(f"Some agencies sent no update in some rounds: {_list(items)}.")
    return " ".join(sentences)


def attack_sentence(name: str, mia: float, bound: float, eps_claimed: float = math.nan, eps_lower: float = math.nan, note: str = "", eps_ceiling: float = math.nan) -> str | None:
    """What a membership-inference attacker achieved on `name`, against what its ε allows."""
    if _m(mia):
        return None
    text = f"The membership attack on {name} reached AUC {fmt.num(mia)}{note} (0.5 = guessing)"
    if _m(bound):
        text += "; it has no ε, so nothing bounds it" if mia > 0.5 + _precision() else ""
    elif mia <= bound:
        text += f", within the {fmt.num(bound)} its claimed ε permits"
    else:
        text += f", above the {fmt.num(bound)} its claimed ε permits: the audit contradicts the privacy claim"
    if not _m(eps_lower):
        claim = f" (claimed {fmt.num(eps_claimed, 2)})" if not _m(eps_claimed) else ""
        if not _m(eps_claimed) and eps_lower > eps_claimed:
            text += f"; the audit's lower bound on ε, {fmt.num(eps_lower, 2)}, is above the claimed {fmt.budget(eps_claimed)}: the claim is contradicted"
        else:
            text += f"; the canary audit shows ε is at least {fmt.num(eps_lower, 2)}{claim}"
            if not _m(eps_ceiling) and not _m(eps_claimed):
                text += f", and could show at most about {fmt.num(eps_ceiling, 2)} even on an ideal mechanism at the claimed ε, so a low bound is not proof of privacy"
    return text + "."


# --- agencies, movement, fairness, time -----------------------------------------------------------


def collaboration_sentence(label: str, fed: str, rows: pd.DataFrame) -> str:
    """Who gains from collaborating: `rows` has agency, n_train, local, fed (the scores)."""
    smallest = rows.sort_values(["n_train", "agency"]).iloc[0] if not rows.empty else None
    total = len(rows)
    rows = rows[rows["local"].notna() & rows["fed"].notna()]
    if rows.empty:
        return f"Gain from collaborating: {fmt.NOT_MEASURED} (needs both 'local' and a federated architecture)."
    rows = rows.assign(gain=rows["fed"] - rows["local"])
    best = rows.sort_values(["gain", "n_train"], ascending=[False, True]).iloc[0]
    up = int((rows["gain"] >= _precision()).sum())
    down = int((rows["gain"] <= -_precision()).sum())
    n = len(rows)
    counts = f"Under {fed}, {up} of {n} agencies scored higher than training alone" + (f" and {down} lower" if down else "")
    if n < total:
        counts += f" ({_plural(total - n, 'agency')} without a score under both)"
    size = f"{fmt.count(smallest['n_train'])} training records" if not _m(smallest["n_train"]) else "fewest records"
    if smallest["agency"] not in set(rows["agency"]):
        return counts + f"; the smallest agency ({smallest['agency']}, {size}) has no score under both, so its gain is {fmt.NOT_MEASURED}."
    smallest = rows[rows["agency"] == smallest["agency"]].iloc[0]
    if best["gain"] < _precision():
        return counts + f"; no agency gained from collaborating (the best change was {best['agency']}'s, {fmt.signed(best['gain'])} {label})."
    if best["agency"] == smallest["agency"]:
        return counts + f"; the smallest agency ({smallest['agency']}, {size}) gained most ({fmt.signed(smallest['gain'])} {label} over training alone)."
    verb = "gained" if smallest["gain"] >= _precision() else "lost" if smallest["gain"] <= -_precision() else "changed by"
    amount = fmt.signed(smallest["gain"]) if verb == "changed by" else fmt.num(abs(smallest["gain"]))
    return counts + f"; {best['agency']} gained most ({fmt.signed(best['gain'])} {label}), and the smallest agency ({smallest['agency']}, {size}) {verb} {amount}."


def movement_sentence(rows: pd.DataFrame) -> str:
    """What left the agencies: `rows` has line, records_moved, update_bytes (totals)."""
    moved = rows[rows["records_moved"] > 0]
    none = rows[rows["records_moved"] == 0]
    unknown = rows[rows["records_moved"].isna()]
    parts = []
    if not moved.empty:
        parts.append(_list([f"{r['line']} copied {fmt.count(r['records_moved'])} out of the agencies" for _, r in moved.iterrows()]))
    if not none.empty:
        sent = [f"{r['line']} {fmt.megabytes(r['update_bytes'])}" for _, r in none.iterrows() if r["update_bytes"] > 0]
        text = f"{_list(list(none['line']), 6)} moved none"
        if sent:
            text += f"; model updates were sent instead ({_list(sent, 6)} in total)"
        parts.append(text)
    if not unknown.empty:
        parts.append(f"for {_list(list(unknown['line']))} the count is {fmt.NOT_MEASURED}")
    return f"Raw records: {'; '.join(parts)}." if parts else f"Data movement: {fmt.NOT_MEASURED}."


def spread_sentence(label: str, spreads: pd.DataFrame, reference: str | None) -> str | None:
    """Utility spread across agencies per line (`spreads`: line, min, max, range, worst, is_dp),
    and whether each DP line widens it against `reference`."""
    if spreads.empty:
        return None
    ref = spreads[spreads["line"] == reference] if reference else spreads.iloc[0:0]
    parts = []
    for _, r in spreads[spreads["is_dp"]].iterrows():
        text = f"{r['line']}'s {label} ranged from {fmt.num(r['min'])} ({r['worst']}) to {fmt.num(r['max'])}, a spread of {fmt.num(r['range'])}"
        if not ref.empty:
            d = r["range"] - ref["range"].iloc[0]
            worst_gap = r["min"] - ref["min"].iloc[0]
            worst = f" ({fmt.num(r['min'])} vs {fmt.num(ref['min'].iloc[0])} under {reference})"
            if abs(d) < _precision():
                text += f", the same as {reference} without DP"
            elif d < 0:
                text += f", narrower than {reference}'s {fmt.num(ref['range'].iloc[0])}"
            elif worst_gap <= -_precision():
                text += f", wider than {reference}'s {fmt.num(ref['range'].iloc[0])}, and its worst agency scores lower{worst}: here DP widens the gap at the bottom"
            else:
                text += f", wider than {reference}'s {fmt.num(ref['range'].iloc[0])}, though its worst agency scores no lower{worst}"
        parts.append(text)
    if not parts:
        r = spreads.sort_values("range").iloc[-1]
        parts.append(f"the widest spread is {r['line']}'s ({fmt.num(r['range'])}, worst {r['worst']} at {fmt.num(r['min'])})")
    text = "Across agencies, " + "; ".join(parts)
    return text + "."


def quintile_sentence(gaps: pd.DataFrame, reference: str | None) -> str | None:
    """Largest flag-vs-incident gap per line (`gaps` from plots.quintile_gaps) against `reference`."""
    if gaps.empty:
        return None
    ref = gaps[gaps["line"] == reference] if reference else gaps.iloc[0:0]
    parts = []
    rows = gaps[gaps["is_dp"]] if gaps["is_dp"].any() else gaps
    for _, g in rows.iterrows():
        text = (
            f"under {g['line']}, deprivation quintile {g['quintile']} received {fmt.percent(g['flag_share'])} of flags against "
            f"{fmt.percent(g['target_share'])} of {g['reference']} incidents (a gap of {100 * g['gap']:.1f} points)"
        )
        if not ref.empty and g["line"] != reference:
            d = g["gap"] - ref["gap"].iloc[0]
            if abs(d) < 0.0005:
                text += f", the same as under {reference}"
            elif d > 0:
                text += f", larger than under {reference} ({100 * ref['gap'].iloc[0]:.1f} points): here DP makes the flags less even"
            else:
                text += f", smaller than under {reference} ({100 * ref['gap'].iloc[0]:.1f} points)"
        parts.append(text)
    text = "; ".join(parts)
    return text[:1].upper() + text[1:] + "."


def worse_sentence(what: str, line: str, points: Sequence[tuple[float, float]], reference: str, ref_value: float, *, scale: float = 1.0, unit: str = "", word: str = "wider") -> str | None:
    """At which ε budgets `line`'s `what` (lower is fairer) is worse than `reference`'s.
    Values are compared on the printed scale (`scale`, 3 decimals, or 1 with a `unit`)."""
    points = sorted((e, v) for e, v in points if not _m(v) and not _m(e))
    if len(points) < 2 or _m(ref_value):
        return None
    digits = 1 if unit else 3
    worse = [e for e, v in points if (v - ref_value) * scale >= 0.5 * 10**-digits]
    rest = [e for e, _ in points if e not in worse]
    head = f"{what[:1].upper()}{what[1:]} under {line}, against {reference} without DP ({ref_value * scale:.{digits}f}{unit})"

    def budgets(values: list[float]) -> str:
        return "ε = " + _list([f"{e:g}" for e in values], 8)

    if not worse:
        return f"{head}: no {word} at any ε budget."
    if not rest:
        return f"{head}: {word} at every ε budget ({budgets(worse)})."
    return f"{head}: {word} at {budgets(worse)}; not at {budgets(rest)}."


def time_sentence(walls: pd.DataFrame, startup: float) -> str | None:
    """Wall time per line (`walls`: line, wall_s)."""
    walls = walls[walls["wall_s"].notna()]
    if walls.empty:
        return None
    walls = walls.sort_values("wall_s")
    items = [f"{r['line']} {fmt.seconds(r['wall_s'])}" for _, r in walls.iterrows()]
    text = f"Training time: {_list(items, 8)}"
    if not _m(startup):
        text += f", plus {fmt.seconds(startup)} of Flower start-up paid once by the federated architectures"
    if len(walls) > 1:
        slowest = walls[walls["wall_s"] >= walls["wall_s"].max() - 0.05]
        if len(slowest) < len(walls):
            text += f"; {_list(list(slowest['line']))} {'was' if len(slowest) == 1 else 'were'} the slowest"
    return text + "."


def ceiling_sentence(label: str, ceiling: float, best_line: str | None, best_value: float | None) -> str:
    if _m(ceiling):
        return f"Best achievable score: {fmt.NOT_MEASURED} (these records carry no ground truth)."
    text = f"The true probabilities behind the synthetic records score {label} {fmt.num(ceiling)} on the same test months, the practical ceiling"
    if best_line and not _m(best_value):
        gap = ceiling - best_value
        text += (
            f"; the best model here, {best_line}, is {fmt.num(gap)} below it"
            if gap >= _precision()
            else f"; the best model here, {best_line}, reaches it ({fmt.num(best_value)})"
        )
    return text + "."
