"""How an agency finds its own data and its own privacy settings — the only place where
simulation and deployment differ.

- Deployment: the SuperNode is started with `--node-config "agency='NAME' data-path='FOLDER'"`.
- Simulation: Flower gives each virtual node only `partition-id`; the federation spec written by
  `peel run` maps it to one agency's folder.

The spec is a JSON file named by the run config key `peel-spec` (`flwr run`) or the `PEEL_SPEC`
environment variable (`peel run`, whose in-process simulation passes an empty run config).
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

from policedata.loader import load_areas, load_street_folder
from privacy.audit.mia import holdout_same_months
from tasks.registry import Split, build_split
from tasks.seeding import stable_seed


@dataclass(frozen=True)
class Agency:
    name: str
    folder: Path
    spec_path: Path

    @property
    def spec(self) -> dict:
        return read_spec(self.spec_path)


@lru_cache(maxsize=4)
def read_spec(path: Path) -> dict:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def spec_path(context: Context) -> Path:
    path = str(context.run_config.get("peel-spec", "") or os.environ.get("PEEL_SPEC", ""))
    if not path:
        raise RuntimeError("no federation spec: set run config 'peel-spec' or PEEL_SPEC")
    return Path(path)


def locate(context: Context) -> Agency:
    """This node's agency: from its node config (deployment) or its partition id (simulation)."""
    path = spec_path(context)
    node = context.node_config
    if "agency" in node and "data-path" in node:
        return Agency(str(node["agency"]), Path(str(node["data-path"])), path)
    entry = read_spec(path)["agencies"][int(node["partition-id"])]
    return Agency(entry["name"], Path(entry["folder"]), path)


@lru_cache(maxsize=64)
def load_split(agency: Agency) -> Split:
    """The agency's train/test split, cached for the life of this process (a simulation actor
    serves many rounds; a deployment SuperNode may start a fresh process per message)."""
    spec = agency.spec
    data = spec["config"]["data"]["agency"]
    records, _ = load_street_folder(agency.folder, data["column"], data["pattern"])
    records = records[records["agency"] == agency.name]
    if records.empty:
        raise RuntimeError(f"{agency.folder}: no records of agency {agency.name!r}")
    areas: pd.DataFrame | None = load_areas(Path(spec["areas"])) if spec.get("areas") else None
    split = build_split(spec["task"], records, areas)
    audit = spec["config"].get("audit", {})
    if audit.get("enabled"):
        split = hold_out_for_audit(split, float(audit["holdout"]), stable_seed(spec["config"]["seed"], agency.name, "audit"))
    return split


def hold_out_for_audit(split: Split, fraction: float, seed: int) -> Split:
    """Keep a random `fraction` of each training month out of training: the membership
    audit's non-members, from the same months as its members (the training rows)."""
    held = holdout_same_months(split.train_months, fraction, seed)
    counts = {**split.counts, "n_train": int((~held).sum()), "n_audit_holdout": int(held.sum())}
    return dataclasses.replace(
        split,
        X_train=split.X_train[~held],
        y_train=split.y_train[~held],
        train_months=split.train_months[~held],
        X_holdout=split.X_train[held],
        y_holdout=split.y_train[held],
        counts=counts,
    )
