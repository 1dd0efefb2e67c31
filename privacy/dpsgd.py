"""DP-SGD for one agency's local training: Opacus per-sample clipping and Gaussian noise, with
Poisson sampling done here by index masks (a DataLoader over small tensors costs more than
the training step; see the facts note).

The sampling and the noise draw from `generator`, which the caller seeds from OS entropy: the
privacy guarantee assumes nobody can predict which records were sampled or which noise was
added. Opacus' `secure_mode` (a CSPRNG) needs torchcsprng, which is not installable here.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer

from privacy.budget import DPPlan
from tasks.train import loss_fn, make_optimizer

# Opacus' hooks on a model whose inputs need no gradient make torch warn on every backward
# pass; the per-sample gradients are correct (tests/test_privacy_dpsgd.py checks them).
warnings.filterwarnings("ignore", message="Full backward hook is firing")


def train_dp(
    model: torch.nn.Module,
    X: np.ndarray,
    y: np.ndarray,
    *,
    plan: DPPlan,
    lr: float,
    generator: torch.Generator,
) -> dict[str, float]:
    """Run `plan.steps_per_round` DP-SGD steps on `model` in place. Every step samples each record
    independently with probability `plan.sample_rate` (what the accountant assumes); an empty
    batch still takes a noise-only step, as the analysis requires."""
    X_t = torch.as_tensor(X, dtype=torch.float32)
    y_t = torch.as_tensor(y, dtype=torch.float32)
    n = len(X_t)
    expected_batch = max(1, int(round(plan.sample_rate * n)))
    dp_model = GradSampleModule(model)
    optimizer = DPOptimizer(
        make_optimizer(dp_model.parameters(), lr),
        noise_multiplier=plan.noise_multiplier,
        max_grad_norm=plan.max_grad_norm,
        expected_batch_size=expected_batch,
        generator=generator,
    )
    criterion = loss_fn()
    losses: list[float] = []
    batch_sizes: list[int] = []
    dp_model.train()
    for _ in range(plan.steps_per_round):
        mask = torch.rand(n, generator=generator) < plan.sample_rate
        xb, yb = X_t[mask], y_t[mask]
        optimizer.zero_grad(set_to_none=True)
        logits = dp_model(xb)
        loss = criterion(logits, yb)
        loss.backward()
        optimizer.step()
        batch_sizes.append(len(xb))
        if len(xb):
            losses.append(float(loss.detach()))
    # Hooks stay on the wrapper; the plain module keeps the trained weights.
    dp_model.to_standard_module()
    return {
        "loss": float(np.mean(losses)) if losses else math.nan,
        "steps": plan.steps_per_round,
        "mean_batch": float(np.mean(batch_sizes)) if batch_sizes else 0.0,
    }
