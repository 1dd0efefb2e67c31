"""The release boundary: every field of every message an agency sends, declared once.

Each field is either
- `dp`: a differentially private release charged to the agency's own ledger before it leaves
  (with its mechanism and the unit it protects), or
- `public`: a fact the threat model declares public, with the reason.

What a field is depends on the agency's *regime* in that message: `dp` (record-level DP-SGD:
fedavg-dp, fedavg-dp-secagg) or `plain` (fedavg, fedavg-central-dp, the warm-up: no record-level
claim, the coordinator sees these fields as they are). The ClientApp calls `check` on every reply
before it leaves, so an undeclared field cannot be sent; the audit trail lists the fields each
message carried; `summary.json["releases"]` and docs/threat-model.md's release table are
generated from `RELEASES`.

The exact number of an agency's training records never leaves a DP agency: DP-SGD's (ε, δ) is
accounted for add/remove-one neighbours, under which that number differs between neighbours.
A DP agency releases it once as a Gaussian count (`n-released`, charged to its ledger); its
FedAvg weight, Poisson sampling rate, steps per round and the noise normalisation are all
computed from that released count, never from the exact one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Literal

from federation import architectures
from federation.architectures import Regime

Kind = Literal["dp", "public"]

TRAIN_REPLY = "train-reply"
EVALUATE_REPLY = "evaluate-reply"
QUERY_REPLY = "query-reply"
REFUSAL = "refusal"
SECAGG = "secagg-protocol"
ANALYTICS_REPLY = "analytics-reply"  # `peel analyze`: one histogram (clients/analytics.py)
MESSAGES = (TRAIN_REPLY, EVALUATE_REPLY, QUERY_REPLY, REFUSAL, SECAGG, ANALYTICS_REPLY)

# Names of the fields (metric keys on the wire; `arrays` is the model update).
ARRAYS = "arrays"
AGENCY = "agency"
NUM_EXAMPLES = "num-examples"
EPSILON_SPENT_TO_DATE = "epsilon-spent-to-date"
EPSILON_THIS_RUN = "epsilon-this-run"
EPSILON_BUDGET = "epsilon-budget"
DELTA = "delta"
SIGMA = "sigma"
SAMPLE_RATE = "sample-rate"
STEPS = "steps"
TRAIN_LOSS = "train-loss"
TRAIN_SECONDS = "train-seconds"
EVALUATED_LOCALLY = "evaluated-locally"
REASON = "reason"
MASKED_UPDATE = "masked-update"
PROTOCOL_KEYS = "protocol-keys-and-shares"
NOISY_COUNTS = "noisy-counts"
MASKED_COUNTS = "masked-counts"
EXACT_COUNTS = "exact-counts"
ANALYTICS_PUBLIC_KEY = "analytics-public-key"

# Test-set metrics an evaluate reply may carry (the names tasks.registry.score returns).
EVALUATION_METRICS = (
    "auc", "accuracy", "f1", "log_loss", "brier", "positive_rate",
    "hit_rate", "pai", "pei", "pei_hindsight", "pai_oracle", "pai_hindsight", "flagged_share",
)

# The coordinator's start-up evaluate message: the agency loads its data and sends nothing of it.
WARM_UP = "warm-up"
# Coordinator → agency, SecAgg+ only: the fit config key naming the model's state-dict keys
# (legacy parameters are a bare list of arrays). Instructions, not a release.
STATE_KEYS = "state-keys"


def regime(architecture: str) -> Regime:
    """The regime an agency's replies in `architecture` fall under: its registry entry's.
    Anything else — the warm-up, a query, an architecture this agency does not know — gets the
    strictest regime, `dp`."""
    entry = architectures.find(architecture)
    return entry.regime if entry is not None else "dp"

_DERIVED = "computed only from the agency's released DP count and its own privacy policy (post-processing of a DP release)"
_PLAIN = "no record-level DP in this architecture: the coordinator sees it as it is (the threat model's baseline)"
_MEMBERSHIP = "which agency answers: the federation's membership is public"
_COUNT = "Gaussian count (sensitivity 1), released once per data set and re-sent unchanged"


@dataclass(frozen=True)
class Release:
    """One field of one message in one regime."""

    message: str
    field: str
    regime: Regime
    kind: Kind
    why: str
    mechanism: str | None = None  # for kind "dp": what made it private
    unit: str | None = None  # for kind "dp": what one unit of protection is

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)


RECORD_UNIT = "one incident record (add/remove-one)"
# DP-SGD's releases and analytics histograms under an agency's policy unit (privacy/person_unit.py).
TRAINING_UNIT = f"{RECORD_UNIT}; with privacy.unit person, one person with the records attributed to them (add-remove-person)"


def _dp(message: str, field: str, mechanism: str, why: str, unit: str = RECORD_UNIT) -> Release:
    return Release(message, field, "dp", "dp", why, mechanism, unit)


def _public(message: str, field: str, regime: Regime, why: str) -> Release:
    return Release(message, field, regime, "public", why)


RELEASES: tuple[Release, ...] = (
    # --- a DP agency's training reply -----------------------------------------------------
    _dp(TRAIN_REPLY, ARRAYS, "DP-SGD: per-record clipping, Gaussian noise, Poisson sampling (subsampled Gaussian)", "the model update, charged to the agency's ledger before it leaves", TRAINING_UNIT),
    _dp(TRAIN_REPLY, NUM_EXAMPLES, _COUNT, "the FedAvg weight: the released count of training records (persons, under the person unit), not the exact one", TRAINING_UNIT),
    _public(TRAIN_REPLY, AGENCY, "dp", _MEMBERSHIP),
    _public(TRAIN_REPLY, EPSILON_SPENT_TO_DATE, "dp", "the ledger's cumulative ε: a function of the mechanisms' parameters (σ, q, steps), which are " + _DERIVED),
    _public(TRAIN_REPLY, EPSILON_THIS_RUN, "dp", "ε of this run's releases alone: a function of their parameters, " + _DERIVED),
    _public(TRAIN_REPLY, EPSILON_BUDGET, "dp", "the agency's declared budget (its policy)"),
    _public(TRAIN_REPLY, DELTA, "dp", "the δ the agency's ledger pinned (its policy)"),
    _public(TRAIN_REPLY, SIGMA, "dp", "the noise multiplier, calibrated from the budget, the ledger's earlier releases and the released count"),
    _public(TRAIN_REPLY, SAMPLE_RATE, "dp", "batch size ÷ released count: " + _DERIVED),
    _public(TRAIN_REPLY, STEPS, "dp", "local epochs × round(1 / sample rate): " + _DERIVED),
    # --- a DP agency's evaluation: the metrics stay with the agency ---------------------------
    _public(EVALUATE_REPLY, AGENCY, "dp", _MEMBERSHIP),
    _public(EVALUATE_REPLY, EVALUATED_LOCALLY, "dp", "a constant 1: the agency evaluated the model and kept the metrics in its own folder (nothing about its test records leaves)"),
    # --- query (SecAgg+ needs every weight bound before the first round) -----------------------
    _dp(QUERY_REPLY, NUM_EXAMPLES, _COUNT, "the same released count the training replies carry", TRAINING_UNIT),
    _public(QUERY_REPLY, AGENCY, "dp", _MEMBERSHIP),
    # --- refusals ------------------------------------------------------------------------------
    _public(REFUSAL, REASON, "dp", "why the agency sends no update: names only its policy, its ledger's totals and released figures, never an exact count of its records"),
    _public(REFUSAL, REASON, "plain", "why the agency sends no update (e.g. a simulated drop-out)"),
    # --- SecAgg+ (fedavg-dp-secagg) ------------------------------------------------------------
    _dp(SECAGG, MASKED_UPDATE, "the DP-SGD update above, weighted by the released count and masked (SecAgg+): the coordinator sees only the sum", "the same release as the training reply's arrays; masking adds protection, not ε", TRAINING_UNIT),
    _public(SECAGG, PROTOCOL_KEYS, "dp", "SecAgg+ public keys and secret shares: cryptographic material, independent of the records"),
    # --- analytics (`peel analyze`): one histogram per message -------------------------------------
    _dp(ANALYTICS_REPLY, NOISY_COUNTS, "discrete Gaussian N_Z(0, σ²), or with analytics.noise skellam Sk(μ) = Pois(μ) − Pois(μ), μ = σ²/2 (record unit only), per cell of a count or a fixed-point sum of a clamped column (sensitivity: 1 for a count, as a record falls in one cell; 100 fixed-point steps for a sum; under the person unit the L2 bound of the person caps), samplers from OS entropy (exact; Skellam: CDF inversion at 2^-128)", "local mode: the agency's own histogram, published with its own noise, charged to its ledger before it leaves", TRAINING_UNIT),
    _dp(ANALYTICS_REPLY, MASKED_COUNTS, "the agency's share N_Z(0, σ²/(n − t)) of the sum's discrete Gaussian (or Sk(μ/(n − t)) of its Skellam: n − t honest shares sum to exactly Sk(μ)) on its counts or fixed-point sums, pairwise-masked mod M (each masked vector alone is uniform mod M); charged as N_Z(0, σ²) (or Sk(μ)) at the histogram's sensitivity", "federated mode: the coordinator learns only the sum over agencies, which keeps σ with up to t agencies missing or colluding with it", TRAINING_UNIT),
    _public(ANALYTICS_REPLY, ANALYTICS_PUBLIC_KEY, "dp", "X25519 public key for the pairwise masks: cryptographic material, independent of the records"),
    _public(ANALYTICS_REPLY, AGENCY, "dp", _MEMBERSHIP),
    _public(ANALYTICS_REPLY, EPSILON_SPENT_TO_DATE, "dp", "the ledger's cumulative ε: a function of the mechanisms' parameters (σ from the configured ε share)"),
    _public(ANALYTICS_REPLY, EXACT_COUNTS, "plain", "federated-trusted mode: exact counts to a coordinator trusted to add N_Z(0, σ²) (or Sk(μ)) and forget them (charged to the agency's ledger for the noised release); the coordinator sees them as they are"),
    _public(ANALYTICS_REPLY, AGENCY, "plain", _MEMBERSHIP),
    # --- plain architectures -------------------------------------------------------------------
    _public(TRAIN_REPLY, ARRAYS, "plain", "the model update: " + _PLAIN),
    _public(TRAIN_REPLY, NUM_EXAMPLES, "plain", "exact number of training records (the FedAvg weight): " + _PLAIN),
    _public(TRAIN_REPLY, AGENCY, "plain", _MEMBERSHIP),
    _public(TRAIN_REPLY, TRAIN_LOSS, "plain", "mean training loss: " + _PLAIN),
    _public(TRAIN_REPLY, STEPS, "plain", "optimiser steps taken: " + _PLAIN),
    _public(TRAIN_REPLY, TRAIN_SECONDS, "plain", "training time: " + _PLAIN),
    _public(EVALUATE_REPLY, AGENCY, "plain", _MEMBERSHIP),
    _public(EVALUATE_REPLY, NUM_EXAMPLES, "plain", "exact number of test records (weights the mean metric): " + _PLAIN),
    *(_public(EVALUATE_REPLY, m, "plain", "a metric of the global model on the agency's test months: " + _PLAIN) for m in EVALUATION_METRICS),
)


class UndeclaredRelease(RuntimeError):
    """An agency was about to send a field the release boundary does not declare."""


def declared(message: str, regime: Regime) -> dict[str, Release]:
    """The fields `message` may carry in `regime`, by name."""
    return {r.field: r for r in RELEASES if r.message == message and r.regime == regime}


def check(message: str, regime: Regime, fields: Iterable[str]) -> list[str]:
    """The sorted field names if every one is declared for (message, regime); raises
    UndeclaredRelease naming the first that is not. Called on every reply before it leaves."""
    allowed = declared(message, regime)
    names = sorted(fields)
    extra = [f for f in names if f not in allowed]
    if extra:
        raise UndeclaredRelease(f"{message} ({regime}) would carry undeclared field(s) {extra}: declare them in federation/contract.py or do not send them")
    return names


def fields_of(metrics: Mapping[str, object], *, arrays: bool, agency: bool = True) -> list[str]:
    """Field names of a reply made of `metrics`, maybe an update, and the agency's name."""
    return [*metrics, *([ARRAYS] if arrays else []), *([AGENCY] if agency else [])]


def release_table() -> list[dict[str, str | None]]:
    """`summary.json["releases"]`: one entry per declared field (message, field, regime, kind,
    why, mechanism, unit)."""
    return [r.as_dict() for r in RELEASES]


def markdown_table() -> str:
    """The threat model's release table, generated from RELEASES (docs/threat-model.md holds
    a copy that a test keeps equal)."""
    lines = ["| message | field | regime | kind | why (and mechanism) |", "|---|---|---|---|---|"]
    for r in RELEASES:
        why = r.why if r.mechanism is None else f"{r.why}. Mechanism: {r.mechanism}; unit: {r.unit}"
        lines.append(f"| {r.message} | `{r.field}` | {r.regime} | {r.kind} | {why} |")
    return "\n".join(lines)
