"""A canary audit in one training run (Steinke, Nasr & Jagielski 2023, "Privacy auditing with one
(1) training run").

k canary records are made up; each is added to the agency's training rows independently with
probability ½ (a coin nobody else sees); the model is trained once, exactly as the agency trains
(same DP plan); then an attacker who sees only the final model scores every canary, guesses "in"
for the k₊ highest scores and "out" for the k₋ lowest, and abstains on the rest. If the training
is (ε, δ)-DP, each guess is right with probability at most about e^ε/(1 + e^ε), so many right
guesses refute small ε: `bounds.epsilon_lower_bound` turns the count into the largest ε refuted
at the chosen confidence.

Several (k₊, k₋) are tried and the best bound kept; every one is computed at confidence
1 − (1 − c)/n_tries (Bonferroni), so the reported bound holds at confidence c overall.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from privacy.accounting import epsilon as accountant_epsilon
from privacy.audit.bounds import epsilon_ceiling, epsilon_lower_bound
from privacy.audit.mia import margins
from privacy.audit.trainers import TrainFn
from privacy.budget import DPPlan

# Guess counts tried, as fractions f of k: each f gives (k₊, k₋) = (fk, 0), (0, fk) and (fk, fk).
# "Out" guesses alone matter: a model extrapolates to excluded canaries with large margins of
# random sign, which crowd the top scores, while included canaries rarely get the lowest ones.
GUESS_FRACTIONS: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2)


def make_canaries(k: int, n_features: int, seed: int, *, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """k canary records: feature vectors with i.i.d. N(0, scale²) entries and labels drawn 0/1 by
    fair coins, independent of everything else (float32, float32).

    Why they give the audit power:
    - the label is a coin flip independent of the features, so nothing the model learns from
      real records or from other canaries predicts it: a model that is confident about a
      canary's label has, in all likelihood, trained on that canary;
    - the vectors lie off the records' manifold (one-hot slots take non-binary, negative values,
      every feature is set at once), where real records barely shape the model, so a canary's
      own gradient is what moves the model at its point;
    - they point in random directions, so canaries interfere with each other as little as k
      random directions in n_features dimensions can.
    """
    if k < 1 or n_features < 1:
        raise ValueError(f"make_canaries: need k ≥ 1 and n_features ≥ 1, got {k}, {n_features}.")
    if not scale > 0:
        raise ValueError(f"make_canaries: scale must be positive, got {scale}.")
    rng = np.random.default_rng([seed, 0xCA7A])
    X = (scale * rng.standard_normal((k, n_features))).astype(np.float32)
    y = rng.integers(0, 2, size=k).astype(np.float32)
    return X, y


def guesses(scores: np.ndarray, k_plus: int, k_minus: int) -> np.ndarray:
    """+1 ("in") for the k_plus highest scores, −1 ("out") for the k_minus lowest, 0 (abstain)
    for the rest. Ties are broken by position, which carries no information about inclusion."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if k_plus < 0 or k_minus < 0 or k_plus + k_minus > len(scores):
        raise ValueError(f"guesses: need k_plus, k_minus ≥ 0 with k_plus + k_minus ≤ {len(scores)}, got {k_plus}, {k_minus}.")
    order = np.argsort(-scores, kind="stable")
    out = np.zeros(len(scores), dtype=np.int8)
    out[order[:k_plus]] = 1
    if k_minus:
        out[order[-k_minus:]] = -1
    return out


def guess_grid(k: int, fractions: Sequence[float] = GUESS_FRACTIONS) -> list[tuple[int, int]]:
    """The (k₊, k₋) pairs tried for k canaries, fixed before any score is seen."""
    grid: list[tuple[int, int]] = []
    for f in fractions:
        k_plus = max(1, int(round(f * k)))
        for pair in ((k_plus, 0), (0, k_plus), (k_plus, k_plus)):
            if sum(pair) <= k and pair not in grid:
                grid.append(pair)
    return grid


def claimed_epsilon(plan: DPPlan) -> float:
    """ε the accountant gives for the whole training an audit runs: plan.rounds releases of the
    plan's (σ, q, steps), at the plan's δ. An agency's earlier spend is not part of it: the audit's
    training run is the whole mechanism being audited."""
    return float(accountant_epsilon([plan.release] * plan.rounds, plan.delta, plan.accountant))


def canary_audit(
    X_train: np.ndarray,
    y_train: np.ndarray,
    plan: DPPlan | None,
    train_fn: TrainFn,
    k: int,
    seed: int,
    *,
    delta: float | None = None,
    confidence: float = 0.95,
    canaries: tuple[np.ndarray, np.ndarray] | None = None,
    guess_pairs: Sequence[tuple[int, int]] | None = None,
    epsilon_claimed: float | None = None,
) -> dict[str, Any]:
    """Run the one-run audit of `train_fn` with `plan` on (X_train, y_train) and return its result.

    `train_fn(X, y, plan)` must train a fresh model exactly as the audited architecture does
    (e.g. `trainers.dp_trainer`); it is called once, on the real rows plus the included canaries.
    Canaries are sampled at the plan's rate like every record, so the plan's (σ, q, steps) — and
    its ε — apply to each of them. With `plan=None` (no DP) give `delta`; the claim is then ∞.
    `canaries` overrides `make_canaries(k, n_features, seed)`; `guess_pairs` overrides
    `guess_grid(k)`; `epsilon_claimed` overrides `claimed_epsilon(plan)` (e.g. with what the
    agency's ledger charged for the releases `train_fn` repeats).

    Returns: `epsilon_lower_bound` (at `confidence`, after Bonferroni over the pairs tried),
    `ceiling` (the most this design could be expected to show at the claimed ε, see
    `audit_result`), `epsilon_claimed`, `delta`, `confidence`, `violation` (bound > claim),
    `k`, `k_included`, the best pair's `k_plus`, `k_minus`, `guesses`, `correct`,
    `tries` (one dict per pair), `seconds` (training and scoring).
    """
    X_train = np.asarray(X_train, dtype=np.float32)
    y_train = np.asarray(y_train, dtype=np.float32).reshape(-1)
    if X_train.ndim != 2 or len(X_train) != len(y_train):
        raise ValueError(f"canary_audit: need a 2-D feature matrix and one label per row, got {X_train.shape} and {y_train.shape}.")
    if plan is not None:
        if delta is not None and delta != plan.delta:
            raise ValueError(f"canary_audit: delta {delta:g} differs from the plan's {plan.delta:g}; the claim is at the plan's δ.")
        delta = plan.delta
    elif delta is None:
        raise ValueError("canary_audit: without a DP plan, give delta (the δ to audit at).")
    delta = float(delta)
    if canaries is None:
        canaries = make_canaries(k, X_train.shape[1], seed)
    X_can, y_can = np.asarray(canaries[0], np.float32), np.asarray(canaries[1], np.float32).reshape(-1)
    if X_can.shape != (k, X_train.shape[1]) or len(y_can) != k:
        raise ValueError(f"canary_audit: canaries must be {k} rows of {X_train.shape[1]} features, got {X_can.shape}.")
    pairs = list(guess_pairs) if guess_pairs is not None else guess_grid(k)

    # The inclusion coins: their own stream, never seen by the scoring below.
    included = np.random.default_rng([seed, 0x1C0]).random(k) < 0.5
    started = time.perf_counter()
    model = train_fn(np.concatenate([X_train, X_can[included]]), np.concatenate([y_train, y_can[included]]), plan)
    scores = margins(model, X_can, y_can)
    seconds = time.perf_counter() - started

    claimed = epsilon_claimed if epsilon_claimed is not None else (claimed_epsilon(plan) if plan is not None else math.inf)
    result = audit_result(scores, included, pairs, delta=delta, confidence=confidence, claimed=claimed, what="canary audit")
    result["seconds"] = seconds
    return result


def audit_result(
    scores: np.ndarray | Mapping[str, np.ndarray],
    included: np.ndarray,
    pairs: Sequence[tuple[int, int]],
    *,
    delta: float,
    confidence: float,
    claimed: float,
    what: str,
) -> dict[str, Any]:
    """The one-run bound from canary scores and the true inclusion coins, shared by the black-box
    and white-box audits: every (k₊, k₋) pair in `pairs` — for every named score when `scores`
    maps names to score arrays (all fixed before training) — at Bonferroni-corrected confidence,
    the best kept. Each try and the result carry a `ceiling` (`bounds.epsilon_ceiling` at the
    claimed ε, same k, guesses and confidence); the result's is the largest over the tries, the
    most any of them could be expected to show. Warns when the bound exceeds the claim."""
    named = dict(scores) if isinstance(scores, Mapping) else {"score": scores}
    named = {name: np.asarray(v, dtype=np.float64).reshape(-1) for name, v in named.items()}
    included = np.asarray(included, dtype=bool).reshape(-1)
    k = len(included)
    if any(len(v) != k for v in named.values()):
        raise ValueError(f"audit_result: {k} inclusion coins but scores of lengths {[len(v) for v in named.values()]}.")
    if not pairs:
        raise ValueError("audit_result: no (k_plus, k_minus) guess pairs to try.")
    truth = np.where(included, 1, -1)
    per_try_confidence = 1.0 - (1.0 - confidence) / (len(pairs) * len(named))
    tries: list[dict[str, Any]] = []
    for name, values in named.items():
        for k_plus, k_minus in pairs:
            g = guesses(values, k_plus, k_minus)
            r, correct = int(np.count_nonzero(g)), int(np.sum(g == truth))
            tries.append(
                {
                    **({"score": name} if len(named) > 1 else {}),
                    "k_plus": k_plus,
                    "k_minus": k_minus,
                    "guesses": r,
                    "correct": correct,
                    "epsilon_lower_bound": epsilon_lower_bound(k, r, correct, delta, per_try_confidence),
                    "ceiling": epsilon_ceiling(k, r, claimed, delta, per_try_confidence),
                }
            )
    best = max(tries, key=lambda t: t["epsilon_lower_bound"])
    result = {
        "epsilon_lower_bound": best["epsilon_lower_bound"],
        "ceiling": max(t["ceiling"] for t in tries),
        "epsilon_claimed": claimed,
        "delta": delta,
        "confidence": confidence,
        "violation": best["epsilon_lower_bound"] > claimed,
        "k": k,
        "k_included": int(included.sum()),
        "k_plus": best["k_plus"],
        "k_minus": best["k_minus"],
        "guesses": best["guesses"],
        "correct": best["correct"],
        "tries": tries,
    }
    if "score" in best:
        result["score"] = best["score"]
    if result["violation"]:
        warnings.warn(
            f"{what}: empirical ε lower bound {best['epsilon_lower_bound']:.3f} exceeds the claimed "
            f"ε {claimed:.3f} at δ={delta:g} — the DP implementation or its accounting is wrong, or a "
            f"{1 - confidence:.0%}-probability event happened.",
            RuntimeWarning,
            stacklevel=3,
        )
    return result
