"""How an agency finds its own data and its own privacy settings — the only place where
simulation and deployment differ.

- Deployment: the SuperNode is started with `--node-config "agency='NAME' data-path='FOLDER'"`.
- Simulation: Flower gives each virtual node only `partition-id`; the federation spec written by
  `peel run` maps it to one agency's folder.

The spec (federation/spec.py) is a JSON file named by the run config key `peel-spec` (`flwr run`)
or the `PEEL_SPEC` environment variable (`peel run`, whose in-process simulation passes an empty
run config).
An agency reads only its own folder and the public areas table.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd
from flwr.app import Context

from federation import spec as run_spec
from federation.policy import AgencyPolicy
from federation.spec import TRAIL_FILE, RunSpec
from policedata.loader import load_areas, load_street_folder
from privacy.audit.mia import holdout_key, holdout_same_months
from privacy.ledger import LEDGER_FILENAME
from tasks.registry import Split, build_split


@dataclass(frozen=True)
class Agency:
    name: str
    folder: Path
    spec_path: Path
    ledger: Path  # the agency's own budget ledger (SQLite), kept across runs
    policy: AgencyPolicy  # its own privacy settings (budget, δ, clipping, ...), not the coordinator's
    trail: Path  # the audit trail it appends to before any reply leaves

    @property
    def budget(self) -> float:
        """Its record-level ε budget."""
        return self.policy.budget

    @property
    def spec(self) -> RunSpec:
        return read_spec(self.spec_path)


@lru_cache(maxsize=4)
def read_spec(path: Path) -> RunSpec:
    return run_spec.read(path)


def spec_path(context: Context) -> Path:
    path = str(context.run_config.get("peel-spec", "") or os.environ.get("PEEL_SPEC", ""))
    if not path:
        raise RuntimeError("no federation spec: set run config 'peel-spec' or PEEL_SPEC")
    return Path(path)


def locate(context: Context) -> Agency:
    """This node's agency: from its node config (deployment) or its partition id (simulation)."""
    path = spec_path(context)
    return _locate(path, _stamp(path), tuple(sorted(context.node_config.items())))


def _stamp(path: Path) -> tuple[int, int]:
    """Changes when the spec file does (a cache key part; a missing file fails in read_spec)."""
    try:
        st = os.stat(path)
    except OSError:
        return (0, 0)
    return (st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=4096)
def _locate(path: Path, stamp: tuple[int, int], node_items: tuple) -> Agency:
    """`locate` for one spec file (as it is now) and node config: the same for every message
    of a node, so it is worked out once."""
    node = dict(node_items)
    if "agency" in node and "data-path" in node:
        # Deployment: the agency's operator, not the coordinator, sets its data, ledger and budget.
        folder = Path(str(node["data-path"]))
        ledger = Path(str(node.get("ledger-path", folder / LEDGER_FILENAME)))
        spec = read_spec(path)
        name = str(node["agency"])
        policy = _spec_policy(spec, name).with_node_config(node)
        trail = Path(str(node.get("audit-path", spec.run_dir / TRAIL_FILE)))
        return Agency(name, folder, path, ledger, policy, trail)
    spec = read_spec(path)
    entry = spec.agencies[int(node["partition-id"])]
    return Agency(entry.name, entry.folder, path, entry.ledger, entry.policy, spec.run_dir / TRAIL_FILE)


def _spec_policy(spec: RunSpec, name: str) -> AgencyPolicy:
    """The policy the spec proposes for agency `name` (a deployed node's own settings override it)."""
    entry = spec.agency(name)
    return entry.policy if entry is not None else spec.default_policy


def load_split(agency: Agency) -> Split:
    """The agency's train/test split. Cached for the life of this process by what it depends
    on (not by run), so that sweep cells over the same records build it once (a simulation
    worker serves many rounds and runs; a deployment SuperNode may start afresh per message)."""
    return _split(agency.name, agency.folder, _split_key(agency, _stamp(agency.spec_path)))


@lru_cache(maxsize=4096)
def _split_key(agency: Agency, stamp: tuple[int, int]) -> str:
    """What an agency's split depends on, as a cache key (worked out once per agency and spec)."""
    spec = agency.spec
    return json.dumps(
        {
            "agency": {"column": spec.records.agency_column, "pattern": spec.records.agency_pattern},
            "areas": str(spec.areas) if spec.areas else None,
            "task": spec.task.split_settings(),
            "holdout": spec.audit.holdout if spec.audit.enabled else None,
            "seed": spec.seed,
        },
        sort_keys=True,
    )


# Big enough for every agency of a large federation (200+): each message of an agency asks for its
# split, so a cache smaller than the federation misses on every message (rebuilding the split from
# the agency's CSVs each time). The runner holds the same Split objects, so this adds no memory.
@lru_cache(maxsize=4096)
def _split(name: str, folder: Path, key: str) -> Split:
    settings = json.loads(key)
    records, _ = load_street_folder(folder, settings["agency"]["column"], settings["agency"]["pattern"])
    records = records[records["agency"] == name]
    if records.empty:
        raise RuntimeError(f"{folder}: no records of agency {name!r}")
    areas: pd.DataFrame | None = load_areas(Path(settings["areas"])) if settings["areas"] else None
    split = build_split(settings["task"], records, areas)
    if settings["holdout"] is not None:
        split = hold_out_for_audit(split, float(settings["holdout"]), holdout_key(settings["seed"], name))
    return split


def hold_out_for_audit(split: Split, fraction: float, key: bytes) -> Split:
    """Keep ≈ `fraction` of each training month out of training: the membership audit's
    non-members, from the same months as its members (the training rows). Each row is chosen by
    a keyed hash of its own key (`split.train_keys`), so one record more or less changes no other
    record's role."""
    if split.train_keys is None or len(split.train_keys) != len(split.y_train):
        raise ValueError("hold_out_for_audit: the split has no per-row keys (train_keys) for its training rows")
    held = holdout_same_months(split.train_keys, fraction, key)
    counts = {**split.counts, "n_train": int((~held).sum()), "n_audit_holdout": int(held.sum())}
    return dataclasses.replace(
        split,
        X_train=split.X_train[~held],
        y_train=split.y_train[~held],
        train_months=split.train_months[~held],
        train_keys=split.train_keys[~held],
        X_holdout=split.X_train[held],
        y_holdout=split.y_train[held],
        counts=counts,
    )
