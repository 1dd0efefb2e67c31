"""Integer noise for DP statistics, drawn from the operating system's CSPRNG (`secrets`).

`discrete_gaussian` is the exact sampler of Canonne, Kamath and Steinke ("The Discrete Gaussian
for Differential Privacy", NeurIPS 2020, Algorithms 1–3): rejection from a discrete Laplace,
every coin a Bernoulli of an exact rational (`fractions.Fraction`), so no floating-point rounding
shapes the distribution (the weakness of samplers built on `random`/`np.random` floats). Every
random bit comes from `secrets` (OS entropy): nobody can predict or replay the noise, and no
seed exists to leak.

Why integers: federated analytics sums the agencies' noisy counts under secure aggregation,
which works on integers modulo M; discrete noise keeps the sum exact (no rounding of shares).
"""

from __future__ import annotations

import math
import secrets
from fractions import Fraction

import numpy as np

__all__ = ["discrete_gaussian", "discrete_gaussian_variance", "discrete_laplace", "sample_discrete_gaussian"]

_ONE = Fraction(1)


def _bernoulli(p: Fraction) -> bool:
    """True with probability p ∈ [0, 1] exactly."""
    return secrets.randbelow(p.denominator) < p.numerator


def _bernoulli_exp(gamma: Fraction) -> bool:
    """True with probability exp(−γ), γ ≥ 0 (CKS Algorithm 1)."""
    while gamma > 1:  # exp(−γ) = exp(−1)^⌊γ⌋ · exp(−(γ − ⌊γ⌋))
        if not _bernoulli_exp_unit(_ONE):
            return False
        gamma -= 1
    return _bernoulli_exp_unit(gamma)


def _bernoulli_exp_unit(gamma: Fraction) -> bool:
    """True with probability exp(−γ), 0 ≤ γ ≤ 1: the first k with no success of Bernoulli(γ/k) is odd."""
    k = 1
    while _bernoulli(gamma / k):
        k += 1
    return k % 2 == 1


def discrete_laplace(scale_num: int, scale_den: int = 1) -> int:
    """One draw from the discrete Laplace with scale t/s (P[x] ∝ exp(−|x|·s/t)), t = `scale_num`,
    s = `scale_den` (CKS Algorithm 2)."""
    t, s = int(scale_num), int(scale_den)
    if t < 1 or s < 1:
        raise ValueError(f"discrete Laplace scale {t}/{s}: both must be whole numbers ≥ 1")
    while True:
        u = secrets.randbelow(t)
        if not _bernoulli_exp(Fraction(u, t)):
            continue
        v = 0
        while _bernoulli_exp(_ONE):
            v += 1
        y = (u + t * v) // s
        negative = secrets.randbelow(2) == 1
        if negative and y == 0:
            continue  # zero would otherwise be counted twice
        return -y if negative else y


def _sigma_squared(sigma: float | Fraction) -> Fraction:
    value = Fraction(sigma)
    if not value > 0 or (isinstance(sigma, float) and not math.isfinite(sigma)):
        raise ValueError(f"discrete Gaussian σ must be a finite number > 0, got {sigma!r}")
    return value * value


def discrete_gaussian(sigma: float | Fraction) -> int:
    """One draw from N_Z(0, σ²): P[x] ∝ exp(−x²/(2σ²)) over the integers (CKS Algorithm 3)."""
    sigma2 = _sigma_squared(sigma)
    t = math.floor(Fraction(sigma)) + 1  # the discrete Laplace's scale: ⌊σ⌋ + 1
    while True:
        y = discrete_laplace(t)
        gamma = (abs(y) - sigma2 / t) ** 2 / (2 * sigma2)
        if _bernoulli_exp(gamma):
            return y


def sample_discrete_gaussian(sigma: float, size: int) -> np.ndarray:
    """`size` independent draws from N_Z(0, σ²) as int64 (σ = 0: zeros, the test-only 'noise off')."""
    if size < 0:
        raise ValueError(f"cannot draw {size} samples")
    if sigma == 0:
        return np.zeros(size, dtype=np.int64)
    exact = Fraction(sigma)  # converted once: every draw shares the same rational σ
    return np.fromiter((discrete_gaussian(exact) for _ in range(size)), dtype=np.int64, count=size)


def discrete_gaussian_variance(sigma: float) -> float:
    """Var N_Z(0, σ²), summed over its support (slightly below σ² for small σ, equal to float
    precision for σ ≳ 1)."""
    if sigma == 0:
        return 0.0
    span = int(math.ceil(40 * sigma)) + 1
    x = np.arange(-span, span + 1, dtype=np.float64)
    weights = np.exp(-(x * x) / (2 * sigma * sigma))
    return float((weights * x * x).sum() / weights.sum())
