"""An agency's DP-SGD plan (σ calibrated to its own size) and the budget check that runs
before any update leaves it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from privacy.accounting import Release, calibrate_noise, epsilon


class ReleaseRefused(Exception):
    """The agency will not release an update (the message says why)."""


class BudgetExceeded(ReleaseRefused):
    """Releasing the next update would take the agency past its ε budget."""


@dataclass(frozen=True)
class DPPlan:
    """How one agency runs DP-SGD over a whole federated run.

    `noise_multiplier` is calibrated so that `rounds` releases of `steps_per_round` Poisson-sampled
    steps each spend at most `target_epsilon` at `delta` (cumulative, not per round).
    """

    noise_multiplier: float
    sample_rate: float
    steps_per_round: int
    rounds: int
    max_grad_norm: float
    target_epsilon: float
    delta: float
    accountant: str

    @property
    def release(self) -> Release:
        return (self.noise_multiplier, self.sample_rate, self.steps_per_round)

    def as_dict(self) -> dict:
        return asdict(self)


def plan_dp(
    n_train: int,
    *,
    batch_size: int,
    local_epochs: int,
    rounds: int,
    target_epsilon: float,
    delta: float,
    max_grad_norm: float,
    accountant: str,
) -> DPPlan:
    """Calibrate σ for an agency with `n_train` training records (agencies differ in size, so
    each gets its own σ for the same ε)."""
    if n_train <= 0:
        raise ReleaseRefused("no training records: nothing to train on")
    sample_rate = min(1.0, batch_size / n_train)
    # Poisson sampling: an "epoch" is 1/q expected batches.
    steps_per_round = local_epochs * max(1, round(1.0 / sample_rate))
    sigma = calibrate_noise(target_epsilon, delta, sample_rate, steps_per_round * rounds, accountant)
    return DPPlan(
        noise_multiplier=sigma,
        sample_rate=sample_rate,
        steps_per_round=steps_per_round,
        rounds=rounds,
        max_grad_norm=max_grad_norm,
        target_epsilon=target_epsilon,
        delta=delta,
        accountant=accountant,
    )


def epsilon_after(
    history: Sequence[Release], release: Release, *, budget: float, delta: float, accountant: str
) -> float:
    """ε the agency will have spent once `release` is added to `history`; raises BudgetExceeded
    (with the figures) if that is over `budget`. Call it before training, record the release
    before the update leaves."""
    eps = epsilon([*history, release], delta, accountant)
    if eps > budget or math.isnan(eps):
        spent = epsilon(history, delta, accountant)
        raise BudgetExceeded(
            f"privacy budget exhausted: ε spent {spent:.3f}, this update would bring it to "
            f"{eps:.3f}, budget {budget:g} at δ={delta:g}"
        )
    return eps
