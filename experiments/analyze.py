"""`peel analyze CONFIG`: the config's `analytics:` queries released across the agencies in one
of four modes, each histogram charged to every releasing agency's ledger before it leaves.

A run folder holds `analytics/<query>.csv` (one row per cell: released value, 95% half-width,
and on synthetic data the exact pooled value), `summary.json["analytics"]`, `configs/analytics.yaml`
and `config.yaml`. The exact pooled counts are the harness's yardstick (what `central` computes);
on real data they score the error but are not written per cell.
"""

from __future__ import annotations

import json
import math
import secrets
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from clients.analytics import AnalyticsAgency, AnalyticsRefused
from experiments.analytics_audit import audit_note, audit_queries, floor_note
from experiments.analytics_config import AnalyticsConfig, QueryConfig
from experiments.analytics_scoring import count_errors, rate_errors, rate_half_width, rates, top_k, top_k_scores, value_errors
from experiments.config import ConfigError, PeelConfig, dump
from experiments.prepare import add_months, check_output_folder, materialise, write_spec
from experiments.results import write_atomic, write_json
from federation.policy import AgencyPolicy
from federation.secure_sum import modulus_for
from federation.spec import TRAIL_FILE
from policedata.loader import load_areas
from privacy import audit_trail
from privacy.accounting import Entry
from privacy.count_release import Z95, ShareDesign, calibrate_noise_multiplier, count_event, half_width, noise_variance, share_floor
from privacy.ledger import Ledger
from privacy.mechanisms import DISCRETE_GAUSSIAN, SKELLAM, MechanismEvent
from privacy.noise import skellam_mu
from privacy.person_histogram import PersonCaps, l2_records
from privacy.person_unit import federation_epsilon
from server.analytics import secure_sum, trusted_sum
from tasks.analytics import VALUE_KINDS, Domain, Grid, Histogram, Query, cell_frame, cell_totals, true_sums, value_report

UNIT = "one incident record (add/remove-one); a record falls in one cell of a histogram"
PERSON_UNIT = ("person: one person with every record attributed to them (victim, else suspect; a record without either is a person of its own), "
               "added or removed; capped per agency (privacy/person_histogram.py), charged to the agency's person ledger")
MECHANISM = {
    "central": "none: the exact pooled count (a central platform pools every record)",
    "local": "discrete Gaussian N_Z(0, σ²) per agency, summed: the noise of every agency adds up",
    "federated": "discrete Gaussian shares N_Z(0, s²), s = σ/√(n − t), summed under a pairwise-masked modular sum (secure aggregation)",
    "federated-trusted": "discrete Gaussian N_Z(0, σ²) added by a coordinator trusted with the exact counts",
}
SKELLAM_MECHANISM = {
    "local": "Skellam Sk(μ), μ = σ²/2, per agency, summed: the noise of every agency adds up",
    "federated": "Skellam shares Sk(μ/(n − t)), μ = σ²/2, summed under a pairwise-masked modular sum (secure aggregation): the n − t honest shares sum to exactly Sk(μ)",
    "federated-trusted": "Skellam Sk(μ), μ = σ²/2, added by a coordinator trusted with the exact counts",
}
# A federated release is refused if the sum's distance from a discrete Gaussian would add more
# than this share of the agencies' δ (privacy.count_release.ShareDesign.delta_slack).
MAX_DELTA_SLACK_SHARE = 0.001
TAIL_SIGMAS = 60
# Every agency draws one noise value per cell (~40 µs each): 50,000 cells × 8 agencies ≈ 16 s.
MAX_GRID_CELLS = 50_000  # a share beyond 60 s has probability < e^-1800: the modulus leaves room for it


@dataclass(frozen=True)
class Released:
    """One histogram as released, with what the reader needs to judge it."""

    values: np.ndarray  # released count per cell
    variance: float  # noise variance per cell of the released values
    sigma: float  # the noise std the ε share calibrates (0: central)
    sigma_charged: float | None  # the noise std each releasing agency's ledger was charged (Skellam: √(2μ))
    share_sigma: float | None  # federated: each agency's share (std)
    reporting: tuple[str, ...]  # agencies whose counts are in the sum
    modulus: int | None = None  # federated: the secure sum's modulus
    delta_slack: float | None = None  # federated: what the sum's distance from N_Z adds to δ


@dataclass
class QueryOutcome:
    name: str
    kind: str
    frame: pd.DataFrame | None  # None: refused
    summary: dict[str, Any] = field(default_factory=dict)


def query_of(q: QueryConfig) -> Query:
    where = tuple((d, tuple(v)) for d, v in q.where.items())
    numerator = tuple((d, tuple(v)) for d, v in q.numerator.items())
    by = tuple(q.by) if q.kind != "top_k" else (tuple(q.by) or ("area",))
    bounds = (float(q.bounds[0]), float(q.bounds[1])) if q.bounds is not None else None
    return Query(q.name, q.kind, by, where, numerator, q.k, q.epsilon, q.column, bounds)


def pooled(agencies: Sequence[AnalyticsAgency], histogram: Histogram, domain: Domain) -> np.ndarray:
    """The exact pooled count per cell: every agency's records in one place (central's view)."""
    return np.sum([cell_totals(a.records, histogram, domain) for a in agencies], axis=0).astype(np.int64)


def mechanism_of(mode: str, noise: str) -> str:
    """summary.json's words for the mechanism of `mode` with `noise`."""
    return SKELLAM_MECHANISM[mode] if noise == SKELLAM and mode in SKELLAM_MECHANISM else MECHANISM[mode]


def charged_event(mode: str, sigma: float, design: ShareDesign, sensitivity: int, noise: str) -> MechanismEvent | None:
    """The event each releasing agency is charged for one histogram (None: central)."""
    if mode == "central":
        return None
    if mode == "federated":
        return design.event(sensitivity)
    return count_event(sigma, sensitivity=sensitivity, noise=noise)


def preflight(agencies: Sequence[AnalyticsAgency], events: list[MechanismEvent]) -> dict[str, float]:
    """ε each agency would have after all `events` (nothing written); AnalyticsRefused naming
    every agency that would refuse, so a query is released by all or by none."""
    after, refusals = {}, []
    for agency in agencies:
        try:
            after[agency.name] = agency.check(events)
        except AnalyticsRefused as exc:
            refusals.append(str(exc))
    if refusals:
        raise AnalyticsRefused("; ".join(refusals))
    return after


def release(mode: str, histogram: Histogram, domain: Domain, agencies: Sequence[AnalyticsAgency], sigma: float, analytics: AnalyticsConfig, run_id: str, *, dropped: Sequence[str] = (), noise_off_for_tests: bool = False) -> Released:
    """One histogram released in `mode` (charges ledgers; raises AnalyticsRefused before anything
    leaves if the federated sum could not keep σ)."""
    cells = histogram.size(domain)
    noise = analytics.noise
    if mode == "central":
        return Released(pooled(agencies, histogram, domain), 0.0, 0.0, None, None, tuple(a.name for a in agencies))
    if mode == "local":
        values = np.sum([a.local_release(histogram, domain, sigma, run_id, noise) for a in agencies], axis=0)
        return Released(values, len(agencies) * noise_variance(noise, sigma), sigma, sigma, None, tuple(a.name for a in agencies))
    if mode == "federated-trusted":
        exact = [a.exact_to_trusted(histogram, domain, sigma, run_id, noise) for a in agencies]
        return Released(trusted_sum(exact, sigma, noise), noise_variance(noise, sigma), sigma, sigma, None, tuple(a.name for a in agencies))
    design = share_design(agencies, analytics.tolerate, 0.0 if noise_off_for_tests else sigma, cells, noise)
    reporting = [a for a in agencies if a.name not in set(dropped)]
    if len(agencies) - len(reporting) > design.tolerate:
        raise AnalyticsRefused(f"{len(agencies) - len(reporting)} of {len(agencies)} agencies dropped out; the shares tolerate {design.tolerate}: the sum would carry less noise than σ = {sigma:.3g}, so nothing is released")
    slack = design.delta_slack(stated_epsilon(agencies), cells) if design.sigma > 0 else 0.0
    if slack > MAX_DELTA_SLACK_SHARE * analytics_delta(agencies):
        raise AnalyticsRefused(f"the sum of {design.honest} noise shares over {cells:,} cells is too far from a discrete Gaussian (δ slack {slack:.2g}); use fewer cells or a larger σ")
    # The modulus holds the largest possible |sum|: every agency's clamped total (max_cell_count
    # records, each moving it by at most the histogram's per-record step) plus its share's tail.
    bound = len(reporting) * (analytics.max_cell_count * histogram.sensitivity + math.ceil(TAIL_SIGMAS * design.share_sigma))
    modulus = modulus_for(bound)
    peers = {a.name: a.public_key() for a in reporting}  # relayed by the coordinator
    context = f"{run_id}/{histogram.name}".encode()
    masked = [a.masked_share(histogram, domain, design, peers, modulus, context, run_id, noise_off_for_tests=noise_off_for_tests) for a in reporting]
    charged = design.guaranteed_sigma if design.sigma > 0 else None
    return Released(secure_sum(masked), design.released_variance(len(reporting)), sigma, charged, design.share_sigma, tuple(a.name for a in reporting), modulus, slack)


def stated_epsilon(agencies: Sequence[AnalyticsAgency]) -> float:
    """The ε an agency's guarantee is stated at, at most: the largest budget."""
    return max(a.policy.budget for a in agencies)


def share_design(agencies: Sequence[AnalyticsAgency], tolerate: int, sigma: float, cells: int, noise: str = DISCRETE_GAUSSIAN) -> ShareDesign:
    """Federated noise shares for `agencies`: discrete Gaussian shares floored where the sum of
    n − t shares is a discrete Gaussian to within MAX_DELTA_SLACK_SHARE of δ over `cells` cells;
    Skellam shares unfloored (their sum is exactly a Skellam)."""
    n = len(agencies)
    t = min(tolerate, n - 1)
    if noise == SKELLAM:
        return ShareDesign(n, t, sigma, 0.0, SKELLAM)
    floor = share_floor(cells, n - t, stated_epsilon(agencies), MAX_DELTA_SLACK_SHARE * analytics_delta(agencies))
    return ShareDesign(n, t, sigma, floor)


def analytics_delta(agencies: Sequence[AnalyticsAgency]) -> float:
    """The smallest δ among the agencies (each reports ε at its own pinned δ)."""
    return min(a.policy.delta for a in agencies)


def record_sensitivity(histogram: Histogram) -> int:
    """One record's move of a histogram (integer units): the record unit's sensitivity."""
    return histogram.sensitivity


def histogram_sigmas(analytics: AnalyticsConfig, delta: float, sensitivity: Callable[[Histogram], int] = record_sensitivity) -> dict[str, tuple[float, float]]:
    """(noise std σ in the histogram's integer units, nominal ε share) per histogram, for `analytics.noise`. The histograms of
    queries without their own ε share one noise-to-sensitivity ratio m (σ = m·Δ), calibrated so
    that all of them together spend `analytics.epsilon` at δ; a query with its own ε has its
    histograms (a rate or a mean: two) calibrated together to it. Equal ratios: equal ε shares."""
    queries = [query_of(q) for q in analytics.queries]
    shared = [h for q in queries if q.epsilon is None for h in q.histograms()]
    out: dict[str, tuple[float, float]] = {}
    if shared:
        m = calibrate_noise_multiplier(analytics.epsilon, delta, [sensitivity(h) for h in shared], noise=analytics.noise)
        out.update({h.name: (m * sensitivity(h), analytics.epsilon / len(shared)) for h in shared})
    for q in queries:
        if q.epsilon is not None:
            hs = q.histograms()
            m = calibrate_noise_multiplier(q.epsilon, delta, [sensitivity(h) for h in hs], noise=analytics.noise)
            out.update({h.name: (m * sensitivity(h), q.epsilon / len(hs)) for h in hs})
    return out


def run_query(q: QueryConfig, analytics: AnalyticsConfig, domain: Domain, agencies: Sequence[AnalyticsAgency], delta: float, calibrated: dict[str, tuple[float, float]], run_id: str, *, with_truth: bool, noise_off_for_tests: bool = False) -> QueryOutcome:
    """Release one query (all its histograms, or none) and score it against the exact pooled counts."""
    query = query_of(q)
    hists = query.histograms()
    mode = analytics.mode
    sigmas = {h.name: calibrated[h.name][0] for h in hists}
    eps_shares = {h.name: calibrated[h.name][1] for h in hists}
    n = len(agencies)
    dropped: list[str] = []
    if mode == "federated" and analytics.dropouts:
        dropped = secrets.SystemRandom().sample([a.name for a in agencies], min(analytics.dropouts, n))
    releasing = [a for a in agencies if a.name not in dropped]
    noise = analytics.noise
    design = {h.name: share_design(agencies, analytics.tolerate, sigmas[h.name], h.size(domain), noise) for h in hists}
    person = agencies[0].persons is not None
    summary: dict[str, Any] = {"kind": query.kind, "mode": mode, "noise": noise if mode != "central" else None, "mechanism": mechanism_of(mode, noise), "unit": "person" if person else "record", "unit_description": PERSON_UNIT if person else UNIT, "by": list(query.by), "cells": hists[0].size(domain)}
    summary["sensitivity"] = {h.name: agencies[0].sensitivity(h) for h in hists}  # integer units (a sum: fixed-point steps), L2
    if person:  # the harness's figures: records the person caps left out, over every agency, and
        # (count, top_k, sum) the mean |capped − exact| per cell: the part of the error the caps cause
        summary["dropped_by_person_cap"] = max(sum(a.dropped_by_person_cap(h, domain) or 0 for a in agencies) for h in hists)
        if len(hists) == 1:
            capped = np.sum([a.exact_capped(hists[0], domain) for a in agencies], axis=0)
            summary["cap_bias_mae"] = float(np.abs(capped - pooled(agencies, hists[0], domain)).mean()) * hists[0].scale
    try:
        if mode == "federated" and n - len(releasing) > design[hists[0].name].tolerate:
            raise AnalyticsRefused(f"{n - len(releasing)} of {n} agencies dropped out; the shares tolerate {design[hists[0].name].tolerate}: the sum would carry less noise than σ, so nothing is released")
        if mode != "central" and not noise_off_for_tests:
            events = [e for h in hists if (e := charged_event(mode, sigmas[h.name], design[h.name], releasing[0].sensitivity(h), noise)) is not None]
            preflight(releasing, events)
        released = {h.name: release(mode, h, domain, agencies, sigmas[h.name], analytics, run_id, dropped=dropped, noise_off_for_tests=noise_off_for_tests) for h in hists}
    except AnalyticsRefused as exc:
        summary.update(refused=str(exc), epsilon_after={a.name: a.spent() for a in agencies})
        return QueryOutcome(query.name, query.kind, None, summary)
    exact = {h.name: pooled(agencies, h, domain) for h in hists}
    first = released[hists[0].name]
    summary.update(
        refused=None,
        epsilon_nominal_share=sum(eps_shares[h.name] for h in hists) if mode != "central" else 0.0,
        sigma=first.sigma,
        sigma_charged=first.sigma_charged,
        share_sigma=first.share_sigma,
        released_sigma=math.sqrt(first.variance),
        tolerate=design[hists[0].name].tolerate if mode == "federated" else None,
        honest_shares=design[hists[0].name].honest if mode == "federated" else None,
        # The share σ the sum-of-shares bound forces above σ/√(n − t) (experiments.analytics_audit.floor_note).
        share_floored=mode == "federated" and design[hists[0].name].floored,
        # Skellam: μ of the noise of std σ (Sk(μ), variance 2μ), the μ charged, each share's μ.
        mu=skellam_mu(first.sigma) if noise == SKELLAM and mode != "central" else None,
        mu_charged=skellam_mu(first.sigma_charged) if noise == SKELLAM and first.sigma_charged is not None else None,
        share_mu=design[hists[0].name].share_mu if noise == SKELLAM and mode == "federated" and first.sigma > 0 else None,
        reporting=len(first.reporting),
        modulus_bits=int(first.modulus).bit_length() - 1 if first.modulus else None,
        delta_slack=first.delta_slack,
        threshold=analytics.threshold,
        epsilon_after={a.name: a.spent() for a in agencies},
    )
    frame = cell_frame(hists[0], domain)
    if query.kind in VALUE_KINDS:
        summary.update(_value_figures(query, hists, released, agencies, domain))
        released_values, frame["half_width_95"], truth, records = _value_release(query, hists, released, agencies, domain)
        frame["released"] = released_values
        errors = value_errors(released_values, truth, records, analytics.threshold)
        frame = frame[[c for c in frame.columns if c not in ("released", "half_width_95")] + ["released", "half_width_95"]]
    elif query.kind == "rate":
        num, den = (released[h.name].values for h in hists)
        ex_num, ex_den = (exact[h.name] for h in hists)
        frame["numerator"], frame["denominator"] = num, den
        frame["released"] = rates(num, den)
        frame["half_width_95"] = rate_half_width(num, den, released[hists[0].name].variance, released[hists[1].name].variance, Z95)
        truth = rates(ex_num, ex_den)
        errors = rate_errors(frame["released"].to_numpy(), truth, ex_den, analytics.threshold)
    else:
        frame["released"] = first.values
        frame["half_width_95"] = half_width(first.variance, noise if mode != "central" else DISCRETE_GAUSSIAN)
        truth = exact[hists[0].name]
        errors = count_errors(first.values, truth, analytics.threshold)
    if with_truth:
        frame["true"] = truth
    summary.update(mae=errors.mae, relative_error=errors.relative_error, cells_above_threshold=errors.cells_above)
    if query.kind == "top_k":
        scores = top_k_scores(first.values, truth, query.k)
        chosen = top_k(first.values, query.k)
        frame["rank"] = pd.Series(range(1, len(chosen) + 1), index=chosen).astype("Int64")
        frame = frame.loc[chosen] if not with_truth else frame
        summary.update(k=query.k, overlap=scores.overlap, pai=scores.pai, pai_exact=scores.pai_exact)
    return QueryOutcome(query.name, query.kind, frame, summary)


def _value_figures(query: Query, hists: Sequence[Histogram], released: dict[str, Released], agencies: Sequence[AnalyticsAgency], domain: Domain) -> dict[str, Any]:
    """summary.json's figures of a sum or mean: bounds, fixed point, σ in the column's units, and
    the harness's counts of clamped and missing values and of the rounding (over all agencies)."""
    h = hists[0]
    assert h.value is not None
    report = value_report(pd.concat([a.records for a in agencies], ignore_index=True), h, domain)  # the harness's pooled view
    sens = agencies[0].sensitivity(h)
    return {
        "column": h.value.column, "bounds": [h.value.lo, h.value.hi], "centre": h.value.centre,
        "quantum": h.scale, "sensitivity_steps": sens, "sensitivity_value": sens * h.scale,
        "sum_sigma_value": released[h.name].sigma * h.scale, "sum_released_sigma_value": math.sqrt(released[h.name].variance) * h.scale,
        "clamped": report.clamped, "missing": report.missing, "quantisation_error_max": report.quantisation_error,
        "quantisation_error_bound_per_record": h.scale / 2,
        "budget_split": "one histogram" if query.kind == "sum" else "the centred sum and the count of records with a value: equal shares (the same noise-to-sensitivity ratio)",
    }


def _value_release(query: Query, hists: Sequence[Histogram], released: dict[str, Released], agencies: Sequence[AnalyticsAgency], domain: Domain) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(released value, 95% half-width, truth, records with a value) per cell of a sum or mean, in
    the column's units. Truth: Σ x (or the mean) of the raw values, neither clamped nor rounded."""
    h = hists[0]
    assert h.value is not None
    raw = np.sum([true_sums(a.records, h, domain) for a in agencies], axis=0)
    counted = Histogram(h.name, h.by, h.where, present=h.value.column)
    records = pooled(agencies, counted, domain)
    total = released[h.name]
    if query.kind == "sum":
        return total.values * h.scale, np.full(total.values.size, Z95 * math.sqrt(total.variance) * h.scale), raw, records
    count = released[hists[1].name]
    mean = h.value.centre + rates(total.values, count.values) * h.scale
    half = rate_half_width(total.values, count.values, total.variance, count.variance, Z95) * h.scale
    with np.errstate(divide="ignore", invalid="ignore"):
        truth = np.where(records > 0, raw / np.maximum(records, 1), np.nan)
    return mean, half, truth, records


def _unit_block(config: PeelConfig, agencies: Sequence[AnalyticsAgency]) -> dict[str, Any]:
    """summary.json's unit figures of the block: the unit, and under the person unit the caps,
    the derived sensitivity and the person's ε across the federation (training's rule: the worst
    composition of privacy.person.max_agencies agencies' person ledgers, privacy.person_unit)."""
    if not agencies or agencies[0].persons is None:
        return {"unit": "record", "unit_label": "record level, add/remove-one"}
    caps = agencies[0].persons.caps
    histories: dict[str, list[Entry]] = {}
    for a in agencies:
        with Ledger.inspect(a.ledger) as ledger:  # read only
            histories[a.name] = ledger.history()
    across = federation_epsilon(histories, config.privacy.delta, config.privacy.person.max_agencies)
    return {
        "unit": "person",
        "unit_label": f"person level: at most {caps.max_records} records, {caps.cells} cells and {caps.per_cell} records per cell per person and agency, L2 sensitivity {l2_records(caps):.3g} records",
        "person_caps": {"max_records": caps.max_records, "max_cells": caps.cells, "max_per_cell": caps.per_cell, "l2_records": l2_records(caps)},
        "person_across_federation": across.as_dict(),
    }


# --- the command ------------------------------------------------------------------------
def _domain(config: PeelConfig, federation: Any, names: Sequence[str]) -> Domain:
    first, last = federation.period
    months, month = [], first
    while month <= last:
        months.append(month)
        month = add_months(month, 1)
    if federation.areas is None:
        return Domain(tuple(months), tuple(sorted(names)))
    table = load_areas(federation.areas)
    grid = None
    if config.analytics is not None and any("grid" in q.by for q in config.analytics.queries):
        lon, lat = table["Longitude"], table["Latitude"]
        grid = Grid.over(float(lon.min()), float(lon.max()), float(lat.min()), float(lat.max()), config.analytics.grid_km)
        if grid.rows * grid.cols > MAX_GRID_CELLS:
            raise ConfigError(f"analytics.grid_km: {config.analytics.grid_km:g} km squares over the areas' extent make {grid.rows * grid.cols:,} cells; at most {MAX_GRID_CELLS:,}")
    return Domain(tuple(months), tuple(sorted(names)), tuple(table["LSOA code"].astype(str)), grid)


def _needs_areas(analytics: AnalyticsConfig) -> bool:
    return any(q.kind == "top_k" or {"area", "grid"} & {*q.by, *q.where} for q in analytics.queries)


def _new_run_dir(config: PeelConfig) -> Path:
    from experiments.run_folder import new_run_dir  # torch-free callers elsewhere; imported here once

    return new_run_dir(config)


def _load_agencies(config: PeelConfig, federation: Any, trail: Path) -> list[AnalyticsAgency]:
    """Every agency of the federation, each reading only its own folder and ledger."""
    assert config.analytics is not None
    return [
        AnalyticsAgency.load(a["name"], Path(a["folder"]), Path(a["ledger"]), policy, config.data.agency.column, config.data.agency.pattern, config.analytics.max_cell_count, trail=trail,
                             person_caps=PersonCaps(policy.person_max_records, config.analytics.person_max_cells, config.analytics.person_max_per_cell))
        for a in federation.agencies
        for policy in [AgencyPolicy.from_dict(a["policy"])]
    ]


def release_block(config: PeelConfig, federation: Any, agencies: Sequence[AnalyticsAgency], out_dir: Path, run_id: str, *, noise_off_for_tests: bool = False) -> dict[str, Any]:
    """Release every query of `config.analytics`: `out_dir/analytics/<query>.csv`,
    `out_dir/configs/analytics.yaml`; returns `summary.json["analytics"]`."""
    analytics = config.analytics
    assert analytics is not None
    started = time.perf_counter()
    domain = _domain(config, federation, [a.name for a in agencies])
    (out_dir / "configs").mkdir(exist_ok=True)
    write_atomic(out_dir / "configs" / "analytics.yaml", yaml.safe_dump({"analytics": analytics.model_dump(mode="json")}, sort_keys=False))
    (out_dir / "analytics").mkdir(exist_ok=True)
    if analytics.noise == SKELLAM and any(a.persons is not None for a in agencies):
        raise ConfigError("analytics.noise: skellam is accounted for the record unit only; an agency counts persons (privacy.unit person): use discrete-gaussian")
    # Every agency shares the caps (one config), so one agency's sensitivities calibrate all.
    calibrated = histogram_sigmas(analytics, config.privacy.delta, agencies[0].sensitivity if agencies else record_sensitivity)
    with_truth = config.data.source == "synthetic"
    results = {}
    for q in analytics.queries:
        outcome = run_query(q, analytics, domain, agencies, config.privacy.delta, calibrated, run_id, with_truth=with_truth, noise_off_for_tests=noise_off_for_tests)
        if outcome.frame is not None:
            write_atomic(out_dir / "analytics" / f"{q.name}.csv", outcome.frame.to_csv(index=False, float_format="%.6g"))
        results[q.name] = outcome.summary
    if config.audit.enabled and analytics.mode != "central" and not noise_off_for_tests:
        audit_queries(results, config.privacy.delta)
    return _json_safe({
        "run_id": run_id,
        "mode": analytics.mode,
        "epsilon": analytics.epsilon,
        "noise": analytics.noise,
        "delta": config.privacy.delta,
        "agencies": len(agencies),
        "data": config.data.source,
        "seconds": round(time.perf_counter() - started, 2),
        "queries": results,
        "max_epsilon_after": max((a.spent() for a in agencies), default=0.0),
        **_unit_block(config, agencies),
    })


def analyze(config: PeelConfig, config_file: str = "", *, noise_off_for_tests: bool = False) -> Path:
    """Write a run folder with the released statistics of `config.analytics`; its path."""
    analytics = config.analytics
    if analytics is None:
        raise ConfigError(f"{config_file or 'config'}: has no analytics: block (see configs/analytics.yaml)")
    check_output_folder(Path(config.output), f"{config_file or 'config'}: output")
    run_dir = _new_run_dir(config)
    try:
        federation = materialise(config, run_dir / "data")
        write_spec(config, federation, run_dir, config_file=config_file)  # budgets, ledgers; read by `peel trail verify`
        check_beside(config, federation, config_file or "config")
        agencies = _load_agencies(config, federation, run_dir / TRAIL_FILE)
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    write_atomic(run_dir / "config.yaml", dump(config))
    block = release_block(config, federation, agencies, run_dir, run_dir.name, noise_off_for_tests=noise_off_for_tests)
    audit_trail.close(run_dir / TRAIL_FILE, run_dir.name)
    summary = {"run_id": run_dir.name, "config_file": config_file, "analytics": block, "audit_trail": {"file": TRAIL_FILE, "head": audit_trail.head(run_dir / TRAIL_FILE)}}
    write_json(run_dir / "summary.json", summary)
    return run_dir


def check_beside(config: PeelConfig, federation: Any, where: str = "config") -> None:
    """ConfigError (one line) if the analytics: block cannot run on this federation: before
    `peel run` trains, before `peel analyze` releases anything."""
    analytics = config.analytics
    if analytics is None:
        return
    if _needs_areas(analytics) and federation.areas is None:
        raise ConfigError(f"{where}: analytics: a query groups by area or grid, which needs the public areas table (data.areas)")
    _domain(config, federation, [a["name"] for a in federation.agencies])  # a grid too fine to hold is refused here
    n = len(federation.agencies)
    if analytics.noise == SKELLAM and config.privacy.unit == "person":
        raise ConfigError(f"{where}: analytics.noise: skellam is accounted for the record unit only (a person moves several cells; only the discrete Gaussian's multi-cell accounting is checked): use discrete-gaussian")
    if analytics.mode == "federated" and analytics.tolerate >= n:
        raise ConfigError(f"{where}: analytics.tolerate: {analytics.tolerate} with {n} agencies; at most {n - 1} (one agency's share must remain)")
    if analytics.dropouts > n:
        raise ConfigError(f"{where}: analytics.dropouts: {analytics.dropouts} of {n} agencies")


def analyze_beside(config: PeelConfig, run_dir: Path, federation: Any) -> dict[str, Any]:
    """`peel run` with an analytics: block: the agencies release the queries BEFORE training,
    charged to the same ledgers, so DP-SGD then calibrates to what is left of each budget (the
    block's ε is reserved off the top, and the ledger composes both exactly). Run id
    `<run>-analytics`, with a trail of its own (`analytics/audit.jsonl`). Returns the block for
    `add_to_summary` once the run's summary exists."""
    if config.analytics is None:
        return {}
    check_beside(config, federation)
    trail = run_dir / "analytics" / TRAIL_FILE
    trail.parent.mkdir(exist_ok=True)
    run_id = f"{run_dir.name}-analytics"
    block = release_block(config, federation, _load_agencies(config, federation, trail), run_dir, run_id)
    audit_trail.close(trail, run_id)
    block["audit_trail"] = {"file": f"analytics/{TRAIL_FILE}", "head": audit_trail.head(trail)}
    return block


def add_to_summary(run_dir: Path, block: dict[str, Any]) -> None:
    """Put an analytics block into the run's summary.json (nothing when there is none)."""
    if not block:
        return
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    summary["analytics"] = block
    write_json(run_dir / "summary.json", summary)


def _json_safe(value: Any) -> Any:
    """NaN/inf → None; numpy scalars → Python numbers (summary.json is strict JSON)."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def format_summary(summary: dict[str, Any]) -> str:
    """The end-of-run table: one line per query."""
    a = summary["analytics"]
    unit = f", per person ({a['unit_label']}; person ε across the federation {a['person_across_federation']['epsilon']:.3g})" if a.get("unit") == "person" else ""
    noise = f", {a['noise']} noise" if a.get("noise") and a["mode"] != "central" else ""
    lines = [f"analytics: mode {a['mode']}{noise}, {a['agencies']} agencies, ε per agency after: max {a['max_epsilon_after']:.3g} (δ={a['delta']:g}){unit}", f"{'query':<24} {'kind':<6} {'σ':>8} {'MAE':>10} {'rel.err':>8}  notes"]
    for name, q in a["queries"].items():
        if q.get("refused"):
            lines.append(f"{name:<24} {q['kind']:<6} {'—':>8} {'—':>10} {'—':>8}  refused: {q['refused']}")
            continue
        rel = f"{q['relative_error']:.3f}" if q.get("relative_error") is not None else "—"
        note = f"top-{q['k']} overlap {q['overlap']:.2f}, PAI {q['pai']:.2f} (exact {q['pai_exact']:.2f})" if q["kind"] == "top_k" else f"{q['cells']} cells"
        sigma = q["released_sigma"]
        if q["kind"] in VALUE_KINDS:  # σ of the (fixed-point) sum, in the column's units
            sigma = q["sum_released_sigma_value"]
            note += f"; {q['column']} in [{q['bounds'][0]:g}, {q['bounds'][1]:g}]: {q['clamped']:,} clamped, {q['missing']:,} without a value"
        if q.get("mu_charged") is not None:
            note += f"; Skellam μ {q['mu_charged']:.4g}"
        note += floor_note(q) + audit_note(q)
        if q.get("dropped_by_person_cap") is not None:
            note += f"; {q['dropped_by_person_cap']:,} records over the person caps dropped"
            if q.get("cap_bias_mae") is not None:
                note += f" (MAE from the caps alone {q['cap_bias_mae']:.3g})"
        lines.append(f"{name:<24} {q['kind']:<6} {sigma:>8.3g} {q['mae']:>10.4g} {rel:>8}  {note}")
    return "\n".join(lines)


__all__ = ["Released", "analyze", "format_summary", "release", "run_query"]
