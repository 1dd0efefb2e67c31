"""DP-SGD for one agency's local training: per-sample clipping to C, Gaussian noise of std σ·C,
normalised by the expected batch size, over Poisson-sampled batches drawn here (a DataLoader over
small tensors costs more than the training step; see the facts note).

Two implementations of the same mechanism: book-keeping clipping (``privacy.fastclip``; for the
MLPs of ``tasks.model``; an epoch costs 1.1-1.4x a plain one here) and Opacus' per-sample hooks
(any model Opacus supports; 8x plain at 64-64, 40x at 256-256). ``method="auto"`` takes the
first when it applies; both give the same updates (tests/test_privacy_fastclip.py).

The sampling and the noise draw from `generator`, which the caller seeds from OS entropy: the
privacy guarantee assumes nobody can predict which records were sampled or which noise was
added. Opacus' `secure_mode` (a CSPRNG) needs torchcsprng, which is not installable here.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from itertools import pairwise

import numpy as np
import torch
from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer

from privacy import fastclip
from privacy.budget import DPPlan
from tasks.train import as_tensors, loss_fn, make_optimizer

# Opacus' hooks on a model whose inputs need no gradient make torch warn on every backward
# pass; the per-sample gradients are correct (tests/test_privacy_dpsgd.py checks them).
warnings.filterwarnings("ignore", message="Full backward hook is firing")

METHODS = ("auto", "bookkeeping", "opacus")

# An audit's look inside each step (privacy.audit.whitebox): called with the step's gradient
# buffer — the clipped sum plus noise, divided by the expected batch size — before the optimizer
# reads it; it may add gradient canaries (clipped at C like any record) and observe the result.
# Arguments: (buffer, max_grad_norm, expected batch size, sample rate, generator).
StepHook = Callable[[torch.Tensor, float, float, float, torch.Generator], None]


def expected_batch_size(n: int, sample_rate: float) -> int:
    """q·n, the divisor of the summed noisy gradient (Opacus' ``expected_batch_size``): fixed, not
    the realised batch size, which would depend on the sample and leak it."""
    return max(1, int(round(sample_rate * n)))


def poisson_batches(n: int, sample_rate: float, steps: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """`steps` Poisson samples of range(n), as sorted index tensors: every index in every step
    independently with probability `sample_rate`, the sampling the accountant assumes."""
    for rows, bounds in poisson_blocks(n, sample_rate, steps, generator):
        for j in range(len(bounds) - 1):
            yield rows[bounds[j] : bounds[j + 1]]


def poisson_blocks(n: int, sample_rate: float, steps: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, list[int]]]:
    """The samples of `poisson_batches` a block of steps at a time: (rows, bounds), step j of the
    block being ``rows[bounds[j]:bounds[j + 1]]``. Lets the caller gather a block's records in one
    call, then take each batch as a view, as plain training does with its epoch permutation.

    The steps × n Bernoulli(q) trials are laid end to end and drawn as the gaps between
    successes, which are i.i.d. Geometric(q): the same distribution as ``torch.rand(n) < q`` per
    step, at O(q·n) cost instead of O(n) per step (which made an epoch O(n²/batch) on large
    agencies), and a few draws per block of steps instead of several per step.
    """
    if sample_rate >= 1.0 or sample_rate <= 0.0 or n == 0:
        every = torch.arange(n) if sample_rate >= 1.0 else torch.empty(0, dtype=torch.long)
        for _ in range(steps):
            yield every, [0, len(every)]
        return
    block = int(min(max(1, steps), max(1.0, _BLOCK_SAMPLES / (sample_rate * n)), max(1, 2**52 // n)))
    for first in range(0, steps, block):
        k = min(block, steps - first)
        positions = _bernoulli_successes(k * n, sample_rate, generator)
        bounds = torch.searchsorted(positions, torch.arange(k + 1, dtype=torch.long) * n).tolist()
        yield positions.remainder_(n), bounds  # position j·n + i is record i in step j of the block


_BLOCK_SAMPLES = 1 << 16  # expected sampled records per block (their features: a few MB)


def _bernoulli_successes(trials: int, p: float, generator: torch.Generator, chunk: int | None = None) -> torch.Tensor:
    """Sorted 0-based positions of the successes among `trials` Bernoulli(p) trials, 0 < p < 1,
    drawing gaps `chunk` at a time (default: almost always one draw). float64 keeps positions
    exact up to 2^53."""
    if chunk is None:
        expected = p * trials
        chunk = int(expected + 6.0 * math.sqrt(expected) + 16)
    parts: list[torch.Tensor] = []
    last = 0.0  # 1-based position of the last success drawn so far
    while last <= trials:
        part = torch.empty(chunk, dtype=torch.float64).geometric_(p, generator=generator).cumsum_(0).add_(last)
        parts.append(part)
        last = float(part[-1])
    positions = torch.cat(parts) if len(parts) > 1 else parts[0]
    return positions[positions <= trials].long().sub_(1)


def train_dp(
    model: torch.nn.Module,
    X: np.ndarray,
    y: np.ndarray,
    *,
    plan: DPPlan,
    lr: float,
    generator: torch.Generator,
    method: str = "auto",
    step_hook: StepHook | None = None,
) -> dict[str, float]:
    """Run `plan.steps_per_round` DP-SGD steps on `model` in place. Every step samples each record
    independently with probability `plan.sample_rate` (what the accountant assumes); an empty
    batch still takes a noise-only step, as the analysis requires. `method`: "bookkeeping",
    "opacus", or "auto" (book-keeping when `fastclip.supports(model)`). `step_hook`: audits
    only (white-box canaries, see StepHook); needs the book-keeping path; None changes nothing."""
    use_bookkeeping = _use_bookkeeping(model, method)
    if step_hook is not None and not use_bookkeeping:
        raise ValueError("train_dp: step_hook needs the book-keeping path (a tasks.model.MLP), not Opacus.")
    X_t, y_t = as_tensors(X, y)
    n = len(X_t)
    # q × the count the plan was made for (public), not × the exact n: the divisor scales the
    # released update, so it must not depend on the exact number of records.
    divisor = expected_batch_size(plan.n_public or n, plan.sample_rate)
    losses: list[float] = []
    batch_sizes: list[int] = []
    step: _BookkeepingStep | _OpacusStep
    if use_bookkeeping:
        step = _BookkeepingStep(model, plan, lr, divisor, generator, step_hook)
    else:
        step = _OpacusStep(model, plan, lr, divisor, generator)
    try:
        for rows, bounds in poisson_blocks(n, plan.sample_rate, plan.steps_per_round, generator):
            X_block, y_block = X_t.index_select(0, rows), y_t.index_select(0, rows)
            for start, end in pairwise(bounds):
                loss = step(X_block[start:end], y_block[start:end])
                batch_sizes.append(end - start)
                if end > start:
                    losses.append(loss)
    finally:
        step.close()
    return {
        "loss": float(np.mean(losses)) if losses else math.nan,
        "steps": plan.steps_per_round,
        "mean_batch": float(np.mean(batch_sizes)) if batch_sizes else 0.0,
    }


def _use_bookkeeping(model: torch.nn.Module, method: str) -> bool:
    if method not in METHODS:
        raise ValueError(f"train_dp: method '{method}' is not one of {', '.join(METHODS)}.")
    if method == "opacus":
        return False
    supported = fastclip.supports(model)
    if method == "bookkeeping" and not supported:
        raise ValueError(
            f"train_dp: method 'bookkeeping' needs a tasks.model.MLP of Linear layers and ReLU/Tanh/Sigmoid; "
            f"got {type(model).__name__}: use method='opacus' or 'auto'."
        )
    return supported


class _BookkeepingStep:
    """One DP-SGD step by book-keeping clipping, then the optimizer's step."""

    def __init__(self, model: torch.nn.Module, plan: DPPlan, lr: float, divisor: int, generator: torch.Generator, hook: StepHook | None = None) -> None:
        model.train()
        self.hook, self.sample_rate = hook, plan.sample_rate
        self.clipper = fastclip.BookkeepingClipper(
            model, max_grad_norm=plan.max_grad_norm, noise_multiplier=plan.noise_multiplier, expected_batch_size=divisor
        )
        self.optimizer = make_optimizer(model.parameters(), lr)
        self.generator = generator

    def __call__(self, xb: torch.Tensor, yb: torch.Tensor) -> float:
        loss = self.clipper.compute(xb, yb, self.generator)
        if self.hook is not None:
            c = self.clipper
            self.hook(c.flat, c.max_grad_norm, c.expected_batch_size, self.sample_rate, self.generator)
        self.optimizer.step()
        return float(loss)

    def close(self) -> None:
        self.clipper.release()


class _OpacusStep:
    """One DP-SGD step by Opacus' per-sample gradient hooks and DPOptimizer."""

    def __init__(self, model: torch.nn.Module, plan: DPPlan, lr: float, divisor: int, generator: torch.Generator) -> None:
        self.dp_model = GradSampleModule(model)
        self.optimizer = DPOptimizer(
            make_optimizer(self.dp_model.parameters(), lr),
            noise_multiplier=plan.noise_multiplier,
            max_grad_norm=plan.max_grad_norm,
            expected_batch_size=divisor,
            generator=generator,
        )
        self.criterion = loss_fn()
        self.dp_model.train()

    def __call__(self, xb: torch.Tensor, yb: torch.Tensor) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.criterion(self.dp_model(xb), yb)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def close(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        # Hooks stay on the wrapper; the plain module keeps the trained weights.
        self.dp_model.to_standard_module()
