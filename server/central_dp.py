"""`fedavg-central-dp`: agency-level (central) DP on the coordinator, built on Flower's
server-side clipping wrappers, accounted here.

The unit of privacy is one **agency** (all its records at once), not one record. Agencies train
plainly; the coordinator clips each agency's update delta to L2 norm C, averages the clipped
deltas with equal weights over the fixed number n of agencies, and adds Gaussian noise of std
σ·C/n (Flower's `DifferentialPrivacyServerSide{Fixed,Adaptive}Clipping`). Neighbouring
federations differ in one agency's whole contribution (it is absent, or its update is zero), so
each round is a Gaussian mechanism of L2 sensitivity C on the sum of clipped deltas; every agency
takes part in every round (sampling rate 1 over agencies: no amplification), so the agency-level
history is (σ, q=1, steps=rounds released). The guarantee covers what the coordinator *releases*
(the global models): the coordinator itself sees every agency's raw update, and every agency's
metrics, so it must be trusted.

Two details of Flower 1.42 that the guarantee depends on, handled here:
- FedAvg's mean weighted by record counts would give the largest agency a sensitivity of
  C·n_max/Σn_i, not C/n: the inner strategy averages with equal weights over the fixed n.
- The adaptive wrapper updates the clipping norm *before* it adds noise, so the noise would be
  scaled to next round's norm instead of the one the updates were clipped to: the wrapper below
  noises with the norm actually used.
- Its clipping divides by the update's norm (ZeroDivisionError for an agency whose update equals
  the global model) and its noise comes from numpy's global generator (reproducible by anyone
  who seeds it): clipping and noise are done here, the noise from an OS-entropy generator.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import (
    DifferentialPrivacyServerSideAdaptiveClipping,
    DifferentialPrivacyServerSideFixedClipping,
    Strategy,
)

from federation.spec import CentralDPSpec
from privacy.accounting import CalibrationError, calibrate_noise, epsilon, resolve_accountant
from server.recorder import RoundRecorder
from server.strategy import RecordingFedAvg

ARCHITECTURE = "fedavg-central-dp"

# Adaptive clipping spends part of the budget on the noisy clipped count. With
# clipped_count_stddev unset, it is chosen so that the update noise is this factor above the
# noise multiplier a fixed-clipping run would use (Andrew et al. suggest #clients/20, which with a
# handful of agencies cannot pay for itself).
UPDATE_NOISE_INFLATION = 1.1

ADJACENCY = (
    "one agency's whole contribution present vs absent (or its update zero), with the list of "
    "agencies and the number n that divides the sum public"
)


class CentralDPError(ValueError):
    """A `privacy.central` setting that cannot give a correct guarantee (one line)."""


@dataclass(frozen=True)
class CentralDPPlan:
    """Agency-level DP for a whole federated run, fixed before the first round."""

    target_epsilon: float
    delta: float
    rounds: int
    n_agencies: int
    accountant: str  # resolved ("auto" → what privacy.accounting picks)
    noise_multiplier: float  # effective σ of each round's release: what the accountant sees
    update_noise_multiplier: float  # σ of the noise on the sum of clipped updates (std σ·C)
    clipping_norm: float  # initial C (fixed clipping: the only C)
    adaptive: bool
    clipped_count_stddev: float | None  # std of the noise on the clipped count (adaptive only)
    target_quantile: float
    clip_learning_rate: float

    @property
    def release(self) -> tuple[float, float, int]:
        """One round as the accountant sees it: (σ, q, steps)."""
        return (self.noise_multiplier, 1.0, 1)


def effective_noise_multiplier(update_noise_multiplier: float, clipped_count_stddev: float) -> float:
    """σ of the one Gaussian mechanism equivalent to releasing, each round, the sum of clipped
    updates with noise std σ_Δ·C and the number of clipped updates with noise std σ_b:
    (σ_Δ⁻² + σ_b⁻²)^(-1/2). This is the composition Andrew et al. 2021 ("Differentially Private
    Learning with Adaptive Clipping", NeurIPS, Sec. 3) use, with the clipped count's sensitivity
    1 instead of their 1/2: Flower counts uncentred bits (b ∈ {0, 1}), and one agency's absence
    changes the count by up to 1 — hence σ_b here where the paper has 2σ_b."""
    return (update_noise_multiplier**-2 + clipped_count_stddev**-2) ** -0.5


def _quiet(fn, *args):
    # Opacus' accountants warn at q=1 (log(0) in PRV's domain set-up; RDP's largest order),
    # which is the no-sampling case they still compute correctly (checked against the exact
    # Gaussian formula in tests/test_server_central_dp.py).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args)


def plan_central(settings: CentralDPSpec, n_agencies: int, rounds: int) -> CentralDPPlan:
    """Calibrate σ so that `rounds` releases at q=1 spend at most the target ε at δ. The settings
    were validated with the config (experiments/config.py); raises CentralDPError (one line) for
    what only the plan can tell: a target the rounds cannot meet, a clipped-count noise too small."""
    target, delta, accountant = settings.epsilon, settings.delta, resolve_accountant(settings.accountant)
    clip = settings.clipping_norm
    if n_agencies < 1 or rounds < 1:
        raise CentralDPError(f"{ARCHITECTURE}: needs at least one agency and one round")
    try:
        sigma = _quiet(calibrate_noise, target, delta, 1.0, rounds, accountant)
    except CalibrationError as exc:
        raise CentralDPError(f"privacy.central.epsilon: {target:g} over {rounds} rounds cannot be met ({exc})") from None
    adaptive = settings.adaptive
    count_std: float | None = None
    update_sigma = sigma
    if adaptive:
        if settings.clipped_count_stddev is None:
            update_sigma = UPDATE_NOISE_INFLATION * sigma
            count_std = (sigma**-2 - update_sigma**-2) ** -0.5
        else:
            count_std = settings.clipped_count_stddev
            if not count_std > sigma:
                raise CentralDPError(
                    f"privacy.central.clipped_count_stddev: {count_std:g} must exceed the noise multiplier "
                    f"{sigma:.3f} that ε={target:g} needs over {rounds} rounds (the clipped count spends the same budget)"
                )
            update_sigma = (sigma**-2 - count_std**-2) ** -0.5
    return CentralDPPlan(
        target_epsilon=target,
        delta=delta,
        rounds=rounds,
        n_agencies=n_agencies,
        accountant=accountant,
        noise_multiplier=sigma,
        update_noise_multiplier=update_sigma,
        clipping_norm=clip,
        adaptive=adaptive,
        clipped_count_stddev=count_std,
        target_quantile=settings.target_quantile,
        clip_learning_rate=settings.clip_learning_rate,
    )


@dataclass
class AgencyLevelLedger:
    """The coordinator's agency-level spend: one (σ, 1, 1) release per aggregated round."""

    plan: CentralDPPlan
    releases: list[tuple[float, float, int]] = field(default_factory=list)
    rounds: list[dict] = field(default_factory=list)

    @property
    def epsilon(self) -> float:
        return float(_quiet(epsilon, self.releases, self.plan.delta, self.plan.accountant))

    def check_next(self) -> None:
        """Refuse a release the plan did not budget for (the accountant would exceed ε)."""
        if len(self.releases) >= self.plan.rounds:
            raise RuntimeError(
                f"{ARCHITECTURE}: agency-level budget ε={self.plan.target_epsilon:g} was planned for "
                f"{self.plan.rounds} rounds; refusing release {len(self.releases) + 1}"
            )

    def noise_std(self, clipping_norm: float) -> float:
        """Std of the noise on each entry of the averaged update: σ_Δ·C/n."""
        return self.plan.update_noise_multiplier * clipping_norm / self.plan.n_agencies

    def round_done(self, server_round: int, *, released: bool, clipping_norm: float, aggregated: int) -> float:
        if released:
            self.releases.append(self.plan.release)
        eps = self.epsilon
        self.rounds.append(
            {
                "round": server_round,
                "epsilon": eps,
                "released": released,
                "clipping_norm": clipping_norm,
                "noise_std_on_average": self.noise_std(clipping_norm) if released else None,
                "agencies_aggregated": aggregated,
            }
        )
        return eps

    def report(self, final_clipping_norm: float) -> dict:
        """What federated.jsonl records for this architecture (labelled agency-level).
        `clipping_norm` is the final one (adaptive: the norm a next round would use)."""
        plan = self.plan
        return {
            "privacy_unit": "agency",
            "epsilon": self.epsilon,
            "delta": plan.delta,
            "accountant": plan.accountant,
            "target_epsilon": plan.target_epsilon,
            "noise_multiplier": plan.noise_multiplier,
            "update_noise_multiplier": plan.update_noise_multiplier,
            "clipped_count_stddev": plan.clipped_count_stddev,
            "clipping_norm": final_clipping_norm,
            "clipping_norm_initial": plan.clipping_norm,
            "adaptive": plan.adaptive,
            "sample_rate": 1.0,
            "releases": len(self.releases),
            "n_agencies": plan.n_agencies,
            "noise_std_on_average": self.noise_std(self.rounds[-1]["clipping_norm"] if self.rounds else plan.clipping_norm),
            "adjacency": ADJACENCY,
            "per_round": self.rounds,
        }


class UniformMeanFedAvg(RecordingFedAvg):
    """The strategy inside the DP wrapper: current model + (sum of the agencies' clipped deltas)
    / n, with n the fixed number of agencies — the mean whose sensitivity to one agency is C/n,
    which is what the wrapper's noise σ·C/n is calibrated to. An agency that sends nothing adds
    nothing (its term is zero), and the divisor stays n."""

    epsilon_label = "agency-level ε"

    def __init__(self, recorder: RoundRecorder, n_agencies: int, num_rounds: int) -> None:
        super().__init__(recorder, n_agencies, num_rounds)
        self.n_agencies = n_agencies
        self._current: ArrayRecord | None = None

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        self._current = arrays
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        ok = [msg for msg in replies if not msg.has_error()]
        if not ok or self._current is None:
            return None, None
        current = self._current.to_numpy_ndarrays()
        total = [np.zeros_like(c, dtype=np.float64) for c in current]
        for msg in ok:
            for acc, new, cur in zip(total, msg.content[self.arrayrecord_key].to_numpy_ndarrays(), current, strict=True):
                acc += new.astype(np.float64) - cur
        mean = ArrayRecord(
            {key: Array(np.asarray(cur + acc / self.n_agencies, dtype=cur.dtype)) for key, cur, acc in zip(self._current.keys(), current, total, strict=True)}
        )
        metrics = self.train_metrics_aggr_fn([msg.content for msg in ok], self.weighted_by_key)
        return mean, metrics


def clip_delta(delta: list[np.ndarray], clipping_norm: float) -> tuple[list[np.ndarray], bool]:
    """`delta` scaled to L2 norm ≤ `clipping_norm` (float64), and whether it had to be scaled
    (Flower's norm bit). A zero delta — an update equal to the global model — is already within
    the norm: Flower 1.42's clip divides by the norm and raises ZeroDivisionError on it."""
    wide = [np.asarray(d, dtype=np.float64) for d in delta]
    norm = math.sqrt(sum(float(np.vdot(d, d)) for d in wide))
    if norm <= clipping_norm:
        return wide, False
    scale = clipping_norm / norm
    return [d * scale for d in wide], True


def noise_generator() -> np.random.Generator:
    """A generator seeded from OS entropy (SeedSequence() draws 128 bits from `secrets`):
    the noise must not be reproducible from the config's seed nor share numpy's global
    generator, which anything in the process may seed."""
    return np.random.default_rng(np.random.SeedSequence())


class _AgencyLevelAccounting:
    """Shared by both wrappers. Clipping and noise are done here rather than by Flower's
    wrappers (whose constructors, checks and clipping-norm update are kept): Flower divides by
    the update's norm (zero for an unchanged model) and draws from numpy's global generator.

    Every round's replies reach the recorder, and every aggregated round is one release. An
    agency that failed (dropped out, refused) or sent a non-finite update is left out of the
    round instead of cancelling it (Flower's wrappers skip any round with an error reply): its
    term of the fixed-n mean is zero, exactly the "absent agency" neighbour the sensitivity C/n
    is computed for, so the guarantee is unchanged."""

    strategy: UniformMeanFedAvg
    clipping_norm: float
    noise_multiplier: float
    num_sampled_clients: int
    current_arrays: ArrayRecord
    ledger: AgencyLevelLedger
    rng: np.random.Generator

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        self.ledger.check_next()
        return super().configure_train(server_round, arrays, config, grid)  # type: ignore[misc]

    def _clip_replies(self, replies: list[Message]) -> tuple[list[Message], int]:
        """Each reply with its delta clipped to the current norm (non-finite ones dropped), and
        how many had to be clipped."""
        current = self.current_arrays.to_numpy_ndarrays()
        kept, clipped_count = [], 0
        for reply in replies:
            finite = True
            for name, record in list(reply.content.array_records.items()):
                arrays = record.to_numpy_ndarrays()
                if not all(np.all(np.isfinite(a)) for a in arrays):
                    finite = False
                    break
                delta, clipped = clip_delta([np.subtract(a, c, dtype=np.float64) for a, c in zip(arrays, current, strict=True)], self.clipping_norm)
                clipped_count += int(clipped)
                reply.content[name] = ArrayRecord(
                    {k: Array(np.asarray(c + d, dtype=a.dtype)) for k, a, c, d in zip(record.keys(), arrays, current, delta, strict=True)}
                )
            if finite:
                kept.append(reply)
        return kept, clipped_count

    def _update_clipping_norm(self, clipped_count: int) -> None:
        """Fixed clipping: nothing. Adaptive: the geometric update from the noisy count."""

    def gaussian(self, shape: tuple[int, ...], std: float) -> np.ndarray:
        """Noise of std `std` from this strategy's own OS-seeded generator."""
        return self.rng.normal(0.0, std, shape)

    def _add_noise(self, aggregated: ArrayRecord, clipping_norm: float) -> ArrayRecord:
        std = self.noise_multiplier * clipping_norm / self.num_sampled_clients
        return ArrayRecord(
            {k: Array(np.asarray(a + self.gaussian(a.shape, std), dtype=a.dtype)) for k, a in zip(aggregated.keys(), aggregated.to_numpy_ndarrays(), strict=True)}
        )

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        self.strategy.note_train(replies)
        answered, clipped_count = self._clip_replies([m for m in replies if not m.has_error()])
        used = self.clipping_norm  # the norm this round's updates are clipped to
        arrays, metrics = (None, None)
        if answered:
            self._update_clipping_norm(clipped_count)
            arrays, metrics = self.strategy.aggregate_train(server_round, answered)
        released = arrays is not None
        if released:
            # Noise scaled to the norm the updates were clipped to, not to next round's
            # (Flower 1.42's adaptive wrapper would use the updated one; Andrew et al. 2021, Alg. 1).
            arrays = self._add_noise(arrays, used)
        eps = self.ledger.round_done(server_round, released=released, clipping_norm=used, aggregated=len(answered) if released else 0)
        self.strategy.note_epsilon(eps)
        return arrays, metrics

    def report(self) -> dict:
        return self.ledger.report(self.clipping_norm)

    def checkpoint_state(self) -> dict:
        """The agency-level spend and clipping norm so far: a resumed run continues both."""
        return {"releases": [list(r) for r in self.ledger.releases], "rounds": self.ledger.rounds, "clipping_norm": self.clipping_norm}

    def restore_checkpoint_state(self, state: dict) -> None:
        self.ledger.releases = [(float(s), float(q), int(n)) for s, q, n in state["releases"]]
        self.ledger.rounds = list(state["rounds"])
        self.clipping_norm = float(state["clipping_norm"])


class CentralFixedClipping(_AgencyLevelAccounting, DifferentialPrivacyServerSideFixedClipping):
    def __init__(self, strategy: UniformMeanFedAvg, plan: CentralDPPlan) -> None:
        super().__init__(strategy, plan.update_noise_multiplier, plan.clipping_norm, plan.n_agencies)
        self.ledger = AgencyLevelLedger(plan)
        self.rng = noise_generator()


class CentralAdaptiveClipping(_AgencyLevelAccounting, DifferentialPrivacyServerSideAdaptiveClipping):
    def __init__(self, strategy: UniformMeanFedAvg, plan: CentralDPPlan) -> None:
        assert plan.clipped_count_stddev is not None
        # Flower derives the update noise from the noise multiplier it is given with Andrew et
        # al.'s (σ⁻² − (2σ_b)⁻²)^(-1/2); hand it the σ for which that yields our σ_Δ.
        flower_sigma = (plan.update_noise_multiplier**-2 + (2 * plan.clipped_count_stddev) ** -2) ** -0.5
        super().__init__(
            strategy,
            flower_sigma,
            plan.n_agencies,
            initial_clipping_norm=plan.clipping_norm,
            target_clipped_quantile=plan.target_quantile,
            clip_norm_lr=plan.clip_learning_rate,
            clipped_count_stddev=plan.clipped_count_stddev,
        )
        if not math.isclose(self.noise_multiplier, plan.update_noise_multiplier, rel_tol=1e-9):
            raise RuntimeError(f"Flower's adaptive wrapper chose σ={self.noise_multiplier} instead of {plan.update_noise_multiplier}")
        self.ledger = AgencyLevelLedger(plan)
        self.rng = noise_generator()

    def _noisy_fraction(self, count: int, total: int) -> float:
        # The denominator is the public n, not the number of replies (see UniformMeanFedAvg).
        return float(count + self.gaussian((), self.clipped_count_stddev)) / float(self.num_sampled_clients)

    def _update_clipping_norm(self, clipped_count: int) -> None:
        self._geometric_update(self._noisy_fraction(clipped_count, self.num_sampled_clients))


def central_dp_strategy(recorder: RoundRecorder, settings: CentralDPSpec, n_agencies: int, rounds: int) -> Strategy:
    """The strategy of `fedavg-central-dp`: equal-weight FedAvg inside Flower's server-side
    clipping wrapper (fixed, or adaptive with `privacy.central.adaptive`), accounted per round.
    Its `report()` is what federated.jsonl records."""
    plan = plan_central(settings, n_agencies, rounds)
    inner = UniformMeanFedAvg(recorder, n_agencies, rounds)
    return CentralAdaptiveClipping(inner, plan) if plan.adaptive else CentralFixedClipping(inner, plan)
