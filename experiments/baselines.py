"""The two non-federated architectures, trained in-process on the same splits, model
initialisation and hyperparameters as the federated ones.

- `central`: every agency's training records pooled into one model — the "integrate
  everything" platform. No privacy at all; it exists to show what pooling buys.
- `local`: every agency trains alone on its own records; nothing leaves any agency.

Both train for as many epochs as a federated agency does over the whole run
(rounds × local epochs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch

from tasks.metrics import binary_metrics
from tasks.outcome import OutcomeSplit
from tasks.seeding import stable_seed
from tasks.train import predict_proba, train_plain

PerAgency = dict[str, dict]


def _evaluate(model: torch.nn.Module, split: OutcomeSplit) -> dict:
    return binary_metrics(split.y_test, predict_proba(model, split.X_test))


def run_central(
    splits: Mapping[str, OutcomeSplit],
    new_model: Callable[[], torch.nn.Module],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
) -> tuple[PerAgency, torch.nn.Module]:
    model = new_model()
    X = np.concatenate([s.X_train for s in splits.values()])
    y = np.concatenate([s.y_train for s in splits.values()])
    generator = torch.Generator().manual_seed(stable_seed(seed, "central"))
    train_plain(model, X, y, epochs=epochs, batch_size=batch_size, lr=lr, generator=generator)
    return {name: _evaluate(model, split) for name, split in splits.items()}, model


def run_local(
    splits: Mapping[str, OutcomeSplit],
    new_model: Callable[[], torch.nn.Module],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
) -> PerAgency:
    results: PerAgency = {}
    for name, split in splits.items():
        model = new_model()
        generator = torch.Generator().manual_seed(stable_seed(seed, "local", name))
        train_plain(model, split.X_train, split.y_train, epochs=epochs, batch_size=batch_size, lr=lr, generator=generator)
        results[name] = _evaluate(model, split)
    return results
