"""Plain (non-private) training and prediction for the one-logit models of ``tasks.model``.

Batches are taken by indexing tensors with a seeded permutation: on small tabular data a torch
DataLoader costs 2-3x the whole training step. The DP path (``privacy``) wraps the same optimizer
and loss, so plain and private runs differ only in the privacy mechanism.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

PREDICT_CHUNK = 65_536  # rows per forward pass in predict_proba: bounds memory, not speed


def make_optimizer(params: Iterable[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """The optimizer of every architecture (plain and DP alike).

    ``fused`` Adam: one kernel for all parameters, ~25% off a small-MLP epoch on CPU; Opacus'
    DPOptimizer wraps it unchanged (checked with hooks and ghost clipping).
    """
    return torch.optim.Adam(params, lr=lr, fused=True)


def loss_fn() -> nn.Module:
    return nn.BCEWithLogitsLoss(reduction="mean")


def as_tensors(X: np.ndarray, y: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """float32 tensors from a feature matrix and 0/1 labels (one conversion per training call)."""
    X_t = torch.as_tensor(np.asarray(X, dtype=np.float32))
    if X_t.ndim != 2:
        raise ValueError(f"features must be a 2-D matrix, got shape {tuple(X_t.shape)}.")
    if y is None:
        return X_t, None
    y_t = torch.as_tensor(np.asarray(y, dtype=np.float32).reshape(-1))
    if len(y_t) != len(X_t):
        raise ValueError(f"{len(X_t)} feature rows but {len(y_t)} labels.")
    return X_t, y_t


def train_plain(
    model: nn.Module,
    X: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
) -> dict:
    """Train ``model`` in place; returns {"loss": mean loss of the last epoch, "steps": int}.

    The batch order comes only from ``generator``, so a seeded generator and the same initial
    weights give the same result. The last batch of an epoch may be smaller.
    """
    if epochs < 0 or batch_size < 1:
        raise ValueError(f"train_plain: need epochs >= 0 and batch_size >= 1, got {epochs}, {batch_size}.")
    X_t, y_t = as_tensors(X, y)
    n = len(X_t)
    if n == 0 or epochs == 0:
        return {"loss": float("nan"), "steps": 0}
    optimizer = make_optimizer(model.parameters(), lr)
    criterion = loss_fn()
    model.train()
    steps = 0
    for _ in range(epochs):
        perm = torch.randperm(n, generator=generator)
        X_epoch, y_epoch = X_t[perm], y_t[perm]  # one gather per epoch; batches are then views
        total = 0.0
        for start in range(0, n, batch_size):
            xb, yb = X_epoch[start : start + batch_size], y_epoch[start : start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(xb)
            steps += 1
    return {"loss": total / n, "steps": steps}


def predict_proba(model: nn.Module, X: np.ndarray) -> np.ndarray:
    """P(y = 1) per row as float64, computed without gradients in chunks."""
    X_t, _ = as_tensors(X)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            # sigmoid in float64 so tiny probabilities keep their precision for log loss
            chunks = [torch.sigmoid(model(X_t[i : i + PREDICT_CHUNK]).double()) for i in range(0, len(X_t), PREDICT_CHUNK)]
    finally:
        model.train(was_training)
    if not chunks:
        return np.empty(0, dtype=np.float64)
    return torch.cat(chunks).numpy().reshape(-1)
