"""DP cost: one local DP-SGD epoch ÷ one plain epoch, same model, data and batch size."""

from __future__ import annotations

import numpy as np
import torch

from privacy.budget import DPPlan
from privacy.dpsgd import train_dp
from tasks.features import FEATURE_NAMES, N_FEATURES
from tasks.model import make_model
from tasks.train import train_plain

from .common import Measurement, Settings, interleaved_ratio, summary

ROWS = 20_000  # about one large agency's training records in the default config
BATCH = 256  # configs/default.yaml federation.batch_size
LR = 0.003  # federation.learning_rate
CLIP = 5.0  # privacy.max_grad_norm
SIGMA = 1.0  # the cost does not depend on σ (one Gaussian draw per coordinate either way)
DEFAULT_HIDDEN = (64, 64)  # task.hidden
WIDE_HIDDEN = (256, 256)  # 4× wider


def peel_like_features(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A feature matrix with Peel's layout: one-hot crime type, then continuous columns."""
    rng = np.random.default_rng(seed)
    crime = [i for i, name in enumerate(FEATURE_NAMES) if name.startswith("crime_type:")]
    X = rng.normal(size=(rows, N_FEATURES)).astype(np.float32)
    X[:, crime] = 0.0
    X[np.arange(rows), rng.choice(crime, size=rows)] = 1.0
    y = (rng.random(rows) < 0.4).astype(np.float32)
    return X, y


def dp_epoch_cost(hidden: tuple[int, ...], settings: Settings, method: str = "auto") -> dict:
    rows = ROWS  # quick or not: an epoch is well under a second
    X, y = peel_like_features(rows)
    q = BATCH / rows
    plan = DPPlan(
        noise_multiplier=SIGMA,
        sample_rate=q,
        steps_per_round=max(1, round(1 / q)),  # one epoch of Poisson batches, as privacy.budget plans it
        rounds=1,
        max_grad_norm=CLIP,
        target_epsilon=1.0,  # unused here: σ is fixed
        delta=1e-5,
        accountant="rdp",
    )
    initial = make_model(N_FEATURES, hidden, seed=0).state_dict()

    def fresh() -> torch.nn.Module:
        model = make_model(N_FEATURES, hidden)
        model.load_state_dict(initial)
        return model

    def plain() -> None:
        train_plain(fresh(), X, y, epochs=1, batch_size=BATCH, lr=LR, generator=torch.Generator().manual_seed(0))

    def dp() -> None:
        train_dp(fresh(), X, y, plan=plan, lr=LR, generator=torch.Generator().manual_seed(1), method=method)

    plain(), dp()  # warm-up: first optimizer use, lazy imports
    ratios, dp_s, plain_s = interleaved_ratio(dp, plain, settings.repeats)
    return summary(
        ratios,
        dp_epoch_s=float(np.median(dp_s)),
        plain_epoch_s=float(np.median(plain_s)),
        rows=rows,
        hidden=list(hidden),
        batch=BATCH,
        method=method,
        clock="process CPU time",
    )


MEASUREMENTS = [
    Measurement(
        "dp_cost",
        "× plain",
        lambda s: dp_epoch_cost(DEFAULT_HIDDEN, s),
        limit=3.0,
        about="DP-SGD epoch ÷ plain epoch, [64, 64]",
    ),
    Measurement(
        "dp_cost_wide",
        "× plain",
        lambda s: dp_epoch_cost(WIDE_HIDDEN, s),
        about="DP-SGD epoch ÷ plain epoch, [256, 256]",
    ),
]

# Opacus' per-sample hooks on the same epochs: the "before" of book-keeping clipping (slow:
# ~25× plain on the wide model), run only with --opacus.
OPACUS_MEASUREMENTS = [
    Measurement(
        "dp_cost_opacus",
        "× plain",
        lambda s: dp_epoch_cost(DEFAULT_HIDDEN, s, method="opacus"),
        about="as dp_cost, Opacus hooks",
    ),
    Measurement(
        "dp_cost_wide_opacus",
        "× plain",
        lambda s: dp_epoch_cost(WIDE_HIDDEN, s, method="opacus"),
        about="as dp_cost_wide, Opacus hooks",
    ),
]
