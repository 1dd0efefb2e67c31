"""What (ε, δ)-DP allows an attacker, and the one-run audit's lower bound on ε.

Two directions, kept apart on purpose:

- `mia_bounds`: the most any membership-inference attack can reach against an (ε, δ)-DP
  mechanism (an upper bound on attack success, implied by the claim).
- `epsilon_lower_bound`: the ε an observed canary audit proves the mechanism does NOT satisfy
  (a lower bound on ε, implied by the observation) — Steinke, Nasr & Jagielski (2023),
  "Privacy auditing with one (1) training run" (arXiv:2305.08846): their main theorem with its
  (ε, δ) extension, computed as their Algorithm 2 does.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import binom


def max_tpr(fpr: float, epsilon: float, delta: float) -> float:
    """Largest true-positive rate any test can have at false-positive rate `fpr` against an
    (ε, δ)-DP mechanism: 1 − f(fpr) for the optimal trade-off function of (ε, δ)-DP
    (Kairouz, Oh & Viswanath 2015; Dong, Roth & Su 2019)

        f(α) = max{0, 1 − δ − e^ε·α, e^−ε·(1 − δ − α)},

    i.e. TPR ≤ e^ε·FPR + δ and, the symmetric condition, 1 − TPR ≥ e^−ε·(1 − δ − FPR).
    """
    _check_eps_delta(epsilon, delta)
    if not 0.0 <= fpr <= 1.0:
        raise ValueError(f"max_tpr: fpr must be in [0, 1], got {fpr}.")
    if math.isinf(epsilon):
        return 1.0
    return min(1.0, math.exp(epsilon) * fpr + delta, 1.0 - math.exp(-epsilon) * (1.0 - delta - fpr))


def max_auc(epsilon: float, delta: float) -> float:
    """Largest ROC AUC any membership-inference attack can reach against an (ε, δ)-DP mechanism:
    ∫₀¹ (1 − f(α)) dα with f as in `max_tpr`.

    The two lines of f cross at α* = (1 − δ)/(1 + e^ε) and f reaches 0 at α = 1 − δ, so
    ∫₀¹ f(α) dα = (1 − δ)²/(1 + e^ε) and the bound is  AUC ≤ 1 − (1 − δ)²/(1 + e^ε)
    (0.5 at ε = δ = 0; → 1 as ε → ∞).
    """
    _check_eps_delta(epsilon, delta)
    if math.isinf(epsilon):
        return 1.0
    return 1.0 - (1.0 - delta) ** 2 / (1.0 + math.exp(epsilon))


def mia_bounds(epsilon: float, delta: float, fpr: float = 0.01) -> dict[str, float]:
    """What an (ε, δ) claim allows a membership-inference attack, for reports beside the measured
    attack: `tpr_at_fpr_max` (at `fpr`, 1% by default), `auc_max`, and `advantage_max`
    (max TPR − FPR = (e^ε − 1 + 2δ)/(e^ε + 1), reached at α*).

    These hold for members and non-members that are exchangeable (a random split of the same
    records), which is why the audit's non-members come from the training months.
    """
    e = math.exp(epsilon) if not math.isinf(epsilon) else math.inf
    advantage = 1.0 if math.isinf(e) else min(1.0, (e - 1.0 + 2.0 * delta) / (e + 1.0))
    return {
        "epsilon": float(epsilon),
        "delta": float(delta),
        "fpr": float(fpr),
        "tpr_at_fpr_max": max_tpr(fpr, epsilon, delta),
        "auc_max": max_auc(epsilon, delta),
        "advantage_max": advantage,
    }


def one_run_p_value(k: int, r: int, correct: int, epsilon: float, delta: float) -> float:
    """Probability, if the mechanism is (ε, δ)-DP, of at least `correct` right guesses out of `r`
    guesses about `k` canaries each included independently with probability 1/2
    (Steinke, Nasr & Jagielski 2023, the (ε, δ) form of their main theorem, as in Algorithm 2):

        p = β + α·2k·δ,   β = P[Bin(r, q) ≥ v],   q = e^ε/(1 + e^ε),
        α = max_{1≤i≤v} P[v − i ≤ Bin(r, q) < v] / i,   v = correct.

    With δ = 0 this is the binomial tail of ε-DP randomised response: each guess is right with
    probability at most q, whatever the attack.
    """
    _check_counts(k, r, correct)
    _check_eps_delta(epsilon, delta)
    q = 1.0 if math.isinf(epsilon) else 1.0 / (1.0 + math.exp(-epsilon))
    v = correct
    beta = float(binom.sf(v - 1, r, q))  # P[Bin(r, q) ≥ v]
    if delta == 0.0 or v == 0:
        return min(beta, 1.0)
    i = np.arange(1, v + 1)
    below = np.cumsum(binom.pmf(v - i, r, q))  # P[v − i ≤ Bin(r, q) < v] for i = 1..v
    alpha = float(np.max(below / i))
    return min(beta + alpha * 2.0 * k * delta, 1.0)


def epsilon_lower_bound(k: int, r: int, correct: int, delta: float, confidence: float = 0.95) -> float:
    """The largest ε that `correct` right guesses out of `r` (about `k` canaries) refute at
    `confidence`: the mechanism is not (ε', δ)-DP for any ε' below the returned value, unless an
    event of probability ≤ 1 − confidence happened. 0 when nothing is refuted.

    As in the paper: bisection on ε for p-value(ε) ≤ 1 − confidence (the p-value rises with ε).
    The caller must fix r before seeing the scores, or pay for trying several (Bonferroni: pass
    `confidence = 1 − (1 − c)/n_tries`); `canary.canary_audit` does the latter.
    Closed form for δ = 0 and all r guesses right: ε = log(s^(1/r) / (1 − s^(1/r))), s = 1 − confidence.
    """
    _check_counts(k, r, correct)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"epsilon_lower_bound: confidence must be in (0, 1), got {confidence}.")
    if not 0.0 <= delta < 1.0:
        raise ValueError(f"epsilon_lower_bound: delta must be in [0, 1), got {delta}.")
    significance = 1.0 - confidence
    if r == 0 or one_run_p_value(k, r, correct, 0.0, delta) > significance:
        return 0.0
    lo, hi = 0.0, 1.0  # invariant: p(lo) ≤ significance < p(hi)
    while one_run_p_value(k, r, correct, hi, delta) <= significance:
        lo, hi = hi, 2.0 * hi
        if hi > 1e3:  # cannot happen: as ε → ∞, q → 1 and β → 1 > significance; guard anyway
            raise ArithmeticError(f"epsilon_lower_bound: no upper bracket for k={k}, r={r}, correct={correct}.")
    while hi - lo > 1e-8:  # bisection; the bound is reported far coarser than this
        mid = 0.5 * (lo + hi)
        if one_run_p_value(k, r, correct, mid, delta) <= significance:
            lo = mid
        else:
            hi = mid
    return lo


def epsilon_ceiling(k: int, r: int, epsilon: float, delta: float, confidence: float = 0.95) -> float:
    """The most this audit design (k canaries, r guesses, `confidence`) can be expected to show
    against a mechanism that is exactly ε-DP: `epsilon_lower_bound` of the expected number of
    right guesses, round(r·e^ε/(1 + e^ε)) — each guess right with the largest probability ε-DP
    allows. A bound far below ε next to a ceiling also far below it says the audit had no power
    to show ε, not that the mechanism is more private. ε = ∞: every guess right."""
    _check_counts(k, r, 0)
    _check_eps_delta(epsilon, delta)
    q = 1.0 if math.isinf(epsilon) else 1.0 / (1.0 + math.exp(-epsilon))
    return epsilon_lower_bound(k, r, int(round(r * q)), delta, confidence)


def _check_counts(k: int, r: int, correct: int) -> None:
    if not 0 <= correct <= r <= k:
        raise ValueError(f"one-run audit: need 0 ≤ correct ≤ guesses ≤ canaries, got {correct}, {r}, {k}.")


def _check_eps_delta(epsilon: float, delta: float) -> None:
    if not epsilon >= 0.0:
        raise ValueError(f"epsilon must be ≥ 0, got {epsilon}.")
    if not 0.0 <= delta <= 1.0:
        raise ValueError(f"delta must be in [0, 1], got {delta}.")
