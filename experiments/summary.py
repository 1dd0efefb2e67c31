"""summary.json: one block per architecture (its privacy figures, named as what they are), the
run's privacy notes and data counts, written once every architecture of a folder has run."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from experiments.config import PeelConfig
from experiments.hotspot_baselines import hotspot_baselines
from experiments.ledgers import agency_figures
from experiments.person_figures import epsilon_by_unit_of, person_canary_of, persons_of, record_persons_of, unit_ledgers
from experiments.reference import outcome_reference
from experiments.results import write_json
from experiments.run_folder import RunFolder
from experiments.scoring import ceiling, score
from experiments.small_test_sets import is_small
from federation import architectures, contract
from federation.spec import TRAIL_FILE
from privacy.person_unit import ADD_REMOVE_PERSON
from tasks import registry
from tasks.hotspot import HotspotSplit

log = logging.getLogger("peel.run")

FEATURES_NOTE = (
    "Every feature is computed from the record itself (category, month, time of day, location) "
    "against public config (declared vocabularies and region) or the public area covariates table; "
    "none is a statistic of an agency's own records, so one record "
    "changes one training example and the record-level DP-SGD guarantee holds as stated."
)
EPSILON_SCOPE = (
    "Record-level (one incident record, add/remove-one neighbours) (ε, δ)-DP of everything an agency "
    "has released from its records. `epsilon_spent_to_date` (and `epsilon`, `epsilon_max`): cumulative "
    "over all rounds, architectures and runs in the agency's ledger, at the δ its ledger pinned; "
    "`epsilon_this_run`: this run's releases alone (its record count and DP rounds up to the end of "
    "that architecture). Max over agencies, never an average."
)
HOTSPOT_FEATURES_NOTE = (
    "Hotspot examples are the area-months of the public areas table and period (a fixed set), and "
    "their features and labels are counts of the agency's own records, so adding or removing one "
    "incident record changes the content of up to g examples (g is `record_influence` per agency, "
    "the measured maximum). DP-SGD's (ε, δ) per area-month holds for replace-one (an example's "
    "content changes, the set does not). Per incident record, privacy.group.incident_epsilon "
    "bounds ε by accounting each step as a replace-one step of sensitivity g·C at rate "
    "1 - (1 - q)^g; at ε ≈ 1 per example and g of 20-30 it is in the thousands, i.e. hotspot DP "
    "gives no meaningful guarantee for one incident."
)
PERSON_UNIT = (
    "one person with every record attributed to them (the record's victim, else its suspect; privacy/person_unit.py), "
    "at most privacy.person.max_records of them per agency; per architecture, epsilon_by_unit gives the record-level, "
    "person-within-agency and person-across-federation figures"
)
RELEASED_WITHOUT_DP = (
    "In the DP architectures an agency sends only what federation/contract.py declares (summary "
    "`releases`): its DP update, its record count released once with Gaussian noise (charged), and "
    "figures derived from those and its own policy. No training loss, batch size, timing or label "
    "count leaves it; its per-round test metrics stay in its own folder. In fedavg and "
    "fedavg-central-dp agencies send exact counts, losses and test metrics in the clear."
)


def architecture_entry(arch: str, per_agency: dict[str, dict], folder: RunFolder, *, wall_s: float, delta: float | None, records_moved: int, update_bytes: int) -> dict:
    """One architecture's block of summary.json. Privacy figures per agency, named as what they
    are: `epsilon_this_run`, `epsilon_spent_to_date` (its ledger, all runs), `epsilon_budget`,
    `delta` (pinned by its ledger), `neighbouring`; `epsilon` is the spent-to-date figure."""
    splits = folder.splits
    for name, agency in per_agency.items():
        agency["n_train"], agency["n_test"] = len(splits[name].y_train), len(splits[name].y_test)
        agency["small_test_set"] = is_small(agency["n_test"], folder.config.task.min_test_records)  # its metrics are not solid
    spec = architectures.get(arch)
    unit = spec.privacy_unit
    task = folder.config.task.name
    neighbouring = registry.NEIGHBOURING[task]
    person = spec.record_dp and folder.config.privacy.unit == "person"  # privacy/person_unit.py
    if person:
        neighbouring = ADD_REMOVE_PERSON
    if spec.record_dp:
        for name, agency in per_agency.items():
            agency["neighbouring"] = neighbouring
            if task == "hotspot":
                agency["epsilon_per_incident"] = _incident_epsilon(folder, name)
    eps = [a["epsilon"] for a in per_agency.values() if a.get("epsilon") is not None]
    this_run = [a["epsilon_this_run"] for a in per_agency.values() if a.get("epsilon_this_run") is not None]
    sent = sum(a.get("updates_sent", 0) for a in per_agency.values())
    return {
        "metrics": None,  # filled by score()
        "per_agency": per_agency,
        # refused: a DP architecture none of whose agencies released an update (nothing learnt);
        # no-replies: a federated one whose rounds got no update at all (e.g. every reply timed
        # out): its model is the untrained initial one, not a result.
        "status": "refused" if spec.record_dp and sent == 0 else ("no-replies" if spec.federated and sent == 0 else "trained"),
        "privacy_unit": "person" if person else (registry.DP_EXAMPLE[folder.config.task.name] if unit == "record" else unit),
        "neighbouring": neighbouring if spec.record_dp else ("add-remove (one agency's update)" if unit == "agency" else None),
        "epsilon_max": max(eps) if eps else None,  # spent to date, max over agencies
        "epsilon_spent_to_date_max": max(eps) if eps and spec.record_dp else None,
        "epsilon_this_run_max": max(this_run) if this_run else None,
        "delta": delta if eps else None,
        "accountant": folder.config.privacy.accountant if eps else None,
        "wall_s": wall_s,
        "records_moved": records_moved,
        "update_bytes": update_bytes,
        **(_robustness(spec, folder.config) if spec.federated else {}),
    }


def _incident_epsilon(folder: RunFolder, name: str) -> dict | None:
    """Hotspot: ε per incident record of everything the agency's ledger holds (spent to date), by
    privacy.group.incident_epsilon over the g examples one incident changes; None where the
    ledger cannot be read here, or holds releases that bound does not cover (non-Gaussian)."""
    from privacy.group import incident_epsilon
    from privacy.ledger import Ledger, LedgerError

    agency = next(a for a in folder.federation.agencies if a["name"] == name)
    split = folder.splits[name]
    try:
        with Ledger.inspect(agency["ledger"]) as ledger:
            history, delta = ledger.history(), ledger.pinned_delta()
    except LedgerError:
        return None
    if not history or delta is None or not isinstance(split, HotspotSplit):
        return None
    try:
        return incident_epsilon(history, int(split.record_influence), delta, agency["policy"]["accountant"]).as_dict()
    except ValueError as exc:  # e.g. a Laplace release: the group bound covers Gaussians only
        log.warning("%s: no ε per incident record: %s", name, exc)
        return None


def _robustness(spec: architectures.Architecture, config: PeelConfig) -> dict:
    """A federated architecture's aggregator and the attack it faced (faults.malicious)."""
    fed, malicious = config.federation, config.faults.malicious
    aggregator = spec.aggregator(fed.aggregator)
    out: dict = {"aggregator": aggregator, "attack": malicious.model_dump() if malicious else None}
    if aggregator == "trimmed_mean":
        out["trimmed_beta"] = fed.trimmed_beta
    elif aggregator == "krum":
        out["krum_malicious"] = fed.krum_malicious
    if spec.aggregator_note:  # why it ignores federation.aggregator
        out["aggregator_note"] = spec.aggregator_note
    if aggregator == architectures.CLIPPED_MEAN:  # the norm every update is clipped to (adaptive: the first)
        out["clipping_norm"] = config.privacy.central.clipping_norm
    return out


def _public_counts(counts: dict) -> dict:
    """An agency's data counts without its label counts (the harness's, not a release; a label
    count is a statistic of the records that no DP agency sends)."""
    return {k: v for k, v in counts.items() if not k.startswith("positives")}


def _reference(folder: RunFolder) -> dict | None:
    found = outcome_reference(folder.splits, folder.config.seed)
    return found.as_dict() if found is not None else None


def summarise(folder: RunFolder) -> Path:
    """Score (and, with audit: true, audit) a run folder whose architectures have all run, and
    write its summary.json."""
    score(folder)
    if folder.config.audit.enabled:
        from experiments.audit import audit_folder  # imports this module

        audit_folder(folder)
        if folder.config.privacy.unit == "person":  # the record canaries audit record-level DP-SGD
            for arch, result in person_canary_of(folder).items():
                audit = folder.results[arch].setdefault("audit", {})
                audit["person_canary"] = result
                audit["canary_unavailable"] = "this run is person-level: the person canary audit is person_canary"
    config, splits, federation = folder.config, folder.splits, folder.federation
    record_persons = record_persons_of(folder)  # each agency's persons.csv, read once for both figures
    by_unit = epsilon_by_unit_of(folder, record_persons) if any(architectures.is_record_dp(a) for a in config.architectures) else None
    for arch in config.architectures:  # the three ε's (record, person within agency, across the federation)
        if architectures.is_record_dp(arch) and arch in folder.results:
            folder.results[arch]["epsilon_by_unit"] = by_unit
    summary = {
        "run_id": folder.run_dir.name,
        "config_file": str(folder.config_file),
        "task": config.task.name,
        "headline_metric": registry.HEADLINE[config.task.name],
        "agencies": [
            {"name": a["name"], "slug": a["slug"], "n_train": len(splits[a["name"]].y_train), "n_test": len(splits[a["name"]].y_test), "budget": a["budget"], "counts": _public_counts(splits[a["name"]].counts), "small_test_set": is_small(len(splits[a["name"]].y_test), config.task.min_test_records)}
            for a in federation.agencies
        ],
        # Each agency's ledger after the run (read where the harness runs beside the agencies).
        "ledgers": {name: figures.as_dict() for name, figures in agency_figures(unit_ledgers(federation.agencies, config)).items()} if any(architectures.is_record_dp(a) for a in config.architectures) else None,
        "warnings": folder.warnings,
        # The release boundary: every field an agency may send, DP (charged) or public (why).
        "releases": contract.release_table(),
        "architectures": {a: folder.results[a] for a in config.architectures},
        # Outcome with person keys: who pays per agency (people, repeat shares, records the cap dropped; the harness's).
        "persons": persons_of(folder, record_persons),
        "bayes_optimal": ceiling(folder),
        # Outcome: a pooled logistic regression and the base rate by category on the same rows (non-private, the harness's).
        "reference": _reference(folder),
        # Hotspot: models and analysts' baselines at 1/5/10% of areas, with intervals (the harness's).
        "hotspot_baselines": hotspot_baselines(folder),
        "privacy": {
            "unit": PERSON_UNIT if config.privacy.unit == "person" else "one incident record" if config.task.name == "outcome" else "one area-month example (see features); per incident record: epsilon_per_incident",
            "neighbouring": registry.NEIGHBOURING[config.task.name],
            "scope": EPSILON_SCOPE,
            "accountant": config.privacy.accountant,
            "sampling": "Poisson, rate = batch_size / agency training records",
            "noise_rng": "torch PRNG seeded from OS entropy (not a CSPRNG: Opacus secure_mode needs torchcsprng, unavailable here)",
            "features": FEATURES_NOTE if config.task.name == "outcome" else HOTSPOT_FEATURES_NOTE,
            "released_without_dp": RELEASED_WITHOUT_DP,
            "harness": (
                "n_train, n_test, counts and every test metric in this summary are the evaluation harness's: "
                "in simulation it holds every agency's records. They are not what a DP agency sent (see "
                "releases; metrics.jsonl holds what each agency sent)."
            ),
        },
        "data": {
            "source": config.data.source, "test_from": federation.test_from, "notes": federation.notes,
            "min_test_records": config.task.min_test_records,  # fewer test records: small_test_set (metrics not solid)
            # Rows whose agency could not be derived (data.agency.unmatched: drop): reason -> rows, overall and per file.
            "set_aside": (federation.set_aside or {}).get("counts", {}),
            "set_aside_by_file": (federation.set_aside or {}).get("by_file", {}),
        },
        "metrics_note": "metrics are per-agency scores on each agency's own test months; 'metrics' is their mean weighted by test records",
        "wall_s": time.perf_counter() - folder.started,
        "flower_startup_s": folder.startup_s,
        "audit_trail": {"file": TRAIL_FILE, "head": folder.trail_head} if folder.trail_head else None,
    }
    path = folder.run_dir / "summary.json"
    write_json(path, summary)
    return path
