"""An agency's DP-SGD plan (σ calibrated to its own size and to what it has already spent) and
the budget check that runs before any update leaves it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from privacy.accounting import ADD_REMOVE, MAX_SIGMA, CalibrationError, Entry, Release, calibrate_noise, epsilon, resolve_accountant

# A release is refused when its ε exceeds the budget by more than this fraction. Calibration
# aims at ε ≤ budget with the same accountant, but a recomputation need not repeat the last bits
# (e.g. a history merged differently, FFT rounding): a plan calibrated right up to its budget must
# not be refused for float noise. 1e-6 relative is three orders below the accountants' own
# discretisation error and means nothing as privacy; the ε reported is the one computed.
BUDGET_SLACK = 1e-6


class ReleaseRefused(Exception):
    """The agency will not release an update (the message says why)."""


class BudgetExceeded(ReleaseRefused):
    """Releasing the next update would take the agency past its ε budget."""


@dataclass(frozen=True)
class DPPlan:
    """How one agency runs DP-SGD over the rest of its budget.

    `noise_multiplier` is calibrated so that the agency's prior releases followed by `rounds`
    releases of `steps_per_round` Poisson-sampled steps each spend at most `target_epsilon` at
    `delta` (cumulative over everything the agency ever released since its last ledger reset).
    """

    noise_multiplier: float
    sample_rate: float
    steps_per_round: int
    rounds: int
    max_grad_norm: float
    target_epsilon: float
    delta: float
    accountant: str
    prior_epsilon: float = 0.0  # ε already spent when the plan was made
    prior_releases: int = 0
    # The record count the plan was made for: a DP agency's released (noised) count, never its
    # exact one, which add/remove-one neighbours do not share. The noise is normalised by
    # sample_rate × n_public (0: plans made before this field, normalised by the exact count).
    n_public: int = 0
    # The neighbouring relation the plan was calibrated for (replace-one: a fixed, public example set).
    neighbouring: str = ADD_REMOVE

    @property
    def release(self) -> Release:
        return (self.noise_multiplier, self.sample_rate, self.steps_per_round)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def within_budget(eps: float, budget: float) -> bool:
    """True if ε is within `budget` (up to BUDGET_SLACK); NaN never is."""
    return eps <= budget * (1 + BUDGET_SLACK)


def plan_dp(
    n_train: int,
    *,
    batch_size: int,
    local_epochs: int,
    rounds: int,
    target_epsilon: float,
    delta: float,
    max_grad_norm: float,
    accountant: str = "auto",
    prior: Sequence[Entry] = (),
    neighbouring: str = ADD_REMOVE,
) -> DPPlan:
    """Calibrate σ for an agency with `n_train` training records that has already released
    `prior` (from its ledger) and plans `rounds` more releases, so that everything together
    stays within `target_epsilon` (agencies differ in size, so each gets its own σ).

    Raises BudgetExceeded if `prior` alone meets the budget, or if what is left would need
    σ > MAX_SIGMA; ReleaseRefused if there is nothing to train on.
    """
    if n_train <= 0:
        raise ReleaseRefused("no training records: nothing to train on")
    if rounds < 1:
        raise ValueError(f"rounds must be ≥ 1, got {rounds}")
    name = resolve_accountant(accountant)
    sample_rate = min(1.0, batch_size / n_train)
    # Poisson sampling: an "epoch" is 1/q expected batches.
    steps_per_round = local_epochs * max(1, round(1.0 / sample_rate))
    prior = list(prior)
    spent = epsilon(prior, delta, name, neighbouring)
    if not spent < target_epsilon:
        raise BudgetExceeded(
            f"privacy budget exhausted: ε spent {spent:.4g} already meets the budget "
            f"{target_epsilon:g} at δ={delta:g} ({len(prior)} earlier releases, {name} accountant)"
        )
    try:
        sigma = calibrate_noise(
            target_epsilon, delta, sample_rate, steps_per_round, name, prior=prior, releases=rounds, neighbouring=neighbouring
        )
    except CalibrationError:
        raise BudgetExceeded(
            f"privacy budget nearly exhausted: ε spent {spent:.4g} of {target_epsilon:g} at "
            f"δ={delta:g}; {rounds} more round(s) of {steps_per_round} steps at q={sample_rate:.4g} "
            f"would need noise σ > {MAX_SIGMA:g}"
        ) from None
    return DPPlan(
        noise_multiplier=sigma,
        sample_rate=sample_rate,
        steps_per_round=steps_per_round,
        rounds=rounds,
        max_grad_norm=max_grad_norm,
        target_epsilon=target_epsilon,
        delta=delta,
        accountant=name,
        prior_epsilon=spent,
        prior_releases=len(prior),
        n_public=int(n_train),
        neighbouring=neighbouring,
    )


def epsilon_after(
    history: Sequence[Entry], release: Entry, *, budget: float, delta: float, accountant: str, neighbouring: str = ADD_REMOVE
) -> float:
    """ε the agency will have spent once `release` is added to `history`; raises BudgetExceeded
    (with the figures) if that is over `budget` (beyond BUDGET_SLACK). Call it before training,
    record the release before the update leaves."""
    eps = epsilon([*history, release], delta, accountant, neighbouring)
    if not within_budget(eps, budget):
        spent = epsilon(history, delta, accountant, neighbouring)
        raise BudgetExceeded(
            f"privacy budget exhausted: ε spent {spent:.4g}, this update would bring it to "
            f"{eps:.4g}, budget {budget:g} at δ={delta:g}"
        )
    return eps
