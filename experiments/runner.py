"""`peel run`: every architecture of the config on the same agencies, split, initial model and
seed; results in one run folder. `peel sweep` runs many such folders through the same steps
(experiments/sweep.py), sharing data and one Flower start-up."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import torch

from experiments.baselines import Training, train_central, train_local
from experiments.config import PeelConfig
from experiments.federated import ENGINES, collect_federated, train_federated
from experiments.ledgers import warn_low_budgets
from experiments.person_figures import unit_ledgers
from experiments.results import write_json
from experiments.run_folder import (
    Models,
    RunFolder,
    Splits,
    keep_torch_cache_in,
    model_of,
    new_run_dir,
    open_folder,
    prepare,
    reopen,
    reopen_unfinished,
)
from experiments.scoring import score
from experiments.small_test_sets import warn_small_test_sets
from experiments.summary import architecture_entry, summarise
from federation import architectures
from privacy.durable import save_durably

# The runner's names from before it was split by concern (run_folder, scoring, summary, federated).
__all__ = [
    "ENGINES",
    "Models",
    "RunFolder",
    "Splits",
    "collect_federated",
    "execute",
    "keep_torch_cache_in",
    "model_of",
    "new_run_dir",
    "open_folder",
    "prepare",
    "reopen",
    "reopen_unfinished",
    "run",
    "score",
    "summarise",
    "train_baseline",
    "train_federated",
]

log = logging.getLogger("peel.run")


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
    per_agency: dict[str, dict] = {n: {"epsilon": None, "records_moved": moved[n], "updates_sent": 0, "update_bytes_sent": 0, "errors": []} for n in splits}
    folder.results[arch] = architecture_entry(arch, per_agency, folder, wall_s=wall_s, delta=None, records_moved=sum(moved.values()), update_bytes=0)
    write_json(models_dir / f"{arch}.json", folder.results[arch])  # last: marks the baseline done for a resumed run


def _check_delta(delta: float, splits: Splits) -> None:
    """(ε, δ)-DP with δ ≥ 1/n allows releasing a whole record outright with probability δ per
    record: warn when an agency is that large."""
    too_large = [name for name, split in splits.items() if delta * len(split.y_train) >= 1]
    if too_large:
        log.warning("privacy.delta=%g is not below 1/(training records) for %s: choose δ well below 1/n", delta, ", ".join(too_large))


def execute(folders: list[RunFolder], on_done: Callable[[RunFolder], object] = summarise, engine: str = "in-process", deploy_dir: Path | None = None) -> None:
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
            folder.warnings = warn_low_budgets(unit_ledgers(folder.federation.agencies, folder.config), folder.config.privacy.warn_below_share)
        # A sweep's cells share their data: its end table lists the small test sets once instead.
        folder.warnings += warn_small_test_sets(folder.splits, folder.config.task.min_test_records, say=len(folders) == 1)
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
