"""`peel run`: every architecture of the config on the same agencies, split, initial model and
seed; results in one run folder. `peel sweep` runs many such folders through the same steps
(experiments/sweep.py), sharing data and one Flower start-up."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from clients.agency import Agency, load_split
from experiments.baselines import Training, train_central, train_local
from experiments.config import PeelConfig, dump
from experiments.ledgers import agency_figures, warn_low_budgets
from experiments.prepare import SPEC_FILE, Federation, check_output_folder, materialise, resolve_attacker, write_spec
from experiments.results import (
    append_rows,
    metric_values,
    per_agency_from_rows,
    read_rows,
    write_atomic,
    write_json,
)
from federation import architectures, contract
from federation.policy import AgencyPolicy
from policedata.ground_truth import outcome_probability
from policedata.loader import load_areas
from privacy.durable import save_durably
from tasks import registry
from tasks.fairness import deprivation_quintiles, flag_disparity, flag_shares_by_quintile, utility_spread
from tasks.hotspot import HotspotSplit
from tasks.hotspot_metrics import flag_weights, intensity_for_test
from tasks.metrics import binary_metrics, weighted_mean
from tasks.model import initial_model
from tasks.train import predict_proba

log = logging.getLogger("peel.run")

FEATURES_NOTE = (
    "Every feature is computed from the record itself (crime type, month, location) or from the "
    "public area covariates table; none is a statistic of an agency's own records, so one record "
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
RELEASED_WITHOUT_DP = (
    "In the DP architectures an agency sends only what federation/contract.py declares (summary "
    "`releases`): its DP update, its record count released once with Gaussian noise (charged), and "
    "figures derived from those and its own policy. No training loss, batch size, timing or label "
    "count leaves it; its per-round test metrics stay in its own folder. In fedavg and "
    "fedavg-central-dp agencies send exact counts, losses and test metrics in the clear."
)
Splits = dict[str, registry.Split]
# The model each agency would use after training: one shared model, or one per agency (local).
Models = torch.nn.Module | dict[str, torch.nn.Module]


@dataclass
class RunFolder:
    """One run folder: its resolved config, its agencies' data and the results gathered so far."""

    config: PeelConfig
    config_file: str
    run_dir: Path
    federation: Federation
    spec_path: Path
    results: dict[str, dict] = field(default_factory=dict)
    models: dict[str, Models] = field(default_factory=dict)
    startup_s: float | None = None
    trail_head: str | None = None  # hash of the audit trail's last entry (anchors the chain)
    warnings: list[str] = field(default_factory=list)  # said before training (e.g. budgets nearly spent)
    started: float = field(default_factory=time.perf_counter)
    _splits: Splits | None = None

    @property
    def splits(self) -> Splits:
        if self._splits is None:
            self._splits = {a["name"]: load_split(Agency(a["name"], Path(a["folder"]), self.spec_path, Path(a["ledger"]), AgencyPolicy.from_dict(a["policy"]), self.run_dir / "audit.jsonl")) for a in self.federation.agencies}
        return self._splits

    @functools.cached_property
    def intensity(self) -> pd.DataFrame | None:
        return registry.read_intensity(self.federation.ground_truth) if self.config.task.name == "hotspot" else None

    @functools.cached_property
    def areas(self) -> pd.DataFrame:
        return load_areas(self.federation.areas)

    def new_model(self) -> torch.nn.Module:
        config = self.config
        return initial_model(config.task.hidden, config.seed, registry.n_features(config.task.name))

    @property
    def federated(self) -> list[str]:
        return [a for a in self.config.architectures if architectures.is_federated(a)]


def _from_spec(run_dir: Path) -> tuple[dict, Federation]:
    from experiments.config import ConfigError

    try:
        spec = json.loads((run_dir / SPEC_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{run_dir}: not a run folder ({exc})") from None
    task = spec["task"]
    federation = Federation(
        spec["agencies"],
        Path(spec["areas"]) if spec.get("areas") else None,
        Path(spec["ground_truth"]) if spec.get("ground_truth") else None,
        task["test_from"],
        list(spec.get("notes", [])),
        tuple(task["period"]) if task.get("period") else None,
        spec.get("set_aside"),
    )
    return spec, federation


def reopen(run_dir: Path) -> RunFolder:
    """A finished run folder, read back (config, data, results and final models), e.g. to audit
    it afterwards."""
    from experiments.config import ConfigError, load_config

    spec, federation = _from_spec(run_dir)
    try:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{run_dir}: not a finished run folder ({exc})") from None
    # Federation is frozen: the summary's notes (written at the end of the run) replace the spec's.
    federation = dataclasses.replace(federation, notes=list(summary.get("data", {}).get("notes", federation.notes)))
    folder = RunFolder(load_config(run_dir / "config.yaml"), summary["config_file"], run_dir, federation, run_dir / SPEC_FILE, results=summary["architectures"])
    for arch in summary["architectures"]:
        folder.models[arch] = _load_models(folder, arch)
    return folder


def reopen_unfinished(run_dir: Path) -> RunFolder:
    """A run folder whose run stopped before its summary (to resume it), with its resolved
    config, its data and the baselines that had finished."""
    from experiments.config import ConfigError, load_config

    spec, federation = _from_spec(run_dir)
    if (run_dir / "summary.json").exists():
        raise ConfigError(f"{run_dir}: the run finished (summary.json); there is nothing to resume")
    folder = RunFolder(load_config(run_dir / "config.yaml"), spec.get("config_file", ""), run_dir, federation, run_dir / SPEC_FILE)
    for arch in architectures.baselines():
        entry = run_dir / "models" / f"{arch}.json"
        if arch in folder.config.architectures and entry.exists():
            folder.results[arch] = json.loads(entry.read_text(encoding="utf-8"))
            folder.models[arch] = _load_models(folder, arch)
    return folder


def _load_models(folder: RunFolder, arch: str) -> Models:
    def load(file: str) -> torch.nn.Module:
        model = folder.new_model()
        model.load_state_dict(torch.load(folder.run_dir / "models" / file))
        return model

    entry = architectures.find(arch)
    if entry is not None and entry.trainer == "per-agency":
        return {a["name"]: load(f"local-{a['slug']}.pt") for a in folder.federation.agencies}
    return load(f"{arch}.pt")


def new_run_dir(config: PeelConfig, parent: Path | None = None) -> Path:
    digest = hashlib.sha256(dump(config).encode()).hexdigest()[:6]
    base = (parent or Path(config.output)) / f"{time.strftime('%Y%m%d-%H%M%S')}-{digest}"
    run_dir, n = base, 1
    while run_dir.exists():
        n += 1
        run_dir = base.with_name(f"{base.name}-{n}")
    run_dir.mkdir(parents=True)
    return run_dir


def keep_torch_cache_in(folder: Path) -> None:
    """torch's optimizers create an (empty) inductor cache folder in /tmp on first use; keep it
    in the run folder instead (Flower's simulation workers inherit this too)."""
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str((folder / "cache" / "torchinductor").resolve()))


def open_folder(config: PeelConfig, config_file: str, run_dir: Path, federation: Federation, ledger_dir: Path | None = None) -> RunFolder:
    """Write the resolved config and the federation spec of a run folder whose data exists."""
    config = resolve_attacker(config, federation)
    write_atomic(run_dir / "config.yaml", dump(config))
    spec_path = write_spec(config, federation, run_dir, ledger_dir, config_file)
    return RunFolder(config, config_file, run_dir, federation, spec_path)


def prepare(config: PeelConfig, config_file: str = "") -> RunFolder:
    """A new run folder with the resolved config, every agency's records in its own folder
    (read back once, so bad data fails here), and the federation spec the Flower apps read.
    On any failure nothing is left behind: not the run folder, not an output folder made for it."""
    check_output_folder(Path(config.output), f"{config_file or 'config'}: output")  # a file, or below one
    missing_parents = [p for p in [Path(config.output), *Path(config.output).parents] if not p.exists()]
    run_dir = new_run_dir(config)
    keep_torch_cache_in(run_dir)
    try:
        federation = materialise(config, run_dir / "data")
        folder = open_folder(config, config_file, run_dir, federation)
        _ = folder.splits  # every agency's records parsed and split
        if federation.areas is not None:
            _ = folder.areas
    except BaseException:
        # Bad data or config (or an interrupt) before anything ran: leave nothing half-made.
        shutil.rmtree(run_dir, ignore_errors=True)
        for parent in missing_parents:
            try:
                parent.rmdir()  # only if still empty
            except OSError:
                pass
        raise
    log.info("run folder %s: %s data of %d agencies ready", run_dir, config.data.source, len(federation.agencies))
    return folder


def _test_weights(splits: Splits) -> dict[str, int]:
    return {name: len(split.y_test) for name, split in splits.items()}


def _overall(per_agency_metrics: dict[str, dict], splits: Splits) -> dict:
    return metric_values(weighted_mean(per_agency_metrics, _test_weights(splits)))


def _entry(arch: str, per_agency: dict[str, dict], folder: RunFolder, *, wall_s: float, delta: float | None, records_moved: int, update_bytes: int) -> dict:
    """One architecture's block of summary.json. Privacy figures per agency, named as what they
    are: `epsilon_this_run`, `epsilon_spent_to_date` (its ledger, all runs), `epsilon_budget`,
    `delta` (pinned by its ledger), `neighbouring`; `epsilon` is the spent-to-date figure."""
    splits = folder.splits
    for name, agency in per_agency.items():
        agency["n_train"], agency["n_test"] = len(splits[name].y_train), len(splits[name].y_test)
    spec = architectures.get(arch)
    unit = spec.privacy_unit
    task = folder.config.task.name
    neighbouring = registry.NEIGHBOURING[task]
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
        "privacy_unit": registry.DP_EXAMPLE[folder.config.task.name] if unit == "record" else unit,
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
    ledger cannot be read here."""
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
    return incident_epsilon(history, int(split.record_influence), delta, agency["policy"]["accountant"]).as_dict()


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


def train_baseline(arch: str, folder: RunFolder) -> None:
    """central or local, in process, from the same initial model and hyperparameters."""
    config, splits = folder.config, folder.splits
    fed = config.federation
    training = Training(folder.new_model, fed.rounds * fed.local_epochs, fed.batch_size, fed.learning_rate, config.seed)
    started = time.perf_counter()
    models_dir = folder.run_dir / "models"
    models_dir.mkdir(exist_ok=True)
    if architectures.get(arch).trainer == "pooled":
        log.info("%s: pooling every agency's records into one model", arch)
        folder.models[arch] = model = train_central(splits, training)
        save_durably(model.state_dict(), models_dir / f"{arch}.pt")
        moved = {n: split.counts["rows_total"] for n, split in splits.items()}
    else:
        log.info("%s: every agency trains alone", arch)
        folder.models[arch] = models = train_local(splits, training)
        slugs = {a["name"]: a["slug"] for a in folder.federation.agencies}
        for name, model in models.items():
            save_durably(model.state_dict(), models_dir / f"local-{slugs[name]}.pt")
        moved = dict.fromkeys(splits, 0)
    wall_s = time.perf_counter() - started
    per_agency = {n: {"epsilon": None, "records_moved": moved[n], "updates_sent": 0, "update_bytes_sent": 0, "errors": []} for n in splits}
    folder.results[arch] = _entry(arch, per_agency, folder, wall_s=wall_s, delta=None, records_moved=sum(moved.values()), update_bytes=0)
    write_json(models_dir / f"{arch}.json", folder.results[arch])  # last: marks the baseline done for a resumed run



ENGINES = ("in-process", "simulation", "deployment")


def train_federated(folders: list[RunFolder], on_done: Callable[[RunFolder], None], engine: str = "in-process", deploy_dir: Path | None = None) -> None:
    """Every federated architecture of every folder, with the same ServerApp and ClientApp on
    one of three engines: Peel's in-process Flower grid (default: no Ray, no start-up),
    Flower's Ray simulation, or a running deployment (`peel deploy up`)."""
    for folder in folders:
        if engine == "deployment":
            from experiments.deploy.run import run_on_deployment

            log.info("submitting %s to the deployment in %s", ", ".join(folder.federated), deploy_dir)
            run_on_deployment(folder.spec_path, deploy_dir)
        elif engine == "simulation":
            from experiments.simulation import run_federated  # imports flwr and ray: only when needed

            log.info("starting Flower's simulation engine (Ray) for %s", ", ".join(folder.federated))
            run_federated(folder.spec_path, len(folder.federation.agencies))
        else:
            from experiments.engine import run_federated_in_process

            log.info("Flower in process: %s", ", ".join(folder.federated))
            run_federated_in_process(folder.spec_path, len(folder.federation.agencies))
        collect_federated(folder)
        on_done(folder)


def collect_federated(folder: RunFolder) -> None:
    """Read a folder's federated results back from the coordinator's metrics.jsonl rows."""
    config, run_dir = folder.config, folder.run_dir
    rows = read_rows(run_dir / "metrics.jsonl")
    walls = {r["architecture"]: r for r in read_rows(run_dir / "federated.jsonl")}
    folder.startup_s = walls.get("start-up", {}).get("wall_s")
    if folder.startup_s is not None:
        log.info("Flower start-up %.1f s, paid once for all federated architectures (not in their wall times)", folder.startup_s)
    update_size = 4 * sum(p.numel() for p in folder.new_model().parameters())  # float32
    folder.trail_head = walls.get("audit-trail", {}).get("head")
    for arch in folder.federated:
        spec = architectures.get(arch)
        model = folder.new_model()
        model.load_state_dict(torch.load(run_dir / "models" / f"{arch}.pt"))
        folder.models[arch] = model
        per_agency = per_agency_from_rows(rows, arch, list(folder.splits))
        for name, agency in per_agency.items():
            # SecAgg+ sends each parameter as a masked 64-bit integer (plus small key exchanges).
            agency["update_bytes_sent"] = agency["updates_sent"] * update_size * (2 if spec.trainer == "secagg" else 1)
            agency["records_moved"] = 0
            if agency["errors"]:
                first = agency["errors"][0]
                log.warning("%s: %s sent no update in %d round(s), first in round %d: %s", arch, name, len(agency["errors"]), first["round"], first["reason"])
        server_side = walls.get(arch, {})
        if spec.privacy_unit == "agency" and server_side.get("epsilon") is not None:
            # Agency-level ε is the coordinator's: the same for every agency.
            for agency in per_agency.values():
                agency["epsilon"] = server_side["epsilon"]
        folder.results[arch] = _entry(
            arch,
            per_agency,
            folder,
            wall_s=server_side.get("wall_s", 0.0),
            delta=config.privacy.delta if spec.dp else None,
            records_moved=0,
            update_bytes=sum(a["update_bytes_sent"] for a in per_agency.values()),
        )


def _check_delta(delta: float, splits: Splits) -> None:
    """(ε, δ)-DP with δ ≥ 1/n allows releasing a whole record outright with probability δ per
    record: warn when an agency is that large."""
    too_large = [name for name, split in splits.items() if delta * len(split.y_train) >= 1]
    if too_large:
        log.warning("privacy.delta=%g is not below 1/(training records) for %s: choose δ well below 1/n", delta, ", ".join(too_large))


def _ceiling(folder: RunFolder) -> dict | None:
    """The ground-truth ceiling (synthetic data only), scored on the same test rows: the true
    outcome probabilities (Bayes-optimal), or hotspot flags by the true intensity."""
    federation, splits = folder.federation, folder.splits
    if federation.ground_truth is None:
        return None
    intensity = folder.intensity
    per_agency = {}
    for agency in federation.agencies:
        split = splits[agency["name"]]
        if isinstance(split, HotspotSplit):
            per_agency[agency["name"]] = metric_values(registry.hotspot_ceiling(split, intensity))
        else:
            p = outcome_probability(federation.ground_truth, agency["slug"], split.test_crime_ids, split.test_crime_types, folder.config.task.positive)
            per_agency[agency["name"]] = metric_values(binary_metrics(split.y_test, p))
    return {"metrics": _overall(per_agency, splits), "per_agency": per_agency}


def model_of(models: Models, agency: str) -> torch.nn.Module:
    return models[agency] if isinstance(models, dict) else models


def score(folder: RunFolder) -> None:
    """Score every architecture's final models on every agency's test rows, in one place and
    the same way for all (the evaluation harness sees everything; the agencies never do)."""
    splits, task = folder.splits, folder.config.task
    headline = registry.HEADLINE[task.name]
    for arch, entry in folder.results.items():
        models = folder.models[arch]
        probas = {name: predict_proba(model_of(models, name), split.X_test) for name, split in splits.items()}
        for name, split in splits.items():
            entry["per_agency"][name]["metrics"] = metric_values(registry.score(split, probas[name], folder.intensity))
            if isinstance(split, HotspotSplit):
                entry["per_agency"][name]["record_influence"] = split.record_influence
        entry["metrics"] = _overall({n: a["metrics"] for n, a in entry["per_agency"].items()}, splits)
        entry["fairness"] = _fairness(folder, entry, probas, headline)
        if not architectures.is_federated(arch):  # the federated ones' rows come from the coordinator
            rounds = folder.config.federation.rounds
            append_rows(folder.run_dir / "metrics.jsonl", ({"architecture": arch, "round": rounds, "agency": n, **a["metrics"], "n_train": a["n_train"], "n_test": a["n_test"]} for n, a in entry["per_agency"].items()))


def _fairness(folder: RunFolder, entry: dict, probas: dict, headline: str) -> dict:
    """Utility spread across agencies; for hotspot flags, shares per deprivation quintile."""
    splits = folder.splits
    out: dict = {"metric": headline, "utility_spread": utility_spread({n: a["metrics"] for n, a in entry["per_agency"].items()}, {n: len(s.y_train) for n, s in splits.items()}, headline)}
    if folder.config.task.name == "hotspot" and folder.federation.areas is not None:
        edges = deprivation_quintiles(folder.areas)
        hotspot_splits = [(name, s) for name, s in splits.items() if isinstance(s, HotspotSplit)]
        flags = np.concatenate([flag_weights(s, probas[n]) for n, s in hotspot_splits])
        deprivation = np.concatenate([s.test_deprivation for _, s in hotspot_splits])
        recorded = np.concatenate([s.test_next_counts for _, s in hotspot_splits])
        true = np.concatenate([intensity_for_test(s, folder.intensity) for _, s in hotspot_splits]) if folder.intensity is not None else None
        rows = flag_shares_by_quintile(flags, deprivation, true, recorded, edges)
        out["quintiles"] = rows
        out["disparity"] = flag_disparity(rows)
    return out


def _public_counts(counts: dict) -> dict:
    """An agency's data counts without its label counts (the harness's, not a release; a label
    count is a statistic of the records that no DP agency sends)."""
    return {k: v for k, v in counts.items() if not k.startswith("positives")}


def summarise(folder: RunFolder) -> Path:
    """Score (and, with audit: true, audit) a run folder whose architectures have all run, and
    write its summary.json."""
    score(folder)
    if folder.config.audit.enabled:
        from experiments.audit import audit_folder  # imports this module

        audit_folder(folder)
    config, splits, federation = folder.config, folder.splits, folder.federation
    summary = {
        "run_id": folder.run_dir.name,
        "config_file": str(folder.config_file),
        "task": config.task.name,
        "headline_metric": registry.HEADLINE[config.task.name],
        "agencies": [
            {"name": a["name"], "slug": a["slug"], "n_train": len(splits[a["name"]].y_train), "n_test": len(splits[a["name"]].y_test), "budget": a["budget"], "counts": _public_counts(splits[a["name"]].counts)}
            for a in federation.agencies
        ],
        # Each agency's ledger after the run (read where the harness runs beside the agencies).
        "ledgers": {name: figures.as_dict() for name, figures in agency_figures(federation.agencies).items()} if any(architectures.is_record_dp(a) for a in config.architectures) else None,
        "warnings": folder.warnings,
        # The release boundary: every field an agency may send, DP (charged) or public (why).
        "releases": contract.release_table(),
        "architectures": {a: folder.results[a] for a in config.architectures},
        "bayes_optimal": _ceiling(folder),
        "privacy": {
            "unit": "one incident record" if config.task.name == "outcome" else "one area-month example (see features); per incident record: epsilon_per_incident",
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
            # Rows whose agency could not be derived (data.agency.unmatched: drop): reason -> rows, overall and per file.
            "set_aside": (federation.set_aside or {}).get("counts", {}),
            "set_aside_by_file": (federation.set_aside or {}).get("by_file", {}),
        },
        "metrics_note": "metrics are per-agency scores on each agency's own test months; 'metrics' is their mean weighted by test records",
        "wall_s": time.perf_counter() - folder.started,
        "flower_startup_s": folder.startup_s,
        "audit_trail": {"file": "audit.jsonl", "head": folder.trail_head} if folder.trail_head else None,
    }
    path = folder.run_dir / "summary.json"
    write_json(path, summary)
    return path


def execute(folders: list[RunFolder], on_done: Callable[[RunFolder], None] = summarise, engine: str = "in-process", deploy_dir: Path | None = None) -> None:
    """Train every architecture of every folder (baselines in process, federated ones on Flower),
    calling `on_done` for each folder as soon as all its architectures have run."""
    # Small models: a second torch thread only fights the other work for two cores (training
    # was measured tens of times slower with 2 threads on a loaded machine). The agencies'
    # ClientApp does the same.
    torch.set_num_threads(1)
    for folder in folders:
        log.info(
            "%d agencies, %d training and %d test records",
            len(folder.splits),
            sum(len(s.y_train) for s in folder.splits.values()),
            sum(len(s.y_test) for s in folder.splits.values()),
        )
        if any(architectures.is_record_dp(a) for a in folder.config.architectures):
            _check_delta(folder.config.privacy.delta, folder.splits)
            folder.warnings = warn_low_budgets(folder.federation.agencies, folder.config.privacy.warn_below_share)
        for arch in folder.config.architectures:
            if not architectures.is_federated(arch) and arch not in folder.results:  # a resumed run has some
                train_baseline(arch, folder)
        if not folder.federated:
            on_done(folder)
    train_federated([f for f in folders if f.federated], on_done, engine, deploy_dir)


def run(config: PeelConfig, config_path: str, engine: str = "in-process", deploy_dir: Path | None = None) -> Path:
    folder = prepare(config, config_path)
    execute([folder], engine=engine, deploy_dir=deploy_dir)
    return folder.run_dir
