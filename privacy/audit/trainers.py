"""Training recipes for the audits: a fresh model trained on given rows the way an architecture
trains it. An audit calls one as `train(X, y, plan)`; taking the plan as an argument (rather than
closing over one) means the ε an audit claims is always that of the plan it trained with.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from privacy.budget import DPPlan
from privacy.dpsgd import train_dp
from tasks.model import make_model
from tasks.train import train_plain

TrainFn = Callable[[np.ndarray, np.ndarray, "DPPlan | None"], nn.Module]


def dp_trainer(
    hidden: Sequence[int],
    lr: float,
    *,
    init_seed: int = 0,
    noise_seed: int | None = None,
    initial_model: Callable[[], nn.Module] | None = None,
    rounds: int | None = None,
) -> TrainFn:
    """DP-SGD as one agency runs it over a whole federated run, alone: `rounds` (default
    `plan.rounds`) calls of `privacy.dpsgd.train_dp` — the function the ClientApp calls — with
    `plan`, carrying the model from round to round, from `initial_model()` (the run's initial
    model; default a fresh `make_model(n_features, hidden, seed=init_seed)`).

    The noise and sampling generator is seeded from OS entropy, as an agency does, unless
    `noise_seed` is given (tests only: a known seed voids the guarantee against whoever knows it).
    """

    def train(X: np.ndarray, y: np.ndarray, plan: DPPlan | None) -> nn.Module:
        if plan is None:
            raise ValueError("dp_trainer: DP-SGD needs a DPPlan (got None).")
        model = initial_model() if initial_model is not None else make_model(X.shape[1], hidden, seed=init_seed)
        seed = noise_seed if noise_seed is not None else int.from_bytes(os.urandom(8), "little") >> 1
        generator = torch.Generator().manual_seed(seed)
        for _ in range(plan.rounds if rounds is None else rounds):
            train_dp(model, X, y, plan=plan, lr=lr, generator=generator)
        return model

    return train


def plain_trainer(hidden: Sequence[int], *, epochs: int, batch_size: int, lr: float, seed: int = 0) -> TrainFn:
    """Plain (non-private) training for `epochs` epochs; the plan is ignored (pass None)."""

    def train(X: np.ndarray, y: np.ndarray, plan: DPPlan | None) -> nn.Module:
        model = make_model(X.shape[1], hidden, seed=seed)
        generator = torch.Generator().manual_seed(seed)
        train_plain(model, X, y, epochs=epochs, batch_size=batch_size, lr=lr, generator=generator)
        return model

    return train
