"""Integer noise for DP statistics, drawn from the operating system's CSPRNG (`secrets`).

`discrete_gaussian` is the exact sampler of Canonne, Kamath and Steinke ("The Discrete Gaussian
for Differential Privacy", NeurIPS 2020, Algorithms 1–3): rejection from a discrete Laplace,
every coin a Bernoulli of an exact rational (`fractions.Fraction`), so no floating-point rounding
shapes the distribution (the weakness of samplers built on `random`/`np.random` floats). Every
random bit comes from `secrets` (OS entropy): nobody can predict or replay the noise, and no
seed exists to leak.

`skellam` draws the symmetric Skellam Sk(μ) = Pois(μ) − Pois(μ) (variance 2μ; Agarwal, Kairouz
and Liu, "The Skellam Mechanism for Differentially Private Federated Learning", NeurIPS 2021):
a sum of independent Skellams is exactly a Skellam, so federated shares need no slack. Each
Poisson draw inverts its CDF against a 128-bit uniform integer from `secrets`: the CDF is
computed once per μ with mpmath at 60 significant digits (the first point with the regularised
incomplete gamma, the rest by exact recurrence) over [μ − W, μ + W], W wide enough that each tail
outside it has mass < 2^-120 (checked when the table is built), and stored as integer thresholds
⌊F(k)·2^128⌋. Residual error, stated not accounted: a threshold is within 2^-128 of the true
CDF, so each probability is off by < 2^-127 and a draw is within total variation
(2W + 2)·2^-127 + 2·2^-120 of Pois(μ) — below 10^-30 for any μ ≤ 10^8; a histogram's release of
C cells by n agencies is then within 2nC·10^-30 of the exact Skellam release, which adds at most
(1 + e^ε) times that to δ (far below the PLD's own float rounding).

Why integers: federated analytics sums the agencies' noisy counts under secure aggregation,
which works on integers modulo M; discrete noise keeps the sum exact (no rounding of shares).
"""

from __future__ import annotations

import bisect
import math
import secrets
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np

__all__ = ["discrete_gaussian", "discrete_gaussian_variance", "discrete_laplace", "poisson_table", "sample_discrete_gaussian", "sample_skellam", "skellam_mu"]

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


# --- Skellam: Pois(μ) − Pois(μ) by CDF inversion (module docstring: the residual error) -----
_UNIFORM_BITS = 128
_TAIL_BITS = 120  # each tail left outside a Poisson table has mass < 2^-120
_DIGITS = 60  # mpmath significant digits of the CDF (≈ 199 bits)


def skellam_mu(sigma: float) -> float:
    """The Skellam parameter μ whose noise Sk(μ) has standard deviation σ: μ = σ²/2."""
    return sigma * sigma / 2


@dataclass(frozen=True)
class PoissonTable:
    """Pois(μ) by inversion: a draw is `first` + the number of thresholds ≤ a 128-bit uniform."""

    first: int
    thresholds: tuple[int, ...]  # ⌊F(k)·2^128⌋ for k = first, …, last − 1 (a draw is at most `last`)
    tail_mass: float  # mass of Pois(μ) outside [first, first + len(thresholds)] (both tails)

    def draw(self, uniform: int) -> int:
        return self.first + bisect.bisect_right(self.thresholds, uniform)


@lru_cache(maxsize=64)
def poisson_table(mu: float) -> PoissonTable:
    """The inversion table of Pois(μ), μ > 0 (cached: one per share parameter in a run)."""
    import mpmath  # type: ignore[import-untyped]  # no stubs

    if not (mu > 0 and math.isfinite(mu)):
        raise ValueError(f"a Poisson mean must be a finite number > 0, got {mu!r}")
    with mpmath.workdps(_DIGITS):
        m = mpmath.mpf(mu)  # exactly the float μ
        # Bernstein: P(|N − μ| ≥ W) ≤ 2·exp(−W²/(2(μ + W/3))); W from W² = 2·90·(μ + W/3), then checked exactly.
        width = 30 + math.sqrt(900 + 180 * mu) + 10
        first, last = max(0, math.floor(mu - width)), math.ceil(mu + width)
        below = mpmath.gammainc(first, m, mpmath.inf, regularized=True) if first > 0 else mpmath.mpf(0)  # P(N < first)
        cdf = mpmath.gammainc(first + 1, m, mpmath.inf, regularized=True)  # P(N ≤ first)
        pmf = mpmath.exp(-m + first * mpmath.log(m) - mpmath.loggamma(first + 1)) if first > 0 else mpmath.exp(-m)
        scale = mpmath.mpf(2) ** _UNIFORM_BITS
        thresholds = []
        for k in range(first, last):
            thresholds.append(int(mpmath.floor(cdf * scale)))
            pmf = pmf * m / (k + 1)
            cdf = cdf + pmf
        above = 1 - cdf  # P(N > last): folded into `last`, as P(N < first) is into `first`
        limit = mpmath.mpf(2) ** -_TAIL_BITS
        if below > limit or above > limit:
            raise ValueError(f"Poisson table of μ={mu!r}: a tail outside [{first}, {last}] has mass above 2^-{_TAIL_BITS}")
        return PoissonTable(first, tuple(thresholds), float(max(below, 0) + max(above, 0)))


def _uniforms(size: int) -> list[int]:
    """`size` independent uniform integers in [0, 2^128), from the OS CSPRNG."""
    width = _UNIFORM_BITS // 8
    raw = secrets.token_bytes(width * size)
    return [int.from_bytes(raw[i * width:(i + 1) * width], "big") for i in range(size)]


def sample_skellam(mu: float, size: int) -> np.ndarray:
    """`size` independent draws from Sk(μ) = Pois(μ) − Pois(μ) as int64 (μ = 0: zeros, the
    test-only 'noise off')."""
    if size < 0:
        raise ValueError(f"cannot draw {size} samples")
    if mu == 0:
        return np.zeros(size, dtype=np.int64)
    table = poisson_table(float(mu))
    u = _uniforms(2 * size)
    return np.fromiter((table.draw(u[2 * i]) - table.draw(u[2 * i + 1]) for i in range(size)), dtype=np.int64, count=size)
