"""The two non-federated architectures, trained in-process on the same splits, model
initialisation and hyperparameters as the federated ones.

- `central`: every agency's training records pooled into one model — the "integrate
  everything" platform. No privacy at all; it exists to show what pooling buys.
- `local`: every agency trains alone on its own records; nothing leaves any agency.

Both train for as many epochs as a federated agency does over the whole run
(rounds × local epochs). More local epochs were measured to overfit the small agencies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from tasks.registry import Split
from tasks.seeding import stable_seed
from tasks.train import train_plain


@dataclass(frozen=True)
class Training:
    new_model: Callable[[], torch.nn.Module]
    epochs: int
    batch_size: int
    lr: float
    seed: int

    def fit(self, X: np.ndarray, y: np.ndarray, *seed_parts: str) -> torch.nn.Module:
        model = self.new_model()
        generator = torch.Generator().manual_seed(stable_seed(self.seed, *seed_parts))
        train_plain(model, X, y, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, generator=generator)
        return model


def train_central(splits: Mapping[str, Split], training: Training) -> torch.nn.Module:
    """One model on every agency's training records pooled."""
    X = np.concatenate([s.X_train for s in splits.values()])
    y = np.concatenate([s.y_train for s in splits.values()])
    return training.fit(X, y, "central")


def train_local(splits: Mapping[str, Split], training: Training) -> dict[str, torch.nn.Module]:
    """One model per agency, on its own records only."""
    return {name: training.fit(split.X_train, split.y_train, "local", name) for name, split in splits.items()}
