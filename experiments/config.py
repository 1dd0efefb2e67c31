"""The one config schema of Peel, and the only place configs are read and validated.

A bad file stops here with one line naming the key, the value and what is allowed; nothing has
been written by then.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from experiments.analytics_config import AnalyticsConfig
from experiments.config_messages import describe, error_key, is_config_key, shown
from experiments.config_yaml import MAX_CONFIG_BYTES as MAX_CONFIG_BYTES  # re-exported: tests and callers name it here
from experiments.config_yaml import YamlFileError, parse_yaml, read_yaml_file, yaml_problem
from federation import architectures as registry
from policedata.loader import agency_pattern_problem
from policedata.schema import NO_SUSPECT, OUTCOME_CATEGORIES, STREET_COLUMNS


def _known_architecture(name: str) -> str:
    """An architecture name the registry (federation/architectures.py) knows."""
    registry.get(name)  # UnknownArchitecture (a ValueError) names the known ones
    return name


# Names are checked against the registry when a config is validated, so an architecture added
# there (or registered at run time) is accepted without touching this schema.
Architecture = Annotated[str, AfterValidator(_known_architecture)]


class ConfigError(Exception):
    """A user error in a config file or a --set override (message is one line)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _expand_home(value: str) -> str:
    """`~` and `~user` as a shell would read them: a folder literally named `~` is never meant."""
    if not value.startswith("~"):
        return value
    expanded = os.path.expanduser(value)
    if expanded.startswith("~"):
        raise ValueError(f"{value.split('/')[0]!r} is no user's home folder")
    return expanded


class AgencyColumn(_Section):
    column: str = "Falls within"
    pattern: str | None = None
    # Rows whose agency cannot be derived (empty value, no match of `pattern`; real downloads
    # hold rows in neighbouring forces' LSOAs and rows without one): set aside and counted
    # (drop), or stop the run (error).
    unmatched: Literal["drop", "error"] = "drop"

    @field_validator("column")
    @classmethod
    def _known_column(cls, value: str) -> str:
        if value not in STREET_COLUMNS:
            raise ValueError(f"must be one of the street CSV columns {list(STREET_COLUMNS)}")
        return value

    @field_validator("pattern")
    @classmethod
    def _one_group(cls, value: str | None) -> str | None:
        if value is None:
            return value
        problem = agency_pattern_problem(value)  # RE2 syntax: matching can never hang
        if problem:
            raise ValueError(problem)
        return value


class CsvColumns(_Section):
    """data.source: csv — which column of the user's CSV holds each of Peel's record fields.
    `date` (free text, parsed) or `month` ("YYYY-MM") is required; area is a code of the public
    areas table (e.g. a precinct), category maps onto Peel's crime types via data.values."""

    agency: str
    date: str | None = None
    month: str | None = None
    latitude: str | None = None
    longitude: str | None = None
    area: str | None = None
    category: str
    outcome: str | None = None
    crime_id: str | None = None
    # The person a record is about (an identifier from the city's systems) and their role in it
    # (victim | suspect; without person_role: victim): hashed with the agencies' shared secret
    # into each agency's persons.csv (policedata/persons.py), for privacy.unit: person.
    person: str | None = None
    person_role: str | None = None

    @model_validator(mode="after")
    def _one_time_column(self) -> CsvColumns:
        if (self.date is None) == (self.month is None):
            raise ValueError("give exactly one of date (free-text dates) or month (YYYY-MM)")
        if self.person_role is not None and self.person is None:
            raise ValueError("person_role: only with person (the column naming the person)")
        return self


class CsvRegion(_Section):
    """A latitude/longitude bounding box in degrees: coordinates are scaled to it."""

    latitude: tuple[float, float]  # (south, north)
    longitude: tuple[float, float]  # (west, east)

    @model_validator(mode="after")
    def _ordered(self) -> CsvRegion:
        for name, (low, high), limit in (("latitude", self.latitude, 90), ("longitude", self.longitude, 180)):
            if not (-limit <= low < high <= limit):
                raise ValueError(f"{name}: [low, high] with -{limit} ≤ low < high ≤ {limit} expected, got [{low:g}, {high:g}]")
        return self


class CsvFeatures(_Section):
    """data.source: csv — the public vocabulary features are built from, declared here (never
    read from the records, so one record changes one example only)."""

    # Your category values (after data.values.category) that become features; any other -> unknown.
    # None: Peel's police.uk crime types.
    categories: list[str] | None = Field(None, min_length=1, max_length=1000)
    # Area codes (data.columns.area, after data.values.area) whose identity is a feature; others -> unknown.
    areas: list[str] | None = Field(None, min_length=1, max_length=10_000)
    # Coordinates are scaled to this box; None: the extent of data.areas' centroids.
    region: CsvRegion | None = None
    # A record far outside the region: flag (kept, no coordinate features, counted) or error.
    outside_region: Literal["flag", "error"] = "flag"
    # Day of week (with data.columns.date) and hour of day (for dates that carry a time).
    time_of_day: bool = True

    @field_validator("categories", "areas")
    @classmethod
    def _distinct(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return value
        clean = [str(v).strip() for v in value]
        if any(not v for v in clean):
            raise ValueError("an empty value")
        repeated = sorted({v for v in clean if clean.count(v) > 1})
        if repeated:
            raise ValueError(f"{repeated[0]!r} is listed twice")
        if "unknown" in clean:
            raise ValueError("'unknown' is Peel's name for values not listed; list only your own values")
        return clean


class DataConfig(_Section):
    # synthetic: generated per run; police_uk: a folder of street CSVs, partitioned per run;
    # agencies: a folder made by `peel generate` or `peel prepare`, used in place — so each
    # agency's budget ledger in it persists across runs.
    # csv: one incident table (a city's own export) mapped onto Peel's fields by `columns`.
    source: Literal["synthetic", "police_uk", "agencies", "csv"] = "synthetic"
    # Synthetic data: how many agencies, records (all agencies, all months) and months.
    agencies: int = Field(8, ge=2, le=500)
    incidents: int = Field(120_000, ge=1_000, le=50_000_000)
    months: int = Field(24, ge=2, le=240)
    start_month: str = Field("2023-01", pattern=r"^20\d\d-(0[1-9]|1[0-2])$")  # YYYY-MM, 2000-2099
    # Synthetic hot-spot dynamics: "stable" area rates (default), or "churn" (rates drift and
    # crime series burst and fade, so hot areas move; configs/hotspot.yaml). policedata.synthetic.
    dynamics: Literal["stable", "churn"] = "stable"
    # Real data: a folder of data.police.uk street CSVs (any depth), and optionally a public
    # area covariates table (LSOA code, deprivation, ...).
    path: str | None = None
    areas: str | None = None
    agency: AgencyColumn = AgencyColumn()
    # data.source: csv only.
    columns: CsvColumns | None = None
    values: dict[str, dict[str, str]] = Field(default_factory=dict)  # field -> {their value: Peel's}
    date_format: str | None = None  # strftime format of `date`; None: inferred
    delimiter: str = ","
    features: CsvFeatures | None = None  # declared vocabulary and region (None: all defaults)

    @field_validator("path", "areas")
    @classmethod
    def _home(cls, value: str | None) -> str | None:
        return None if value is None else _expand_home(value)


# Upper bounds that keep a run within what the 2-core, 24 GB machine Peel targets can hold and
# finish: every number is finite, and sizes are bounded so a typo (an extra three zeros) is refused
# here, with the key named, rather than failing after data were written and ledgers charged.
MAX_MODEL_PARAMETERS = 1_000_000  # between the hidden layers (the input layer adds ~width × features)
MAX_LAYER_WIDTH = 8192
MAX_LAYERS = 256
# DP-SGD keeps one gradient per example of a batch: batch_size × parameters floats.
MAX_PER_SAMPLE_FLOATS = 500_000_000  # 2 GB
MAX_LOCAL_EPOCHS_TOTAL = 10_000  # rounds × local_epochs, per agency
MAX_EPSILON = 1000.0  # far beyond any meaningful guarantee; larger values break the accountants
MAX_NORM = 1e4  # a clipping norm above this is no clipping, and squares of it overflow


def hidden_parameters(hidden: list[int]) -> int:
    """Weights and biases between the hidden layers (what the config alone fixes)."""
    return sum(a * b + b for a, b in zip(hidden, hidden[1:], strict=False)) + sum(hidden)


class HotspotCells(_Section):
    """The cells the hotspot baselines are scored on: LSOAs (always, beside the models) and, with
    cells: grid, also grid_m squares (baselines only; police.uk's snapped points, not streets)."""

    cells: Literal["lsoa", "grid"] = "lsoa"
    grid_m: float = Field(250.0, ge=50, le=5000, allow_inf_nan=False)


class TaskConfig(_Section):
    name: Literal["outcome", "hotspot"] = "outcome"
    # hotspot: the share of an agency's areas flagged each month (the label's top share too).
    hotspot_share: float = Field(0.05, gt=0, le=0.5)
    hotspot: HotspotCells = Field(default_factory=HotspotCells)
    positive: list[str] = Field(default_factory=lambda: [NO_SUSPECT], min_length=1)
    test_months: int = Field(6, ge=1, le=240)
    # An agency with fewer test records than this gets a warning: its metrics are not solid.
    min_test_records: int = Field(50, ge=0, le=10_000_000)
    hidden: list[int] = Field(default_factory=lambda: [64, 64], max_length=MAX_LAYERS)

    @field_validator("positive", mode="before")
    @classmethod
    def _not_yaml_booleans(cls, value: Any) -> Any:
        # YAML reads an unquoted YES, No, on, off, true... as a boolean, and its spelling is lost.
        if isinstance(value, list) and any(isinstance(v, bool) for v in value):
            raise ValueError('YAML read an unquoted yes/no/on/off/true/false as a boolean; quote your value, e.g. positive: ["YES"]')
        return value

    @field_validator("positive")
    @classmethod
    def _clean_outcomes(cls, value: list[str]) -> list[str]:
        # police.uk categories except for data.source csv, whose own values count (checked in
        # PeelConfig._data_and_task_fit, and against the data when it is read).
        if any(not isinstance(v, str) or not v.strip() for v in value):
            raise ValueError("an outcome value is empty")
        return [v.strip() for v in value]

    @field_validator("hidden")
    @classmethod
    def _positive_widths(cls, value: list[int]) -> list[int]:
        if any(w < 1 for w in value):
            raise ValueError("layer widths must be ≥ 1")
        if any(w > MAX_LAYER_WIDTH for w in value):
            raise ValueError(f"layer widths must be ≤ {MAX_LAYER_WIDTH:,}")
        if hidden_parameters(value) > MAX_MODEL_PARAMETERS:
            raise ValueError(f"{hidden_parameters(value):,} parameters between the hidden layers; at most {MAX_MODEL_PARAMETERS:,} fit this machine")
        return value


class FederationConfig(_Section):
    rounds: int = Field(10, ge=1, le=10_000)
    local_epochs: int = Field(1, ge=1, le=1_000)
    batch_size: int = Field(256, ge=1, le=65_536)
    learning_rate: float = Field(0.003, gt=0, le=10, allow_inf_nan=False)
    round_timeout: float = Field(600.0, gt=0, le=86_400, allow_inf_nan=False)
    # How the coordinator combines the agencies' updates in fedavg and fedavg-dp (Flower's
    # FedAvg, FedMedian, FedTrimmedAvg, Krum). fedavg-dp-secagg sees only the masked sum and
    # fedavg-central-dp's noise is calibrated to the clipped mean: both always average.
    aggregator: Literal["fedavg", "median", "trimmed_mean", "krum"] = "fedavg"
    trimmed_beta: float = Field(0.2, ge=0, lt=0.5)  # trimmed_mean: share cut from each tail
    krum_malicious: int = Field(1, ge=0, le=500)  # krum: agencies assumed malicious (needs n ≥ 2f + 3)


class CentralDPConfig(_Section):
    """fedavg-central-dp: agency-level DP, clipping and noise added by the coordinator. The only
    validation of these settings: the coordinator gets them typed (federation.spec.CentralDPSpec)."""

    epsilon: float | None = Field(None, gt=0, le=MAX_EPSILON, allow_inf_nan=False)  # None: privacy.epsilon
    # 1.0: on configs/default.yaml plain updates measured 0.37–4.7 (median 1.7) in round 1 and
    # 0.22–1.6 (median ≈0.8) afterwards.
    clipping_norm: float = Field(1.0, gt=0, le=MAX_NORM, allow_inf_nan=False)
    adaptive: bool = False
    target_quantile: float = Field(0.5, gt=0, lt=1)
    clip_learning_rate: float = Field(0.2, gt=0, le=10, allow_inf_nan=False)
    clipped_count_stddev: float | None = Field(None, gt=0, le=1e6, allow_inf_nan=False)


class PersonConfig(_Section):
    """privacy.unit: person (privacy/person_unit.py): each record counts for one person (its
    victim, else its suspect), capped per agency, clipped per person."""

    # At most this many records per person per agency enter training (the person's smallest HMAC
    # of the record id); the clipped sum bounds a person's influence whatever the cap.
    max_records: int = Field(5, ge=1, le=10_000)
    # The stated public bound on the agencies one person appears in (docs/threat-model.md,
    # "People"): the federation-level person ε composes this many agencies' ε.
    max_agencies: int = Field(2, ge=1, le=1_000)


class PrivacyConfig(_Section):
    # The unit the DP architectures protect: one incident record, or one person with every record
    # attributed to them (`budgets`/`epsilon` are then per person, in a person ledger of its own).
    unit: Literal["record", "person"] = "record"
    person: PersonConfig = PersonConfig()
    # Each agency's record-level budget (ε over everything it ever releases from its records,
    # kept in its ledger); `budgets` overrides it for named agencies.
    epsilon: float = Field(1.0, gt=0, le=MAX_EPSILON, allow_inf_nan=False)
    budgets: dict[str, float] = Field(default_factory=dict)
    delta: float = Field(1e-5, gt=0, lt=1)
    max_grad_norm: float = Field(5.0, gt=0, le=MAX_NORM, allow_inf_nan=False)
    # auto: the tightest accountant that is correct for Poisson sampling (PLD).
    accountant: Literal["auto", "pld", "prv", "rdp"] = "auto"
    # Std of the Gaussian noise on the record count a DP agency releases once (its FedAvg weight
    # and the base of its sampling rate): ~1% of an ε = 1 budget at 50.
    count_sigma: float = Field(50.0, gt=0, le=1e6, allow_inf_nan=False)
    # An agency refuses a release whose noise multiplier would exceed this: noise, not a model.
    max_noise_multiplier: float = Field(30.0, gt=0, le=1e4, allow_inf_nan=False)
    # Warn before training when an agency has less than this share of its budget left.
    warn_below_share: float = Field(0.25, ge=0, le=1)
    central: CentralDPConfig = CentralDPConfig()

    @field_validator("epsilon")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @field_validator("budgets")
    @classmethod
    def _positive_budgets(cls, value: dict[str, float]) -> dict[str, float]:
        for agency, eps in value.items():
            if not (isinstance(eps, int | float) and math.isfinite(eps) and 0 < eps <= MAX_EPSILON):
                raise ValueError(f"budget of {shown(agency)} must be a finite number > 0 and ≤ {MAX_EPSILON:g}")
        return value


class MaliciousConfig(_Section):
    """One agency that trains honestly, then manipulates the update it sends (global + Δ):
    scale → global + factor·Δ; sign_flip → global − factor·Δ; noise → adds N(0, factor²) to
    every parameter."""

    agency: str = Field(min_length=1)  # a name, or `largest` / `smallest` (by records, resolved per run)
    attack: Literal["scale", "sign_flip", "noise"] = "scale"
    factor: float = Field(10.0, gt=0, le=1e6, allow_inf_nan=False)


class FaultsConfig(_Section):
    """Simulated faults (simulation engines only)."""

    # Each agency fails each training round with this probability, before it trains or spends
    # any budget: the round aggregates the agencies that answered.
    dropout: float = Field(0.0, ge=0, lt=1)
    # A poisoned update (None: every agency is honest); every federated architecture.
    malicious: MaliciousConfig | None = None


class AuditConfig(_Section):
    """Privacy audits run after training: membership inference on every architecture's final
    model, and a one-run canary audit of the DP-SGD mechanism."""

    enabled: bool = False
    canaries: int = Field(1000, ge=10, le=100_000)
    # Share of each agency's training-period records held out as the attack's non-members.
    holdout: float = Field(0.2, gt=0, lt=0.9)


class PeelConfig(_Section):
    seed: int = Field(0, ge=0, le=2**32 - 1)  # numpy's seed range
    # Parent folder of run folders: results land in <output>/<run-id>/.
    output: str = "runs"
    data: DataConfig = DataConfig()
    task: TaskConfig = TaskConfig()
    federation: FederationConfig = FederationConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    architectures: list[Architecture] = Field(default_factory=lambda: list(registry.DEFAULT), min_length=1)
    audit: AuditConfig = AuditConfig()
    faults: FaultsConfig = FaultsConfig()
    # `peel analyze`: DP statistics across the agencies (experiments/analytics_config.py).
    analytics: AnalyticsConfig | None = None
    # `peel sweep`: a grid over config keys, e.g. {privacy.epsilon: [0.5, 1, 2], seed: [0, 1, 2]}.
    sweep: dict[str, list[Any]] | None = None

    @field_validator("output")
    @classmethod
    def _home(cls, value: str) -> str:
        return _expand_home(value)

    @field_validator("audit", mode="before")
    @classmethod
    def _audit_flag(cls, value: Any) -> Any:
        return {"enabled": value} if isinstance(value, bool) else value

    @field_validator("sweep")
    @classmethod
    def _sweep_keys(cls, value: dict[str, list[Any]] | None) -> dict[str, list[Any]] | None:
        if value is None:
            return value
        if not value:
            raise ValueError("names no key to sweep over")
        for key, values in value.items():
            if key.split(".")[0] in ("sweep", "output"):
                raise ValueError(f"cannot sweep over {key!r}")
            if not is_config_key(PeelConfig, key):
                raise ValueError(f"{key!r} is not a config key")
            if not values:
                raise ValueError(f"{key!r} has no values")
        return value

    @field_validator("architectures")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("lists an architecture twice")
        return value

    @model_validator(mode="after")
    def _fits_in_memory(self) -> PeelConfig:
        fed = self.federation
        if fed.rounds * fed.local_epochs > MAX_LOCAL_EPOCHS_TOTAL:
            raise ValueError(
                f"federation.rounds × federation.local_epochs: {fed.rounds:,} × {fed.local_epochs:,} = "
                f"{fed.rounds * fed.local_epochs:,} passes over each agency's records; at most {MAX_LOCAL_EPOCHS_TOTAL:,}"
            )
        floats = self.federation.batch_size * hidden_parameters(self.task.hidden)
        if floats > MAX_PER_SAMPLE_FLOATS:
            raise ValueError(
                f"federation.batch_size × task.hidden: {self.federation.batch_size:,} examples × {hidden_parameters(self.task.hidden):,} "
                f"parameters = {floats * 4 / 1e9:.0f} GB of per-example gradients (DP-SGD); at most {MAX_PER_SAMPLE_FLOATS * 4 / 1e9:.0f} GB fit this machine"
            )
        return self

    @model_validator(mode="after")
    def _person_unit_fits_task(self) -> PeelConfig:
        if self.privacy.unit == "person" and self.task.name != "outcome":
            raise ValueError(f"privacy.unit: person needs task.name outcome (a {self.task.name} example is not one person's record)")
        return self

    @model_validator(mode="after")
    def _data_and_task_fit(self) -> PeelConfig:
        data = self.data
        if data.source == "csv":
            if data.path and Path(data.path).is_dir():
                raise ValueError(f"data.path: {data.path!r} is a folder, not a file; data.source csv reads one CSV file (police_uk reads a folder)")
            if not data.path or not Path(data.path).is_file():
                raise ValueError(f"data.path: file {data.path!r} does not exist (data.source csv reads one CSV file)")
            if data.columns is None:
                raise ValueError("data.columns: required when data.source is csv (which column holds agency, date, category, ...)")
            if data.areas and not Path(data.areas).is_file():
                raise ValueError(f"data.areas: file {data.areas!r} does not exist")
            if data.features and data.features.areas and not data.columns.area:
                raise ValueError("data.features.areas: no column is mapped to area in data.columns (the codes are looked up there)")
        elif data.source != "csv" and (data.columns is not None or data.values):
            raise ValueError("data.columns: only for data.source csv")
        if data.source != "csv" and data.features is not None:
            raise ValueError("data.features: only for data.source csv (police.uk data use Peel's own features)")
        unknown = [v for v in self.task.positive if v not in OUTCOME_CATEGORIES]
        if data.source != "csv" and unknown:
            raise ValueError(f"task.positive: unknown outcome categor{'y' if len(unknown) == 1 else 'ies'} {unknown}; allowed: {list(OUTCOME_CATEGORIES)}")
        if data.source == "police_uk":
            if not data.path:
                raise ValueError("data.path: required when data.source is police_uk")
            if Path(data.path).exists() and not Path(data.path).is_dir():
                raise ValueError(
                    f"data.path: {data.path!r} is a file, not a folder; data.source police_uk reads a folder of "
                    "*-street.csv files (the one holding the YYYY-MM folders); for one CSV file use data.source csv"
                )
            if not Path(data.path).is_dir():
                raise ValueError(f"data.path: folder {data.path!r} does not exist")
            if data.areas and not Path(data.areas).is_file():
                raise ValueError(f"data.areas: file {data.areas!r} does not exist")
            if self.task.name == "hotspot" and not data.areas:
                raise ValueError("data.areas: the hotspot task needs the public areas table (area centroids, deprivation)")
        elif data.source == "agencies":
            if data.path and Path(data.path).is_file():
                raise ValueError(f"data.path: {data.path!r} is a file, not a folder; data.source agencies reads a folder made by `peel generate`")
            if not data.path or not (Path(data.path) / "manifest.json").is_file():
                raise ValueError(f"data.path: {data.path!r} is not a folder made by `peel generate` (no manifest.json)")
        elif self.task.test_months >= data.months:
            raise ValueError(
                f"task.test_months: {self.task.test_months} leaves no training months out of data.months={data.months}"
            )
        return self


def check_agency_names(config: PeelConfig, names: set[str]) -> None:
    """Settings that name agencies or count them, checked once the data's agencies are known."""
    unknown = sorted(set(config.privacy.budgets) - names)
    if unknown:
        raise ConfigError(f"privacy.budgets: no agency named {unknown[0]!r} in the data (agencies: {', '.join(sorted(names))})")
    malicious = config.faults.malicious
    if malicious is not None and malicious.agency not in names:
        raise ConfigError(f"faults.malicious.agency: no agency named {malicious.agency!r} in the data (agencies: {', '.join(sorted(names))})")
    fed = config.federation
    if fed.aggregator == "krum" and len(names) < 2 * fed.krum_malicious + 3:
        raise ConfigError(f"federation.krum_malicious: Krum with {fed.krum_malicious} malicious agenc{'y' if fed.krum_malicious == 1 else 'ies'} needs at least {2 * fed.krum_malicious + 3} agencies; the data has {len(names)}")


def validate(raw: dict, where: str, overrides: list[str] | tuple[str, ...] = ()) -> PeelConfig:
    """The config of `raw`; a ConfigError blames the `--set` whose key the error is about (or
    lies under), else `where` (the config file)."""
    try:
        return PeelConfig.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = error_key(error)
        for assignment in reversed(overrides):  # the last --set of a key is the one that counts
            set_key = assignment.partition("=")[0].strip()
            if key and (key == set_key or key.startswith(set_key + ".") or set_key.startswith(key + ".")):
                where = f"--set {shown(assignment)}"
                break
        raise ConfigError(f"{where}: {describe(PeelConfig, error)}") from None


def set_override(raw: dict, assignment: str) -> None:
    """Apply one `--set key.path=value` (value parsed as YAML) to a raw config dict."""
    key, sep, text = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {shown(assignment)}: expected key.path=value")
    try:
        value = parse_yaml(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {shown(assignment)}: value is not valid YAML ({yaml_problem(exc)})") from None
    parts = key.strip().split(".")
    node = raw
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {shown(assignment)}: {'.'.join(parts[: depth + 1])} is not a section")
        node = child
    node[parts[-1]] = value


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> PeelConfig:
    """Read, override and validate a YAML config. Raises ConfigError with one line."""
    path = Path(path)
    try:
        raw = read_yaml_file(path)
    except YamlFileError as exc:
        raise ConfigError(str(exc)) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config must be a mapping of keys to values")
    for assignment in overrides:
        set_override(raw, assignment)
    return validate(raw, str(path), overrides)


def dump(config: PeelConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def to_dict(config: PeelConfig) -> dict[str, Any]:
    return config.model_dump(mode="json")
