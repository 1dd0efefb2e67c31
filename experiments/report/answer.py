"""The report's first screen: the answer a decision maker came for, computed from the numbers.

Which architecture to use at the configured privacy budget (the record-level DP architecture with
the best utility whose agencies all stayed within their budgets), how much of pooling's utility
it keeps, its privacy unit in words, what leaves each agency (summary.json `releases`), what
each agency has spent, what an attacker could learn, and why every other architecture is not
recommended. Each item names the summary.json keys it comes from. `verdicts` is the same
judgement per architecture, for the table that shows them all."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from experiments.report import fmt, views
from experiments.report.load import Study
from experiments.report.sentences import kept_share, percent_kept
from federation import architectures, contract

# Utilities closer than this count as equal: the one whose coordinator sees less is preferred.
TIE = 0.001
# In a sweep over privacy.unit, a person-unit line this close to the best record-unit line is
# recommended instead: the same ε then holds per person with all their records, a far stronger
# promise, for a cost this small (the cost is stated beside the recommendation).
UNIT_TIE = 0.01
# Below this share of pooling's gain the recommendation says that little is kept.
LOW_SHARE = 0.5
# An agency-level row counts as "few agencies" below this many (its noise is σ·C/n on the mean).
FEW_AGENCIES = 20

# The first screen lists every agency's ε up to MAX_LISTED agencies, else the TOP_LISTED highest.
MAX_LISTED = 8
TOP_LISTED = 5

# What one ε figure protects, in the "ε spent to date" line (the ledger read is the unit's own).
PER_UNIT = {"record": "per record", "person": "per person", "area-month": "per area-month example"}
UNIT_WORDS = {
    "record": "one incident record",
    "person": "one person with every record attributed to them (victim, else suspect)",
    "area-month": "one area-month example",
    "agency": "one whole agency (all its records)",
}
# summary.json `releases` field names in words.
FIELD_WORDS = {
    "arrays": "the model update",
    "num-examples": "its record count",
    "masked-update": "the masked model update",
    "agency": "its name",
    "epsilon-spent-to-date": "ε spent to date",
    "epsilon-this-run": "ε this run",
    "epsilon-budget": "its ε budget",
    "delta": "δ",
    "sigma": "the noise multiplier σ",
    "sample-rate": "the sampling rate",
    "steps": "the number of steps",
    "evaluated-locally": "an 'evaluated locally' flag",
    "protocol-keys-and-shares": "SecAgg+ keys and secret shares",
    "reason": "a refusal's reason",
}
# The messages an agency sends when it trains a model (other messages, e.g. statistics queries,
# belong to other commands); SecAgg+'s only under secure aggregation.
TRAINING_MESSAGES = (contract.TRAIN_REPLY, contract.EVALUATE_REPLY, contract.QUERY_REPLY)


@dataclass(frozen=True)
class Item:
    key: str  # the element id is answer-<key>
    label: str
    text: str
    source: str  # which file and keys the text comes from


@dataclass(frozen=True)
class Answer:
    recommended: str | None  # the line recommended (None: none)
    headline: str  # the recommendation in one sentence
    items: list[Item]
    not_recommended: list[tuple[str, str]]  # (line, why not), table order
    verdicts: dict[str, str]  # line -> "recommended" or "not recommended: why"
    failed: dict[str, str]  # DP lines unusable at this budget (refused, over budget, at chance) -> why


def _source(study: Study) -> str:
    if study.kind == "run":
        return "summary.json"
    return "cells/<cell>/summary.json (seed means)"


def _budget_rows(study: Study, focus: views.Focus, line: str) -> pd.DataFrame:
    """Every per-agency row of `line` at the focus facet and ε (all seeds of a sweep)."""
    rows = study.agencies
    if rows.empty:
        return rows
    rows = rows[(rows["line"] == line) & (rows["facet"] == focus.facet)]
    return rows[rows["eps_budget"].apply(lambda e: views.same_eps(e, focus.eps))]


def _over_budget(study: Study, focus: views.Focus, r: pd.Series) -> str | None:
    """The first agency (or the federation) whose ε spent exceeds its budget, in words."""
    rows = _budget_rows(study, focus, r["line"])
    if not rows.empty and rows["epsilon"].notna().any():
        over = rows[rows["epsilon"] > rows["budget"] * (1 + 1e-9)]
        if not over.empty:
            o = over.iloc[0]
            return f"over budget: {o['agency']} spent ε {fmt.eps(o['epsilon'])} of its {fmt.budget(o['budget'])}"
        return None
    if not fmt.missing(r["epsilon_max"]) and not fmt.missing(r["eps_budget"]) and r["epsilon_max"] > r["eps_budget"] * (1 + 1e-9):
        return f"over budget: ε {fmt.eps(r['epsilon_max'])} spent against {fmt.budget(r['eps_budget'])}"
    return None


def _refused(study: Study, focus: views.Focus, line: str) -> str | None:
    archs = study.archs
    if archs.empty or "status" not in archs:
        return None
    rows = views.at_focus(archs, focus)
    status = set(rows.loc[rows["line"] == line, "status"].dropna())
    if "refused" in status:
        errors = _budget_rows(study, focus, line)
        first = next((e for e in errors["first_error"] if e), "") if not errors.empty else ""
        return "refused: no agency released an update" + (f" ({first})" if first else "")
    if "no-replies" in status:
        return "no agency's update arrived: its model is the untrained initial one"
    return None


def _failure(study: Study, focus: views.Focus, r: pd.Series, n_agencies: int) -> str | None:
    """Why DP architecture `r` is unusable at this budget: refused, nothing recorded, over
    budget or no better than chance (None: none of these)."""
    label, chance = study.headline_label, study.chance
    refused = _refused(study, focus, r["line"])
    if refused:
        return refused
    if fmt.missing(r["headline"]):
        return f"no {label} recorded"
    over = _over_budget(study, focus, r)
    if over:
        return over
    if chance is not None and r["headline"] <= chance:
        text = f"no better than chance ({label} {fmt.num(r['headline'])}; chance is {chance:g})"
        if str(r["privacy_unit"]) == "agency":
            text += f": {architectures.agency_noise_reason(n_agencies)}"
        return text
    return None


def _why_not(study: Study, focus: views.Focus, r: pd.Series, central: float, n_agencies: int) -> str | None:
    """Why `r`'s architecture cannot be recommended at this budget (None: it can)."""
    label, chance = study.headline_label, study.chance
    known = architectures.find(str(r["architecture"]))
    value = f"{label} {fmt.num(r['headline'])}"
    if not r["is_dp"]:
        trainer = known.trainer if known is not None else None
        if trainer == "pooled":
            return f"no privacy: every agency's records are copied into one place ({value}; the utility reference)"
        if trainer == "per-agency":
            return f"nothing is shared, but each agency learns only from its own records ({value})"
        return f"no formal privacy: the coordinator sees plain model updates, which can leak records ({value})"
    failure = _failure(study, focus, r, n_agencies)
    if failure:
        return failure
    if str(r["privacy_unit"]) == "agency":
        share = kept_share(r["headline"], central, chance)
        kept = f"; it keeps {percent_kept(share)} of pooling's gain" if share is not None else ""
        few = f" and with {n_agencies} agencies its noise is large" if n_agencies < FEW_AGENCIES else ""
        return f"agency-level DP holds only if the coordinator is trusted (it sees every update in the clear and adds the noise itself){few} ({value}{kept})"
    return None


def _budget_text(study: Study, focus: views.Focus, line: str, r: pd.Series) -> str:
    rows = _budget_rows(study, focus, line)
    budgets = sorted({float(b) for b in rows["budget"].dropna()}) if not rows.empty else []
    delta = f", δ = {fmt.budget(r['delta'])}" if not fmt.missing(r["delta"]) else ""
    if len(budgets) > 1:
        text = f"each agency's own ε budget ({fmt.budget(budgets[0])} to {fmt.budget(budgets[-1])}{delta})"
    else:
        eps = budgets[0] if budgets else r["eps_budget"]
        text = f"ε = {fmt.budget(eps)} per agency{delta}"
    swept = views.dp_budgets(study, focus.facet)
    if study.kind == "sweep" and len(swept) > 1:
        text += f" (one of the swept budgets {', '.join(fmt.budget(b) for b in swept)})"
    return text


def _releases(study: Study, arch: str) -> tuple[str, str]:
    """What leaves an agency under `arch`, from summary.json `releases`, and its source."""
    summary = study.cells[0].summary or {}
    releases = [r for r in summary.get("releases") or [] if isinstance(r, dict)]
    known = architectures.find(arch)
    if not releases or known is None:
        return f"{fmt.NOT_MEASURED}: summary.json declares no releases (an older run)", "summary.json releases (absent)"
    regime = known.regime
    messages = (*TRAINING_MESSAGES, *((contract.SECAGG,) if known.trainer == "secagg" else ()))
    mine = [r for r in releases if r.get("regime") == regime and r.get("message") in messages]
    # The mechanism's name only ("DP-SGD", "Gaussian count (sensitivity 1)"): the table below has the rest.
    dp = list(dict.fromkeys(f"{FIELD_WORDS.get(str(r['field']), r['field'])} ({str(r.get('mechanism') or 'DP').split(':')[0].split(',')[0]})" for r in mine if r.get("kind") == "dp"))
    public = list(dict.fromkeys(FIELD_WORDS.get(str(r["field"]), str(r["field"])) for r in mine if r.get("kind") == "public"))
    parts = []
    if dp:
        parts.append("DP releases, charged to its own ledger before they leave: " + "; ".join(dp))
    if public:
        parts.append("Declared public: " + ", ".join(public))
    return ". ".join(parts), f"summary.json releases (regime {regime})"


def _spent(study: Study, focus: views.Focus, r: pd.Series) -> tuple[str, str]:
    """ε spent to date: max over agencies and per agency, from the agencies' ledgers when the
    summary has them (everything each spent, every architecture), else the architecture's rows."""
    cell = next((c for c in study.cells if c.name in focus.cells and r["architecture"] in ((c.summary or {}).get("architectures") or {})), study.cells[0])
    ledgers = (cell.summary or {}).get("ledgers")
    order = list(views.focus_agencies(study, focus).drop_duplicates("agency")["agency"]) if not study.agencies.empty else []
    rows = _budget_rows(study, focus, r["line"])
    rows = rows[rows["cell"].isin(focus.cells)] if not rows.empty else rows
    candidates: list[tuple[dict[str, tuple[Any, Any]], str, str]] = []
    if isinstance(ledgers, dict) and str(r["privacy_unit"]) != "agency":
        candidates.append((
            {a: (v.get("epsilon_spent_to_date"), v.get("epsilon_budget")) for a, v in ledgers.items() if isinstance(v, dict)},
            "each agency's ledger after the run, every architecture",
            f"{cell.source or 'summary.json'} ledgers.<agency>.epsilon_spent_to_date, .epsilon_budget",
        ))
    candidates.append((
        {row["agency"]: (row["epsilon"], row["budget"]) for _, row in rows.iterrows()},
        f"{r['line']}'s ledger figures" + (f", cell {cell.name}" if study.kind == "sweep" else ""),
        f"{cell.source or 'summary.json'} architectures.{r['architecture']}.per_agency.<agency>.epsilon",
    ))
    for spent, where, source in candidates:  # the ledgers, unless none of them could be read
        names = sorted(spent, key=lambda a: (order.index(a) if a in order else len(order), a))
        values: list[tuple[str, float, object]] = [(a, float(spent[a][0]), spent[a][1]) for a in names if not fmt.missing(spent[a][0])]
        if values:
            top = max(values, key=lambda v: v[1])
            shown = values if len(values) <= MAX_LISTED else sorted(values, key=lambda v: -v[1])[:TOP_LISTED]
            per = "; ".join(f"{a} {fmt.eps(e)}" + (f"/{fmt.budget(b)}" if not fmt.missing(b) else "") for a, e, b in shown)
            if len(shown) < len(values):  # a first screen, not a table: the highest spenders, then a bound
                per += f"; {len(values) - len(shown)} more agencies, each ε ≤ {fmt.eps(shown[-1][1])} (the table below lists all)"
            budget = f", budget {fmt.budget(top[2])}" if not fmt.missing(top[2]) else ""
            per_unit = f" {PER_UNIT[str(r['privacy_unit'])]}" if str(r["privacy_unit"]) in PER_UNIT else ""
            return f"max over agencies ε {fmt.eps(top[1])}{per_unit} ({top[0]}{budget}); per agency, spent/budget ({where}): {per}", source
    source = f"{_source(study)} architectures.{r['architecture']}.epsilon_max"
    if fmt.missing(r["epsilon_max"]):
        return f"{fmt.NOT_MEASURED}: no ε recorded", source
    if str(r["privacy_unit"]) == "agency":  # one ε covers the whole federation
        return f"ε {fmt.eps(r['epsilon_max'])} for the whole federation (agency-level DP: no per-agency figure)", source
    return f"max over agencies ε {fmt.eps(r['epsilon_max'])} (no per-agency figure recorded)", source


def _attack(study: Study, r: pd.Series) -> tuple[str, str]:
    source = f"{_source(study)} architectures.{r['architecture']}.audit"
    parts = []
    if not fmt.missing(r["mia_auc"]):
        bound = f"; the claimed ε allows at most {fmt.num(r['mia_bound'])}" if not fmt.missing(r["mia_bound"]) else ""
        parts.append(f"a membership-inference attack on the final model reached AUC {fmt.num(r['mia_auc'])} (0.5 = guessing whether a record was used in training{bound})")
    if not fmt.missing(r["eps_lower"]):
        claimed = f" against the ε {fmt.eps(r['eps_claimed'])} claimed" if not fmt.missing(r["eps_claimed"]) else ""
        parts.append(f"the canary audit measured ε ≥ {fmt.num(r['eps_lower'], 2)}{claimed}")
    if not parts:
        return f"{fmt.NOT_MEASURED}: these results hold no privacy audit (run with audit: true); the formal (ε, δ) guarantee above still bounds any attack", source
    return "; ".join(parts), source


def _incident_epsilon(study: Study, focus: views.Focus, arch: str) -> float | None:
    """Hotspot: the largest ε per incident record over the agencies (summary.json
    architectures.<arch>.per_agency.<agency>.epsilon_per_incident.epsilon), None if none."""
    values = []
    for cell in study.cells:
        if cell.name not in focus.cells:
            continue
        per_agency = (((cell.summary or {}).get("architectures") or {}).get(arch) or {}).get("per_agency") or {}
        for data in per_agency.values():
            incident = data.get("epsilon_per_incident") if isinstance(data, dict) else None
            if isinstance(incident, dict) and not fmt.missing(incident.get("epsilon")):
                values.append(float(incident["epsilon"]))
    return max(values) if values else None


def _unit(study: Study, focus: views.Focus, r: pd.Series) -> tuple[str, str]:
    unit = str(r["privacy_unit"])
    words = UNIT_WORDS.get(unit, unit)
    notes = study.privacy_notes
    if unit == "record" and isinstance(notes.get("unit"), str):
        words = notes["unit"]
    # The budget is the promise; what was spent (at most the budget) is in "ε spent to date".
    eps = r["eps_budget"] if not fmt.missing(r["eps_budget"]) else r["epsilon_max"]
    delta = fmt.budget(r["delta"]) if not fmt.missing(r["delta"]) else "not recorded"
    relation = r.get("neighbouring") if isinstance(r.get("neighbouring"), str) and r.get("neighbouring") else None
    neighbours = f", {relation} neighbours" if relation else ""
    scope = "per agency" if unit != "agency" else "for the federation"
    text = f"{words}, {scope}, (ε, δ) = ({fmt.budget(eps)}, {delta}){neighbours}"
    if not fmt.missing(eps):
        change = "changing any one such unit" if relation == "replace-one" else "adding or removing any one such unit"
        text += f": {change} changes the chance of anything released by at most a factor e^ε = {math.exp(float(eps)):.2f} (plus δ)"
    source = f"{_source(study)} privacy.unit, architectures.{r['architecture']}.privacy_unit, .delta, .neighbouring; config.yaml privacy.epsilon"
    if unit == "area-month":
        incident = _incident_epsilon(study, focus, str(r["architecture"]))
        if incident is None:
            text += "; one incident changes several area-month examples, so its own ε is larger (see the privacy notes)"
        else:
            text += f"; one incident changes several area-month examples: per incident record ε is up to {fmt.eps(incident)}, no meaningful guarantee for one incident"
            source += "; per_agency.<agency>.epsilon_per_incident.epsilon"
    return text, source


def _by_unit(study: Study, focus: views.Focus, r: pd.Series) -> tuple[dict[str, Any] | None, str]:
    """The recommended line's `epsilon_by_unit` block (summary.json, the same for every DP
    architecture of a run) in the cell the first screen judged, and that cell's summary file."""
    archs = study.archs
    rows = archs[(archs["line"] == r["line"]) & archs["cell"].isin(focus.cells)] if not archs.empty else archs
    names = list(rows["cell"]) if not rows.empty else []
    cell = next((c for c in study.cells if c.name in names), study.cells[0])
    entry = ((cell.summary or {}).get("architectures") or {}).get(str(r["architecture"])) or {}
    block = entry.get("epsilon_by_unit") if isinstance(entry, dict) else None
    return (block if isinstance(block, dict) else None), cell.source or "summary.json"


def _figure_delta(figure: dict[str, Any], delta: object) -> str:
    """", at δ = …" when a figure's δ differs from the run's (a group conversion's grows with k)."""
    d = figure.get("delta")
    if not isinstance(d, int | float) or (isinstance(delta, int | float) and math.isclose(d, delta)):
        return ""
    return " at δ = 1, i.e. no meaningful guarantee" if d >= 1 else f" at δ = {fmt.budget(d)}"


def _person(study: Study, focus: views.Focus, r: pd.Series) -> tuple[str, str] | None:
    """ε per person beside the record-level ε, so that nobody reads a record-level ε as a person's:
    under privacy.unit person the person-level figures (one agency, the federation); under the
    record unit the group-privacy ε of the heaviest person. None where a unit is not a record."""
    if str(r["privacy_unit"]) not in ("record", "person"):
        return None
    block, where = _by_unit(study, focus, r)
    arch = str(r["architecture"])
    source = f"{where} architectures.{arch}.epsilon_by_unit"
    record = (block or {}).get("record") or {}
    within, across = (block or {}).get("person_within_agency"), (block or {}).get("person_across_federation")
    conversion = (block or {}).get("group_conversion_heaviest_person")
    if block is None or fmt.missing(record.get("epsilon")):
        return (
            f"{fmt.NOT_MEASURED}: no epsilon_by_unit (the data has no person keys, or an older run). A record-level ε is no "
            "person guarantee: by group privacy a person with k records gets only about k·ε",
            source + " (absent)",
        )
    delta = record.get("delta")
    if block.get("unit") == "person" and isinstance(within, dict) and isinstance(across, dict):
        text = (
            f"person within one agency ε {_bound(within, delta)}; person across the federation ε "
            f"{_bound(across, delta)} (a person in up to {across.get('max_agencies', '?')} agencies); "
            f"δ = {fmt.budget(delta)}. Per incident record ε {fmt.eps(record['epsilon'])} (one record changes one person's clipped sum)"
        )
        if block.get("released_at_both_units"):
            text += f". {', '.join(block['released_at_both_units'])} also released at the record unit: counted in every figure"
        return text, f"{source}.person_within_agency.epsilon, .person_across_federation.epsilon, .record.epsilon, .record.delta"
    text = f"record-level DP: ε {fmt.eps(record['epsilon'])} per incident record is not a person's guarantee"
    if isinstance(conversion, dict):
        text += (
            f". A person with {conversion['k']} records (the heaviest, {conversion.get('agency', 'one agency')}): ε ≈ "
            f"{fmt.eps(conversion['epsilon'])}{_figure_delta(conversion, delta)} (group privacy)"
        )
        if isinstance(across, dict) and not fmt.missing(across.get("epsilon")):
            text += f"; across the federation ε ≈ {fmt.eps(across['epsilon'])}"
        source += ".record.epsilon, .group_conversion_heaviest_person.k, .epsilon, .delta; .person_across_federation.epsilon"
    else:
        source += ".record.epsilon (no person keys: no group_conversion_heaviest_person)"
    return text + ". A person-level guarantee needs privacy.unit: person", source


def _bound(figure: dict[str, Any], delta: object) -> str:
    """An ε figure with its δ, or why there is none (record-unit releases without person keys)."""
    if figure.get("epsilon") is None:
        return "unbounded (an agency also released at the record unit and has no person keys to bound a person's records)"
    return f"{fmt.eps(figure['epsilon'])}{_figure_delta(figure, delta)}"


def _against_alone(study: Study, focus: views.Focus, r: pd.Series, local: float) -> tuple[str, str] | None:
    """How the agencies fare under `r` against training alone (local), agency by agency: a
    federation can lose overall (big agencies do as well alone) and still be what small ones need."""
    per = views.focus_agencies(study, focus)
    if per.empty or "local" not in set(per["line"]):
        return None
    alone = per[per["line"] == "local"].set_index("agency")["headline"]
    mine = per[per["line"] == r["line"]].set_index("agency")["headline"]
    gains = {a: float(mine[a] - alone[a]) for a in mine.index if a in alone.index and not fmt.missing(mine[a]) and not fmt.missing(alone[a])}
    if not gains:
        return None
    label = study.headline_label
    top = max(gains, key=lambda a: gains[a])
    n_up = sum(g > 0 for g in gains.values())
    text = f"{n_up} of {len(gains)} agencies score higher than training alone"
    text += f" (most: {top}, {fmt.signed(gains[top])} {label})" if n_up else ""
    if not fmt.missing(local):
        text += f"; overall {label} {fmt.num(r['headline'])} against {fmt.num(local)} with every agency alone"
    return text, f"{_source(study)} architectures.{r['architecture']}.per_agency.<agency>.metrics.{study.headline} and architectures.local.per_agency.<agency>.metrics.{study.headline}"


def answer(study: Study, focus: views.Focus) -> Answer:
    table = views.focus_archs(study, focus)
    label, chance = study.headline_label, study.chance
    rows = {str(r["line"]): r for _, r in table.iterrows()} if not table.empty else {}
    central = rows["central"]["headline"] if "central" in rows else math.nan
    n_agencies = len(set(study.agencies["agency"])) if not study.agencies.empty else 0
    why = {line: _why_not(study, focus, r, central, n_agencies) for line, r in rows.items()}
    eligible = [line for line, reason in why.items() if reason is None]
    best = max(eligible, key=lambda line: rows[line]["headline"], default=None)
    if best is not None:  # a tie goes to the architecture whose coordinator sees only the sum
        ties = [line for line in eligible if rows[best]["headline"] - rows[line]["headline"] < TIE and _secagg(rows[line])]
        best = ties[0] if ties and not _secagg(rows[best]) else best
        if str(rows[best]["privacy_unit"]) == "record":
            per_person = [line for line in eligible if str(rows[line]["privacy_unit"]) == "person" and rows[best]["headline"] - rows[line]["headline"] < UNIT_TIE]
            if per_person:
                record_best = best
                best = max(per_person, key=lambda line: (rows[line]["headline"], _secagg(rows[line])))
                gap = rows[record_best]["headline"] - rows[best]["headline"]
                why[record_best] = (
                    f"{label} {fmt.num(rows[record_best]['headline'])}, {fmt.num(gap)} above {best}'s {fmt.num(rows[best]['headline'])}, "
                    f"less than {UNIT_TIE:g}: {best} is preferred, its ε holds per person with all their records, not per record"
                )
        for line in eligible:
            if line != best and why[line] is None:
                gap = rows[best]["headline"] - rows[line]["headline"]
                values = f"{label} {fmt.num(rows[line]['headline'])} against {best}'s {fmt.num(rows[best]['headline'])}"
                if gap < 0 and str(rows[best]["privacy_unit"]) == "person" and str(rows[line]["privacy_unit"]) == "record":  # UNIT_TIE
                    why[line] = f"{values}: higher by less than {UNIT_TIE:g}, but its ε holds per record only; {best}'s holds per person"
                elif gap < TIE and _secagg(rows[best]):
                    why[line] = f"{values}, a tie within {TIE:g}: {best} is preferred, its coordinator sees only the sum of the updates"
                else:
                    extra = " (it adds secure aggregation: the coordinator sees only the sum)" if _secagg(rows[line]) else ""
                    if str(rows[line]["privacy_unit"]) == "person" and str(rows[best]["privacy_unit"]) == "record":  # a unit sweep
                        extra += "; but its ε holds per person with all their records, a far stronger promise at the same ε (see ε per person)"
                    why[line] = f"{label} {fmt.num(rows[line]['headline'])}, {fmt.num(gap)} below {best}'s {fmt.num(rows[best]['headline'])}{extra}"
    verdicts = {line: "recommended" if line == best else f"not recommended: {why[line]}" for line in rows}
    failed = {line: str(reason) for line, r in rows.items() if r["is_dp"] and (reason := _failure(study, focus, r, n_agencies))}
    others = [(line, str(why[line])) for line in sorted(rows, key=views.arch_order) if line != best]
    src = _source(study)
    if best is None:
        dp_ran = any(bool(r["is_dp"]) for r in rows.values())
        headline = (
            "No DP architecture can be recommended at this budget: none kept every agency within its budget with a model better than chance (reasons below)."
            if dp_ran
            else "No differentially private architecture was run, so none can be recommended for a privacy budget (add fedavg-dp to the config's architectures)."
        )
        items = [Item("utility", "Utility kept", f"{fmt.NOT_MEASURED}: no architecture recommended", src)]
        unit = study.privacy_notes.get("unit") if isinstance(study.privacy_notes.get("unit"), str) else None
        items.append(Item("unit", "Privacy unit", f"{unit}, per agency (no DP architecture qualified)" if unit else f"{fmt.NOT_MEASURED}: no DP architecture qualified", f"{src} privacy.unit"))
        return Answer(None, headline, items, others, verdicts, failed)

    r = rows[best]
    known = architectures.find(str(r["architecture"]))
    description = f" — {known.description}" if known is not None else ""
    headline = f"Recommended at {_budget_text(study, focus, best, r)}: {best}{description}."
    share = kept_share(r["headline"], central, chance)
    if share is None:
        utility = f"{label} {fmt.num(r['headline'])}; " + (f"pooling all records did no better than chance ({label} {fmt.num(central)})" if not fmt.missing(central) else "pooling (central) was not run, so no share can be given")
    else:
        gain = "gain over chance" if chance is not None else "score"
        chance_text = f"; chance is {chance:g}" if chance is not None else ""
        utility = f"{percent_kept(share)} of pooling's {label} {gain}: {label} {fmt.num(r['headline'])} against {fmt.num(central)} with every record pooled in one place{chance_text}"
        if share < LOW_SHARE:  # the best there is, but little: say what would change it
            utility += "; little is kept at this budget: a larger ε or more records per agency would keep more (a sweep over privacy.epsilon shows how much)"
    items = [
        Item("utility", "Utility kept", utility, f"{src} architectures.{r['architecture']}.metrics.{study.headline} ÷ architectures.central.metrics.{study.headline} (each minus chance)"),
    ]
    alone = _against_alone(study, focus, r, rows["local"]["headline"] if "local" in rows else math.nan)
    if alone is not None:
        items.append(Item("alone", "Against training alone", *alone))
    items.append(Item("unit", "Privacy unit", *_unit(study, focus, r)))
    person = _person(study, focus, r)
    if person is not None:
        items.append(Item("person", "ε per person", *person))
    releases, release_src = _releases(study, str(r["architecture"]))
    moved = f"; raw records moved: {fmt.count(r['records_moved'])}, model updates sent: {fmt.megabytes(r['update_bytes'])} in all" if not fmt.missing(r["records_moved"]) else ""
    items.append(Item("releases", "What leaves each agency", releases + moved, release_src + f", architectures.{r['architecture']}.records_moved, .update_bytes"))
    items.append(Item("spent", "ε spent to date", *_spent(study, focus, r)))
    items.append(Item("attack", "What an attacker could learn", *_attack(study, r)))
    return Answer(best, headline, items, others, verdicts, failed)


def _secagg(r: pd.Series) -> bool:
    known = architectures.find(str(r["architecture"]))
    return known is not None and known.trainer == "secagg"
