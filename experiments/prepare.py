"""Materialise every agency's records in its own folder for a run (synthetic: generated with the
run's seed; real: read once and partitioned), and describe the federation in a spec file that
the ClientApp and ServerApp read."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from experiments import own_vocabulary
from experiments.config import PeelConfig, check_agency_names
from federation import architectures, spec
from federation.policy import AgencyPolicy
from federation.spec import SPEC_FILE as SPEC_FILE  # re-exported: the runner names the file by it
from policedata.checks import require_trainable_agencies
from policedata.errors import DataError
from policedata.loader import STREET_FILE_GLOB, load_street_folder
from policedata.manifest import read_manifest
from policedata.partition import write_agency_folders
from policedata.synthetic import SyntheticSpec, generate
from privacy.ledger import LEDGER_FILENAME  # each agency's ledger lives in its own folder: it is the agency's, not the run's


@dataclass(frozen=True)
class Federation:
    """What a run knows about its agencies (paths are absolute)."""

    agencies: list[dict]  # {"name", "slug", "folder", "ledger", "budget"}
    areas: Path | None  # public covariates
    ground_truth: Path | None  # synthetic only; read by the evaluation, never by agencies
    test_from: str  # first test month, "YYYY-MM"
    notes: list[str]
    period: tuple[str, str] | None = None  # first and last month of the data
    # police_uk: rows whose agency could not be derived, left out ({"counts": {reason: rows},
    # "by_file": {file: {reason: rows}}, "examples": {reason: value}}); None: none or not read.
    set_aside: dict | None = None


def add_months(month: str, n: int) -> str:
    year, mon = map(int, month.split("-"))
    index = year * 12 + (mon - 1) + n
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def synthetic_spec(config: PeelConfig) -> SyntheticSpec:
    data = config.data
    return SyntheticSpec(
        agencies=data.agencies,
        incidents=data.incidents,
        months=data.months,
        start_month=data.start_month,
        seed=config.seed,
        dynamics=data.dynamics,
    )


def _from_manifest(manifest: dict, data_dir: Path, test_months: int) -> Federation:
    """The federation of a manifest read (and its paths confined) by `read_manifest`."""
    agencies = [dict(a) for a in manifest["agencies"]]
    last_month = manifest["months"][-1]
    ground_truth = data_dir / "ground_truth"
    return Federation(
        agencies,
        (data_dir / "areas.csv").resolve(),
        ground_truth.resolve() if ground_truth.is_dir() else None,
        add_months(last_month, 1 - test_months),
        [],
        (manifest["months"][0], last_month),
    )


def check_output_folder(path: Path, what: str) -> None:
    """Refuse (DataError, one line) a folder Peel is to create or write in that is a file, lies
    below a file or cannot be written, before anything is written (a non-empty folder is fine:
    `output` is the parent of run folders, each new)."""
    try:
        if path.exists() and not path.is_dir():
            raise DataError(f"{what}: {path} is a file, not a folder")
        existing = path if path.exists() else next(p for p in path.absolute().parents if p.exists())
        if not existing.is_dir():
            raise DataError(f"{what}: {path} cannot be created: {existing} is a file")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise DataError(f"{what}: {path}: cannot write in {existing} (permission denied)")
    except OSError as exc:
        raise DataError(f"{what}: {path}: {exc.strerror or exc.__class__.__name__}") from None


def _load_records(config: PeelConfig) -> tuple:
    """Real records: a folder of data.police.uk street CSVs, or one CSV mapped by data.columns."""
    data = config.data
    if data.source == "csv":
        from experiments.own_vocabulary import load_csv

        return load_csv(config)
    return load_street_folder(Path(data.path), data.agency.column, data.agency.pattern, data.agency.unmatched)


def materialise(config: PeelConfig, data_dir: Path) -> Federation:
    """Write the agencies' folders under `data_dir` (which must not exist yet), or, for
    `data.source: agencies`, use the named folder in place."""
    if config.data.source == "synthetic":
        generate(synthetic_spec(config), data_dir)
        return _from_manifest(read_manifest(data_dir), data_dir, config.task.test_months)
    if config.data.source == "agencies":
        folder = Path(config.data.path)
        # Every agency folder is confined to `folder` here, before any ledger path is derived.
        federation = _from_manifest(read_manifest(folder), folder, config.task.test_months)
        federation.notes.append(f"agency folders used in place from {folder} (their budget ledgers persist across runs)")
        return federation
    records, report = _load_records(config)
    for line in report.set_aside_lines():  # said on screen during `peel run`, not only in summary.json
        logging.getLogger("peel.data").warning("%s", line)
    require_trainable_agencies(report.per_agency, str(config.data.path))
    months = sorted(records["month"].unique())
    if len(months) <= config.task.test_months:
        raise DataError(
            f"{config.data.path}: {len(months)} months of data, need more than task.test_months={config.task.test_months}"
        )
    written = write_agency_folders(records, data_dir / "agencies")
    agencies = [{"name": a["name"], "slug": a["slug"], "folder": str((data_dir / "agencies" / a["folder"]).resolve())} for a in written]
    areas = Path(config.data.areas).resolve() if config.data.areas else None
    set_aside = {"counts": report.set_aside, "by_file": report.set_aside_by_file, "examples": report.set_aside_examples} if report.set_aside else None
    return Federation(agencies, areas, None, months[-config.task.test_months], report.lines(), (months[0], months[-1]), set_aside)


# faults.malicious.agency may name an agency by size instead of by name: synthetic names change
# with the seed, and "the largest agency lies" is the experiment.
SIZE_SELECTORS = ("largest", "smallest")


def records_in(folder: Path) -> int:
    """An agency's records: data rows of its street CSVs (header lines excluded)."""
    return sum(max(0, f.read_bytes().count(b"\n") - 1) for f in Path(folder).rglob(STREET_FILE_GLOB))  # not persons.csv


def resolve_attacker(config: PeelConfig, federation: Federation) -> PeelConfig:
    """The config with `faults.malicious.agency: largest|smallest` replaced by that agency's name
    (most or fewest records; ties: the first name in order), so the run records who lied."""
    malicious = config.faults.malicious
    if malicious is None or malicious.agency not in SIZE_SELECTORS:
        return config
    sizes = sorted((records_in(Path(a["folder"])), a["name"]) for a in federation.agencies)
    if malicious.agency == "largest":
        name = min(sizes, key=lambda s: (-s[0], s[1]))[1]
    else:
        name = sizes[0][1]
    resolved = malicious.model_copy(update={"agency": name})
    return config.model_copy(update={"faults": config.faults.model_copy(update={"malicious": resolved})})


def agency_policy(config: PeelConfig, name: str | None) -> AgencyPolicy:
    """The privacy policy `peel run` gives agency `name` in simulation (its operator sets its own
    on a deployed SuperNode): the one place the per-agency budget rule is written. `None`: the
    policy of an agency the config does not name."""
    privacy = config.privacy
    return AgencyPolicy(
        budget=float(privacy.budgets.get(name, privacy.epsilon) if name is not None else privacy.epsilon),
        delta=privacy.delta,
        max_grad_norm=privacy.max_grad_norm,
        accountant=privacy.accountant,
        count_sigma=privacy.count_sigma,
        max_noise_multiplier=privacy.max_noise_multiplier,
        unit=privacy.unit,
        person_max_records=privacy.person.max_records,
    )


def assign_budgets(config: PeelConfig, federation: Federation, ledger_dir: Path | None = None) -> None:
    """Give every agency its record-level budget and its ledger file (by default in its own
    folder; `ledger_dir` for sweep cells, which are alternative worlds with separate spends)."""
    check_agency_names(config, {a["name"] for a in federation.agencies})
    if ledger_dir is not None:
        ledger_dir.mkdir(parents=True, exist_ok=True)
    for agency in federation.agencies:
        policy = agency_policy(config, agency["name"])
        agency["policy"] = policy.as_dict()
        agency["budget"] = policy.budget
        ledger = (ledger_dir / f"{agency['slug']}.sqlite") if ledger_dir else Path(agency["folder"]) / LEDGER_FILENAME
        agency["ledger"] = str(ledger.resolve())


def central_dp(config: PeelConfig) -> spec.CentralDPSpec:
    """fedavg-central-dp's settings as the coordinator uses them (validated by the schema)."""
    privacy, central = config.privacy, config.privacy.central
    return spec.CentralDPSpec(
        epsilon=central.epsilon if central.epsilon is not None else privacy.epsilon,
        delta=privacy.delta,
        accountant=privacy.accountant,
        clipping_norm=central.clipping_norm,
        adaptive=central.adaptive,
        target_quantile=central.target_quantile,
        clip_learning_rate=central.clip_learning_rate,
        clipped_count_stddev=central.clipped_count_stddev,
    )


def run_spec(config: PeelConfig, federation: Federation, run_dir: Path, config_file: str = "") -> spec.RunSpec:
    """What the Flower apps are told about this run (agencies must have their budgets and
    ledgers: `assign_budgets`)."""
    fed, task, malicious = config.federation, config.task, config.faults.malicious
    return spec.RunSpec(
        run_dir=run_dir.resolve(),
        seed=config.seed,
        task=spec.TaskSpec(
            name=task.name,
            test_from=federation.test_from,
            hidden=tuple(task.hidden),
            positive=tuple(task.positive),
            hotspot_share=task.hotspot_share,
            period=federation.period,
            features=own_vocabulary.feature_layout(config) if config.data.source == "csv" else None,
        ),
        federation=spec.FederationSpec(**fed.model_dump()),
        central_dp=central_dp(config),
        default_policy=agency_policy(config, None),
        agencies=tuple(
            spec.AgencySpec(a["name"], a["slug"], Path(a["folder"]), Path(a["ledger"]), AgencyPolicy.from_dict(a["policy"])) for a in federation.agencies
        ),
        federated=tuple(a for a in config.architectures if architectures.is_federated(a)),
        faults=spec.FaultsSpec(
            dropout=config.faults.dropout,
            malicious=spec.MaliciousSpec(malicious.agency, malicious.attack, malicious.factor) if malicious else None,
        ),
        audit=spec.AuditSpec(enabled=config.audit.enabled, holdout=config.audit.holdout),
        records=spec.RecordsSpec(config.data.agency.column, config.data.agency.pattern),
        areas=federation.areas,
        ground_truth=federation.ground_truth,
        config_file=str(config_file),
        notes=tuple(federation.notes),
        set_aside=federation.set_aside,
    )


def write_spec(config: PeelConfig, federation: Federation, run_dir: Path, ledger_dir: Path | None = None, config_file: str = "") -> Path:
    """The federation spec (federation/spec.py): the agencies (with budgets and ledgers), the
    settings the apps use, where the results go, and what a resumed run needs to rebuild the run
    (`config_file`, notes)."""
    assign_budgets(config, federation, ledger_dir)
    return spec.write(run_spec(config, federation, run_dir, config_file), run_dir / SPEC_FILE)
