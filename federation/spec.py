"""The run spec: what the runner tells the Flower apps about one run, typed.

`peel run` builds a `RunSpec` from the validated config (experiments/prepare.py: the YAML schema
lives only there) and writes it into the run folder as `SPEC_FILE`; the ClientApp and ServerApp
read it with `read` and use its attributes, never the config's spelling. A damaged file stops
with one line naming the file and the key.

The file is JSON (`version` 2). A spec written before the typed spec existed (a `config` key
holding the whole resolved config, no `version`) is still read, so old run folders resume.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from federation.policy import AgencyPolicy, PolicyError
from privacy.durable import replace_durably
from tasks.features import FeatureLayout

SPEC_FILE = "federation.json"
TRAIL_FILE = "audit.jsonl"  # the run's hash-chained message log (`peel trail verify`)
VERSION = 2


class SpecError(ValueError):
    """A federation spec that cannot be read (the message is one line naming file and key)."""


@dataclass(frozen=True)
class TaskSpec:
    name: str  # "outcome" | "hotspot" (tasks.registry)
    test_from: str  # first test month, "YYYY-MM"
    hidden: tuple[int, ...]  # widths of the model's hidden layers
    positive: tuple[str, ...] = ()  # outcome: the outcome categories that count as positive
    hotspot_share: float = 0.05
    period: tuple[str, str] | None = None  # first and last month of the data
    features: FeatureLayout | None = None  # outcome: None is the data.police.uk layout

    def split_settings(self) -> dict[str, Any]:
        """The task as tasks.registry.build_split reads it."""
        return {"name": self.name, "positive": list(self.positive), "hotspot_share": self.hotspot_share, "test_from": self.test_from, "period": list(self.period) if self.period else None,
                "features": self.features.as_dict() if self.features else None}


@dataclass(frozen=True)
class FederationSpec:
    rounds: int
    local_epochs: int
    batch_size: int
    learning_rate: float
    round_timeout: float
    aggregator: str = "fedavg"  # fedavg | median | trimmed_mean | krum, where the architecture allows it
    trimmed_beta: float = 0.2
    krum_malicious: int = 1


@dataclass(frozen=True)
class CentralDPSpec:
    """fedavg-central-dp's agency-level DP settings, validated by the config schema."""

    epsilon: float  # the agency-level target (privacy.central.epsilon, else privacy.epsilon)
    delta: float
    accountant: str
    clipping_norm: float = 1.0
    adaptive: bool = False
    target_quantile: float = 0.5
    clip_learning_rate: float = 0.2
    clipped_count_stddev: float | None = None  # None: chosen by the plan


@dataclass(frozen=True)
class MaliciousSpec:
    agency: str  # resolved to a name by the runner (never "largest"/"smallest" here)
    attack: str  # scale | sign_flip | noise (clients/attacks.py)
    factor: float


@dataclass(frozen=True)
class FaultsSpec:
    dropout: float = 0.0  # chance an agency fails a training round
    malicious: MaliciousSpec | None = None


@dataclass(frozen=True)
class AuditSpec:
    enabled: bool = False
    holdout: float = 0.2  # share of each agency's training records held out as non-members


@dataclass(frozen=True)
class RecordsSpec:
    """How an agency reads its own street CSVs: the column that names the agency."""

    agency_column: str = "Falls within"
    agency_pattern: str | None = None


@dataclass(frozen=True)
class AgencySpec:
    name: str
    slug: str
    folder: Path
    ledger: Path  # its budget ledger (SQLite)
    policy: AgencyPolicy  # what the run proposes; a deployed agency's node config wins


@dataclass(frozen=True)
class RunSpec:
    run_dir: Path
    seed: int
    task: TaskSpec
    federation: FederationSpec
    central_dp: CentralDPSpec
    default_policy: AgencyPolicy  # for a deployed agency this spec does not list
    agencies: tuple[AgencySpec, ...]
    federated: tuple[str, ...]  # the federated architectures, in the order they train
    faults: FaultsSpec = FaultsSpec()
    audit: AuditSpec = AuditSpec()
    records: RecordsSpec = RecordsSpec()
    areas: Path | None = None  # the public areas table
    ground_truth: Path | None = None  # synthetic only; read by the evaluation, never by agencies
    # What the runner needs to rebuild the run folder on resume (the apps ignore them).
    config_file: str = ""
    notes: tuple[str, ...] = ()
    set_aside: Mapping[str, Any] | None = field(default=None, hash=False)

    @property
    def run_id(self) -> str:
        """The run's id: the name of its folder (agencies tag their releases with it)."""
        return self.run_dir.name

    def agency(self, name: str) -> AgencySpec | None:
        return next((a for a in self.agencies if a.name == name), None)


def to_json(spec: RunSpec) -> dict[str, Any]:
    """The spec as JSON values (paths as strings). Each agency also carries `budget`, its
    policy's, for readers of the file (the report, `peel audit`)."""
    data: dict[str, Any] = {"version": VERSION, **_plain(dataclasses.asdict(spec))}
    for entry, agency in zip(data["agencies"], spec.agencies, strict=True):
        entry["budget"] = agency.policy.budget
    return data


def write(spec: RunSpec, path: Path) -> Path:
    """Write `spec` to `path` atomically (a reader sees the old file or the new one)."""
    replace_durably(Path(path), json.dumps(to_json(spec), indent=2).encode("utf-8"))
    return Path(path)


def read(path: Path | str) -> RunSpec:
    """The spec in `path`; SpecError (one line) for a missing or damaged file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"{path}: federation spec not found") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SpecError(f"{path}: unreadable federation spec ({str(exc).splitlines()[0]})") from None
    return from_json(data, str(path))


def from_json(data: object, where: str = SPEC_FILE) -> RunSpec:
    if not isinstance(data, dict):
        raise SpecError(f"{where}: not a federation spec (a JSON object expected)")
    if "version" not in data and "config" in data:
        data = _from_v1(data, where)
    elif data.get("version") != VERSION:
        raise SpecError(f"{where}: federation spec version {data.get('version')!r}; this Peel reads version {VERSION}")
    try:
        spec: RunSpec = _build(RunSpec, {k: v for k, v in data.items() if k != "version"}, "")
    except _Bad as exc:
        raise SpecError(f"{where}: {exc}") from None
    return spec


# ------------------------------------------------------------------ JSON ↔ dataclasses


class _Bad(Exception):
    pass


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _build(cls: type[Any], data: object, where: str) -> Any:
    """An instance of dataclass `cls` from JSON `data`, every field checked against its type."""
    if not isinstance(data, dict):
        raise _Bad(f"{where or 'spec'}: a JSON object expected, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    extra = [k for k in data if k not in known and not (cls is AgencySpec and k == "budget")]
    if extra:
        raise _Bad(f"{where + '.' if where else ''}{extra[0]}: unknown key")
    values = {}
    for name, f in known.items():
        key = f"{where}.{name}" if where else name
        if name in data:
            values[name] = _value(hints[name], data[name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise _Bad(f"{key}: missing")
    try:
        return cls(**values)
    except PolicyError as exc:
        raise _Bad(f"{where}: {exc}") from None


def _value(hint: Any, value: object, key: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _value(inner, value, key)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)  # type: ignore[arg-type]
    if origin is tuple:
        if not isinstance(value, list):
            raise _Bad(f"{key}: a list expected, got {value!r:.60}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_value(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise _Bad(f"{key}: {len(args)} values expected, got {len(value)}")
        return tuple(_value(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if origin is Mapping or hint is Any:
        if hint is not Any and not isinstance(value, dict):
            raise _Bad(f"{key}: a JSON object expected")
        return value
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise _Bad(f"{key}: a path expected, got {value!r:.60}")
        return Path(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Bad(f"{key}: a number expected, got {value!r:.60}")
        return float(value)
    if hint in (int, str, bool) and (type(value) is not hint):
        raise _Bad(f"{key}: {hint.__name__} expected, got {value!r:.60}")
    return value


def _from_v1(old: dict[str, Any], where: str) -> dict[str, Any]:
    """A spec of the first layout (the whole resolved config under `config`) in this one."""
    try:
        config = old["config"]
        privacy, fed, task = config["privacy"], config["federation"], old["task"]
        central = privacy.get("central") or {}
        default_policy = {k: privacy[k] for k in ("delta", "max_grad_norm", "accountant", "count_sigma", "max_noise_multiplier") if k in privacy}
        faults, audit, agency = config.get("faults") or {}, config.get("audit") or {}, config["data"]["agency"]
        return {
            "run_dir": old["run_dir"],
            "seed": config["seed"],
            "task": {**{k: task[k] for k in ("name", "positive", "hotspot_share", "test_from", "period") if k in task}, "hidden": config["task"]["hidden"]},
            "federation": fed,
            "central_dp": {
                **{k: v for k, v in central.items() if k != "epsilon"},
                "epsilon": central.get("epsilon") or privacy["epsilon"],
                "delta": privacy["delta"],
                "accountant": privacy["accountant"],
            },
            "default_policy": {**default_policy, "budget": privacy["epsilon"]},
            "agencies": [
                {
                    **{k: a[k] for k in ("name", "slug", "folder", "ledger")},
                    "policy": a.get("policy") or {**default_policy, "budget": float(privacy.get("budgets", {}).get(a["name"], privacy["epsilon"]))},
                }
                for a in old["agencies"]
            ],
            "federated": old["federated"],
            "faults": {"dropout": faults.get("dropout", 0.0), "malicious": faults.get("malicious")},
            "audit": {"enabled": bool(audit.get("enabled", False)), "holdout": audit.get("holdout", 0.2)},
            "records": {"agency_column": agency["column"], "agency_pattern": agency.get("pattern")},
            **{k: old[k] for k in ("areas", "ground_truth", "config_file", "notes", "set_aside") if k in old},
        }
    except (KeyError, TypeError, AttributeError) as exc:
        raise SpecError(f"{where}: damaged federation spec (first layout; {type(exc).__name__}: {exc})") from None
