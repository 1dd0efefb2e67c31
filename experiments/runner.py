"""`peel run`: every architecture of the config on the same agencies, split, initial model and
seed; results in one run folder."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from pathlib import Path

from clients.agency import Agency, load_split
from experiments.baselines import Training, run_central, run_local
from experiments.config import PeelConfig, dump
from experiments.prepare import Federation, materialise, write_spec
from experiments.results import (
    append_rows,
    metric_values,
    per_agency_from_rows,
    read_rows,
    write_atomic,
    write_json,
)
from policedata.ground_truth import outcome_probability
from tasks.metrics import binary_metrics, weighted_mean
from tasks.model import initial_model
from tasks.outcome import OutcomeSplit

log = logging.getLogger("peel.run")

FEATURES_NOTE = (
    "Every feature is computed from the record itself (crime type, month, location) or from the "
    "public area covariates table; none is a statistic of an agency's own records, so one record "
    "changes one training example and the record-level DP-SGD guarantee holds as stated."
)
EPSILON_SCOPE = (
    "Record-level (one incident record) (ε, δ)-DP of everything an agency releases in one "
    "architecture, cumulative over all rounds of this run, per agency; max over agencies "
    "reported. Architectures are alternatives trained on the same records: an agency that ran "
    "two of them for real would spend the sum."
)

RELEASED_WITHOUT_DP = (
    "Besides its DP model updates, each agency sends the coordinator its number of training "
    "records (the FedAvg weight) and, every round, metrics of the global model on its own test "
    "records (AUC, accuracy, F1, log loss, Brier). These are aggregates over whole test sets but "
    "carry no formal DP guarantee; test records are never trained on."
)

Splits = dict[str, OutcomeSplit]


def new_run_dir(config: PeelConfig) -> Path:
    digest = hashlib.sha256(dump(config).encode()).hexdigest()[:6]
    base = Path(config.output) / f"{time.strftime('%Y%m%d-%H%M%S')}-{digest}"
    run_dir, n = base, 1
    while run_dir.exists():
        n += 1
        run_dir = base.with_name(f"{base.name}-{n}")
    run_dir.mkdir(parents=True)
    return run_dir


def _test_weights(splits: Splits) -> dict[str, int]:
    return {name: len(split.y_test) for name, split in splits.items()}


def _overall(per_agency_metrics: dict[str, dict], splits: Splits) -> dict:
    return metric_values(weighted_mean(per_agency_metrics, _test_weights(splits)))


def _entry(per_agency: dict[str, dict], splits: Splits, *, wall_s: float, delta: float | None, records_moved: int, update_bytes: int) -> dict:
    """One architecture's block of summary.json."""
    for name, agency in per_agency.items():
        agency["n_train"], agency["n_test"] = len(splits[name].y_train), len(splits[name].y_test)
    eps = [a["epsilon"] for a in per_agency.values() if a.get("epsilon") is not None]
    return {
        "metrics": _overall({n: a["metrics"] or {} for n, a in per_agency.items()}, splits),
        "per_agency": per_agency,
        "epsilon_max": max(eps) if eps else None,
        "delta": delta if eps else None,
        "wall_s": wall_s,
        "records_moved": records_moved,
        "update_bytes": update_bytes,
    }


def _baseline(arch: str, config: PeelConfig, splits: Splits, metrics_path: Path) -> dict:
    """central or local, in process; rows in metrics.jsonl like the federated ones."""
    fed = config.federation
    training = Training(lambda: initial_model(config.task.hidden, config.seed), fed.rounds * fed.local_epochs, fed.batch_size, fed.learning_rate, config.seed)
    started = time.perf_counter()
    if arch == "central":
        log.info("central: pooling every agency's records into one model")
        per = run_central(splits, training)
        moved = sum(split.counts["rows_total"] for split in splits.values())
    else:
        log.info("local: every agency trains alone")
        per, moved = run_local(splits, training), 0
    wall_s = time.perf_counter() - started
    append_rows(metrics_path, ({"architecture": arch, "round": fed.rounds, "agency": n, **m, "n_train": len(splits[n].y_train), "n_test": len(splits[n].y_test)} for n, m in per.items()))
    per_agency = {n: {"metrics": metric_values(m), "epsilon": None} for n, m in per.items()}
    return _entry(per_agency, splits, wall_s=wall_s, delta=None, records_moved=moved, update_bytes=0)


def _federated(config: PeelConfig, splits: Splits, spec_path: Path, run_dir: Path) -> tuple[dict[str, dict], float]:
    """Every federated architecture in one Flower simulation; results read back from the
    coordinator's metrics.jsonl rows. Also returns the simulation's start-up seconds."""
    from experiments.simulation import run_federated  # imports flwr and ray: only when needed

    federated = [a for a in config.architectures if a.startswith("fedavg")]
    log.info("starting Flower simulation for %s (Ray and the agencies' first imports take ~10 s)", ", ".join(federated))
    run_federated(spec_path, len(splits))
    rows = read_rows(run_dir / "metrics.jsonl")
    walls = {r["architecture"]: r["wall_s"] for r in read_rows(run_dir / "federated.jsonl")}
    log.info("Flower start-up %.1f s, paid once for all federated architectures (not in their wall times)", walls.get("start-up", 0.0))
    update_size = 4 * sum(p.numel() for p in initial_model(config.task.hidden, config.seed).parameters())  # float32
    results = {}
    for arch in federated:
        per_agency = per_agency_from_rows(rows, arch, list(splits))
        for name, agency in per_agency.items():
            agency["update_bytes_sent"] = agency["updates_sent"] * update_size
            if agency["errors"]:
                first = agency["errors"][0]
                log.warning("%s: %s sent no update in %d round(s), first in round %d: %s", arch, name, len(agency["errors"]), first["round"], first["reason"])
        results[arch] = _entry(
            per_agency,
            splits,
            wall_s=walls.get(arch, 0.0),
            delta=config.privacy.delta if arch == "fedavg-dp" else None,
            records_moved=0,
            update_bytes=sum(a["update_bytes_sent"] for a in per_agency.values()),
        )
    return results, walls.get("start-up", 0.0)


def _check_delta(delta: float, splits: Splits) -> None:
    """(ε, δ)-DP with δ ≥ 1/n allows releasing a whole record outright with probability δ per
    record: warn when an agency is that large."""
    too_large = [name for name, split in splits.items() if delta * len(split.y_train) >= 1]
    if too_large:
        log.warning(
            "privacy.delta=%g is not below 1/(training records) for %s: choose δ well below 1/n",
            delta,
            ", ".join(too_large),
        )


def _bayes(federation: Federation, splits: Splits, positive: list[str]) -> dict | None:
    """The Bayes-optimal ceiling: the true outcome probabilities (synthetic data only) scored on
    the same test records."""
    if federation.ground_truth is None:
        return None
    per_agency = {}
    for agency in federation.agencies:
        split = splits[agency["name"]]
        p = outcome_probability(federation.ground_truth, agency["slug"], split.test_crime_ids, split.test_crime_types, positive)
        per_agency[agency["name"]] = metric_values(binary_metrics(split.y_test, p))
    return {"metrics": _overall(per_agency, splits), "per_agency": per_agency}


def prepare(config: PeelConfig) -> tuple[Path, Federation, Path]:
    """A new run folder with the resolved config, every agency's records in its own folder,
    and the federation spec the Flower apps read."""
    run_dir = new_run_dir(config)
    # torch's optimizers create an (empty) inductor cache folder in /tmp on first use; keep
    # it in the run folder instead (Flower's simulation workers inherit this too).
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str((run_dir / "cache" / "torchinductor").resolve()))
    try:
        write_atomic(run_dir / "config.yaml", dump(config))
        log.info("run folder %s", run_dir)
        log.info("preparing %s data", config.data.source)
        federation = materialise(config, run_dir / "data")
        return run_dir, federation, write_spec(config, federation, run_dir)
    except BaseException:
        # Bad data (or an interrupt) before anything ran: leave no half-made run folder.
        shutil.rmtree(run_dir, ignore_errors=True)
        raise


def run(config: PeelConfig, config_path: str) -> Path:
    started = time.perf_counter()
    run_dir, federation, spec_path = prepare(config)
    splits = {a["name"]: load_split(Agency(a["name"], Path(a["folder"]), spec_path)) for a in federation.agencies}
    log.info(
        "%d agencies, %d training and %d test records",
        len(splits),
        sum(len(s.y_train) for s in splits.values()),
        sum(len(s.y_test) for s in splits.values()),
    )

    if "fedavg-dp" in config.architectures:
        _check_delta(config.privacy.delta, splits)

    results: dict[str, dict] = {}
    startup_s = None
    for arch in config.architectures:
        if arch in ("central", "local"):
            results[arch] = _baseline(arch, config, splits, run_dir / "metrics.jsonl")
        elif arch not in results:
            federated, startup_s = _federated(config, splits, spec_path, run_dir)
            results.update(federated)

    summary = {
        "run_id": run_dir.name,
        "config_file": str(config_path),
        "task": config.task.name,
        "agencies": [
            {"name": a["name"], "slug": a["slug"], "n_train": len(splits[a["name"]].y_train), "n_test": len(splits[a["name"]].y_test), "counts": splits[a["name"]].counts}
            for a in federation.agencies
        ],
        "architectures": {a: results[a] for a in config.architectures},
        "bayes_optimal": _bayes(federation, splits, config.task.positive),
        "privacy": {
            "unit": "one incident record",
            "scope": EPSILON_SCOPE,
            "accountant": config.privacy.accountant,
            "sampling": "Poisson, rate = batch_size / agency training records",
            "noise_rng": "torch PRNG seeded from OS entropy (not a CSPRNG: Opacus secure_mode needs torchcsprng, unavailable here)",
            "features": FEATURES_NOTE,
            "released_without_dp": RELEASED_WITHOUT_DP,
        },
        "data": {"source": config.data.source, "test_from": federation.test_from, "notes": federation.notes},
        "metrics_note": "metrics are per-agency scores on each agency's own test months; 'metrics' is their mean weighted by test records",
        "wall_s": time.perf_counter() - started,
        "flower_startup_s": startup_s,
    }
    write_json(run_dir / "summary.json", summary)
    return run_dir
