"""A run folder: its resolved config, its agencies' data and splits, and the results gathered so
far; made new (`prepare`, `open_folder`), or read back to resume or audit it (`reopen*`)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from clients.agency import Agency, load_split
from experiments.config import PeelConfig, dump
from experiments.own_vocabulary import feature_layout
from experiments.prepare import SPEC_FILE, Federation, check_output_folder, materialise, resolve_attacker, write_spec
from experiments.results import write_atomic
from federation import architectures
from federation.policy import AgencyPolicy
from federation.spec import TRAIL_FILE
from policedata.loader import load_areas
from tasks import registry
from tasks.model import initial_model

log = logging.getLogger("peel.run")

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
            self._splits = {a["name"]: load_split(Agency(a["name"], Path(a["folder"]), self.spec_path, Path(a["ledger"]), AgencyPolicy.from_dict(a["policy"]), self.run_dir / TRAIL_FILE)) for a in self.federation.agencies}
        return self._splits

    @functools.cached_property
    def intensity(self) -> pd.DataFrame | None:
        return registry.read_intensity(self.federation.ground_truth) if self.config.task.name == "hotspot" else None

    @functools.cached_property
    def areas(self) -> pd.DataFrame:
        if self.federation.areas is None:  # read only where the run has an areas table
            raise ValueError(f"{self.run_dir}: this run has no areas table")
        return load_areas(self.federation.areas)

    def new_model(self) -> torch.nn.Module:
        config = self.config
        return initial_model(config.task.hidden, config.seed, registry.n_features(config.task.name, feature_layout(config)))

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


def model_of(models: Models, agency: str) -> torch.nn.Module:
    return models[agency] if isinstance(models, dict) else models
