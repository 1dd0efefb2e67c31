"""A white-box canary audit in one training run: gradient canaries inside DP-SGD's clipped sum
(Steinke, Nasr & Jagielski 2023, their white-box setting; the canary gradients of Nasr et al.
2021, "Adversary instantiation").

Where the black-box audit (`canary`) plants records and looks only at the final model, this one
plays the strongest observer the mechanism's guarantee covers: one who sees the privatised
gradient of every step (a coordinator that sees every update sees less, and the final model less
still). k canary *gradients* — random unit directions u_i times a raw norm far above the
clipping norm C — are each included with probability ½ (coins nobody else sees). An included
canary is a record whose gradient is that fixed vector: in every step it is Poisson-sampled at
the plan's rate like every record, clipped at the mechanism's C, and added to the clipped sum
before the noise is added (`privacy.dpsgd.train_dp(..., step_hook=...)`). Each canary's score is
Σ_steps ⟨observed noisy gradient, u_i⟩; high scores are guessed "in", low ones "out", and the
right guesses give `bounds.epsilon_lower_bound`, as in the black-box audit.

Why it can fail: with the noise σ·C every step, a canary's per-step signal C (when sampled) is
buried as the accountant says; without noise it stands out; without clipping it arrives at its
raw norm. Either bug lifts the bound above the claimed ε (tests/test_audit_broken_mechanisms.py).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from privacy.audit.canary import audit_result, guess_grid
from privacy.budget import DPPlan
from privacy.dpsgd import train_dp
from privacy.fastclip import CLIP_EPS

# A canary's raw norm, in units of the claimed clipping norm: far above C, so that only clipping
# brings it down to C; a mechanism that does not clip lets it through a thousand times stronger.
RAW_NORM_FACTOR = 1000.0


def canary_directions(k: int, dim: int, seed: int) -> np.ndarray:
    """k random unit vectors in `dim` dimensions (rows): orthonormal when k ≤ dim (a random
    orthonormal frame, so one canary's gradient adds nothing to another's score), else
    independent uniform directions (overlaps of about 1/√dim)."""
    u = np.random.default_rng([seed, 0x6AD]).standard_normal((dim, k) if k <= dim else (k, dim))
    if k <= dim:
        q, r = np.linalg.qr(u)
        return (q * np.sign(np.diag(r))).T  # sign fix: uniformly distributed frame
    return np.asarray(u / np.linalg.norm(u, axis=1, keepdims=True))


class GradientCanaries:
    """k gradient canaries for one DP-SGD run, used as `train_dp`'s `step_hook`.

    Called once per step with the step's gradient buffer (clipped sum + noise, divided by the
    expected batch size): samples each included canary with the step's sampling rate, adds the
    sampled ones clipped at the mechanism's C, then reads every canary's dot product with the
    buffer, x, in units of one canary clipped at the *claimed* C (`unit`): x ≈ 1 in a step that
    sampled it, plus noise of std σ and the real records' projection. Two scores per canary,
    both fixed before training: `scores` = Σ_steps x (what the Gaussian noise hides), and
    `above_half` = the number of steps with x > ½ (robust to the real gradients' projection,
    which drifts slowly and so piles up in the sum; it is what exposes a noiseless mechanism).
    """

    def __init__(self, k: int, dim: int, seed: int, *, raw_norm: float, unit: float) -> None:
        if k < 1 or dim < 1:
            raise ValueError(f"GradientCanaries: need k ≥ 1 and dim ≥ 1, got {k}, {dim}.")
        if not (raw_norm > 0 and math.isfinite(raw_norm)):
            raise ValueError(f"GradientCanaries: raw_norm must be a positive number, got {raw_norm}.")
        self.directions = torch.as_tensor(canary_directions(k, dim, seed), dtype=torch.float32)
        # The inclusion coins: the same stream as the black-box audit's, never read by scoring.
        self.included = np.random.default_rng([seed, 0x1C0]).random(k) < 0.5
        self._in = torch.as_tensor(np.flatnonzero(self.included), dtype=torch.long)
        self.raw_norm = float(raw_norm)
        self.k, self.dim = k, dim
        if not (unit > 0 and math.isfinite(unit)):
            raise ValueError(f"GradientCanaries: unit (the claimed clipping norm) must be a positive number, got {unit}.")
        self.unit = float(unit)
        self.scores = np.zeros(k, dtype=np.float64)
        self.above_half = np.zeros(k, dtype=np.float64)
        self.steps = 0
        self.samples = 0  # canary-steps in which an included canary was sampled (for the record)

    def __call__(self, flat: torch.Tensor, max_grad_norm: float, divisor: float, sample_rate: float, generator: torch.Generator) -> None:
        if flat.numel() != self.dim:
            raise ValueError(f"GradientCanaries: made for {self.dim} parameters, the model has {flat.numel()}.")
        sampled = self._in[torch.rand(len(self._in), generator=generator) < sample_rate]
        if len(sampled):
            # Clipped as DP-SGD clips a record (fastclip's factor, same eps), then divided by the
            # expected batch size like the rest of the buffer.
            clip = min(1.0, max_grad_norm / (self.raw_norm + CLIP_EPS))
            weights = torch.zeros(self.k, dtype=torch.float32)
            weights[sampled] = clip * self.raw_norm / divisor
            flat.addmv_(self.directions.t(), weights)
            self.samples += len(sampled)
        # In units of one clipped canary (claimed C over the expected batch size): 1 when sampled.
        x = (self.directions @ flat).double().numpy() * (divisor / self.unit)
        self.scores += x
        self.above_half += x > 0.5
        self.steps += 1


def whitebox_audit(
    X_train: np.ndarray,
    y_train: np.ndarray,
    plan: DPPlan,
    *,
    initial_model: Callable[[], nn.Module],
    lr: float,
    rounds: int,
    k: int,
    seed: int,
    epsilon_claimed: float,
    noise_seed: int | None = None,
    raw_norm: float | None = None,
    confidence: float = 0.95,
    guess_pairs: Sequence[tuple[int, int]] | None = None,
    mechanism: DPPlan | None = None,
) -> dict[str, Any]:
    """Train `initial_model()` with `privacy.dpsgd.train_dp` for `rounds` rounds of `plan` — the
    agency's own function, plan and learning rate — on (X_train, y_train) with k gradient
    canaries in its clipped sums, and return the one-run bound (same fields as
    `canary.canary_audit`, with `ceiling`, plus `raw_norm`, `steps`, `canary_samples`).

    `epsilon_claimed` is what the accountant charged for those releases. `raw_norm` defaults to
    RAW_NORM_FACTOR × the plan's C. `mechanism` (tests only) trains with another plan than the
    claimed one — a deliberately broken mechanism; the canaries and the claim stay the plan's.
    The generator for sampling and noise is seeded from OS entropy unless `noise_seed` is given.
    """
    if rounds < 1:
        raise ValueError(f"whitebox_audit: rounds must be ≥ 1, got {rounds}.")
    model = initial_model()
    dim = sum(p.numel() for p in model.parameters())
    canaries = GradientCanaries(k, dim, seed, raw_norm=raw_norm if raw_norm is not None else RAW_NORM_FACTOR * plan.max_grad_norm, unit=plan.max_grad_norm)
    run = mechanism if mechanism is not None else plan
    seed_bits = noise_seed if noise_seed is not None else int.from_bytes(os.urandom(8), "little") >> 1
    generator = torch.Generator().manual_seed(seed_bits)
    started = time.perf_counter()
    for _ in range(rounds):
        train_dp(model, X_train, y_train, plan=run, lr=lr, generator=generator, method="bookkeeping", step_hook=canaries)
    seconds = time.perf_counter() - started
    pairs = list(guess_pairs) if guess_pairs is not None else guess_grid(k)
    scores = {"sum": canaries.scores, "steps_above_half": canaries.above_half}
    result = audit_result(scores, canaries.included, pairs, delta=plan.delta, confidence=confidence, claimed=epsilon_claimed, what="white-box canary audit")
    result.update({"raw_norm": canaries.raw_norm, "steps": canaries.steps, "canary_samples": canaries.samples, "seconds": seconds})
    return result
