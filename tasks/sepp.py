"""A self-exciting point process (SEPP / ETAS, after Mohler et al., JASA 2011 and 2015) on an
agency's incident counts per area and month, fitted by expectation-maximisation.

police.uk publishes months, not dates, and snaps locations to anonymous map points, so the
process is fitted on counts n[a, t] of area a (a cell: LSOA or grid square) in month t. Their
expected value is

    lambda[a, t] = mu[a] + theta * sum_{tau=1..L} f(tau) * sum_b g_b(a) * n[b, t - tau]

- ``mu[a]``: the area's background, a constant per area (incidents per month);
- ``theta``: the branching ratio, the expected number of incidents one incident triggers;
- ``f(tau)`` = (1 - e^-omega) e^(-omega (tau - 1)) / (1 - e^(-omega L)), tau = 1..L: the
  exponential decay in time, discrete in whole months (police.uk's resolution; nothing within a
  month can be told apart), truncated at ``max_lag`` = L months;
- ``g_b(a)`` ∝ exp(-d_ab^2 / (2 sigma^2)) over the ``neighbours`` areas nearest to b (b itself
  included, d = 0), normalised to sum to 1 over them: a Gaussian in space, at the resolution of
  area centroids, so an incident's offspring land in its own area or a near one.

**Caps** (so a fit takes seconds): an incident can trigger only in the ``SEPP_MAX_LAG`` = 6
months after it and only in its ``SEPP_NEIGHBOURS`` = 25 nearest areas, i.e. at most
areas × 25 × 6 (source, target, lag) triples per fitted month — 640 × 25 × 6 ≈ 10^5 for the
largest agency of the default data, 2980 × 25 × 6 ≈ 4.5 × 10^5 for its 250 m grid — whatever the
number of incidents, because incidents of one area-month share their triggering. EM (accelerated
by SQUAREM) stops after ``SEPP_ITERATIONS`` = 200 iterations or when the log-likelihood gains
less than 1e-7 relatively. Measured on configs/hotspot.yaml's data: every LSOA fit under 2 s;
the largest grid fit 8 s.

EM (Veen & Schoenberg 2008 for the branching view): the E-step splits each area-month's count
between its background and every (source area, lag) in proportion to their intensities; the
M-step sets mu[a] to the area's expected background incidents per month, and (theta, omega)
and sigma by maximising the expected complete-data log-likelihood (one-dimensional searches
with theta profiled out). Offspring that would fall after the last fitted month are not seen,
so theta's compensator counts only the lags inside the fit window (edge correction).

**Forecast.** ``forecast`` gives lambda[a, t] for every month t from the counts of the months
before it (the background alone for the first month): next month's expected incidents per area.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.sparse import csr_matrix

SEPP_MAX_LAG = 6  # months an incident can trigger others
SEPP_NEIGHBOURS = 25  # nearest areas (itself included) its offspring can land in
SEPP_ITERATIONS = 200
SEPP_TOLERANCE = 1e-7  # relative log-likelihood gain below which EM stops
OMEGA_BOUNDS = (0.01, 10.0)  # per month: a mean lag of ~100 months down to 1
SIGMA_BOUNDS_M = (10.0, 50_000.0)
_TINY = 1e-300


@dataclass(frozen=True)
class SeppFit:
    """Fitted parameters and how the fit went."""

    background: np.ndarray  # float (areas,), incidents per month
    theta: float  # branching ratio
    omega: float  # time decay per month
    sigma_m: float  # spatial spread, metres
    max_lag: int
    neighbours: int
    log_likelihood: float  # Poisson log-likelihood of the fitted months, up to the log n! terms
    iterations: int
    converged: bool

    @property
    def mean_lag_months(self) -> float:
        """Mean delay of a triggered incident, months (of the truncated decay)."""
        return float(np.arange(1, self.max_lag + 1) @ time_kernel(self.omega, self.max_lag))


def time_kernel(omega: float, max_lag: int) -> np.ndarray:
    """f(1..max_lag): the truncated discrete exponential decay, summing to 1."""
    lags = np.arange(max_lag, dtype=np.float64)
    weights = np.exp(-omega * lags)
    out: np.ndarray = weights / weights.sum()
    return out


@dataclass(frozen=True)
class _Pairs:
    """Each source area's ``neighbours`` nearest targets (itself first): flat (source, target)."""

    source: np.ndarray  # int (pairs,)
    target: np.ndarray  # int (pairs,)
    distance: np.ndarray  # float (pairs,), metres
    n_areas: int

    def kernel(self, sigma_m: float) -> np.ndarray:
        """g_source(target) per pair, summing to 1 over each source's targets."""
        out: np.ndarray = np.exp(self.log_kernel(sigma_m))
        return out

    def log_kernel(self, sigma_m: float) -> np.ndarray:
        """log g_source(target) per pair. Every source is its own first target (distance 0,
        weight 1), so the normaliser is at least 1; weights below e^-100 count as 0 in it (they
        are far below anything that matters, and tiny subnormal floats make numpy crawl)."""
        logits = -0.5 * (self.distance / sigma_m) ** 2
        weights = np.where(logits > -100.0, np.exp(np.maximum(logits, -100.0)), 0.0)
        out: np.ndarray = np.maximum(logits - np.log(np.bincount(self.source, weights, self.n_areas))[self.source], -100.0)
        return out

    def spread(self, kernel: np.ndarray, values: np.ndarray) -> np.ndarray:
        """(areas, columns): sum over sources b of kernel[b -> a] * values[b, column]."""
        matrix = csr_matrix((kernel, (self.target, self.source)), shape=(self.n_areas, self.n_areas))
        out: np.ndarray = np.asarray(matrix @ values, dtype=np.float64)
        return out


def nearest_pairs(distances: np.ndarray, neighbours: int = SEPP_NEIGHBOURS) -> _Pairs:
    """The (source, target) pairs of ``distances`` (areas, areas), metres: each area's
    ``neighbours`` nearest areas, itself included (ties: the lower index)."""
    distances = np.asarray(distances, dtype=np.float64)
    n = distances.shape[0]
    if distances.shape != (n, n) or n == 0 or not np.isfinite(distances).all() or (distances < 0).any():
        raise ValueError(f"SEPP: distances must be a square matrix of finite non-negative metres (got shape {distances.shape}).")
    k = max(1, min(int(neighbours), n))
    own = distances.copy()
    own[np.arange(n), np.arange(n)] = -1.0  # itself first, whatever the other distances
    order = np.argsort(own, axis=1, kind="stable")[:, :k]
    source = np.repeat(np.arange(n), k)
    target = order.ravel()
    return _Pairs(source, target, distances[source, target], n)


def lagged_sum(counts: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """(areas, months): sum_{tau=1..L} kernel[tau - 1] * counts[:, t - tau] (0 before month 0)."""
    out = np.zeros(counts.shape, dtype=np.float64)
    for tau, weight in enumerate(kernel, start=1):
        if tau < counts.shape[1]:
            out[:, tau:] += weight * counts[:, :-tau]
    return out


def fit_sepp(
    counts: np.ndarray,
    distances: np.ndarray,
    *,
    max_lag: int = SEPP_MAX_LAG,
    neighbours: int = SEPP_NEIGHBOURS,
    iterations: int = SEPP_ITERATIONS,
    tolerance: float = SEPP_TOLERANCE,
) -> SeppFit:
    """Fit the process to ``counts`` (areas, months) of whole incidents, with ``distances``
    (areas, areas) in metres between the areas' centroids, by EM."""
    n = np.asarray(counts, dtype=np.float64)
    if n.ndim != 2 or n.shape[1] < 2 or not np.isfinite(n).all() or (n < 0).any():
        raise ValueError(f"SEPP: counts must be (areas, months >= 2) of non-negative numbers (got shape {n.shape}).")
    if max_lag < 1 or neighbours < 1 or iterations < 1:
        raise ValueError("SEPP: max_lag, neighbours and iterations must be at least 1.")
    pairs = nearest_pairs(distances, neighbours)
    if pairs.n_areas != n.shape[0]:
        raise ValueError(f"SEPP: {n.shape[0]} areas of counts but {pairs.n_areas} of distances.")
    n_areas = n.shape[0]
    if n.sum() == 0:
        return SeppFit(np.zeros(n_areas), 0.0, 1.0, 500.0, max_lag, pairs.target.size // n_areas, 0.0, 0, True)
    problem = _Problem(n, pairs, max_lag)
    positive = pairs.distance[pairs.distance > 0]
    x = problem.pack(np.maximum(n.mean(axis=1), 1e-6) * 0.5, 0.2, 1.0, float(np.median(positive)) if positive.size else 500.0)
    # SQUAREM (Varadhan & Roland 2008, scheme S3) around the EM map, on log parameters: plain EM
    # on Hawkes processes takes hundreds of iterations; an extrapolated step that lowers the
    # likelihood is dropped for the plain EM step, so the likelihood never decreases.
    log_likelihood, converged, done = problem.log_likelihood(x), False, 0
    while done < iterations:
        done += 1
        x1 = problem.em_step(x)
        x2 = problem.em_step(x1)
        r, v = x1 - x, x2 - 2 * x1 + x
        alpha = -min(float(np.linalg.norm(r) / max(float(np.linalg.norm(v)), _TINY)), 1e3)
        candidate = x2
        if alpha < -1:
            step = problem.em_step(np.clip(x - 2 * alpha * r + alpha**2 * v, *_LOG_BOUNDS))
            if problem.log_likelihood(step) >= problem.log_likelihood(x2):
                candidate = step
        new = problem.log_likelihood(candidate)
        gain = new - log_likelihood
        x, log_likelihood = candidate, max(new, log_likelihood)
        if abs(gain) <= tolerance * max(abs(log_likelihood), 1.0):
            converged = True
            break
    mu, theta, omega, sigma = problem.unpack(x)
    return SeppFit(mu, theta, omega, sigma, max_lag, pairs.target.size // n_areas, problem.log_likelihood(x), done, converged)


_LOG_BOUNDS = (np.log(1e-12), np.log(1e6))


class _Problem:
    """The counts of a fit and what EM needs of them; parameters travel as one vector of logs
    (log mu per area, log theta, log omega, log sigma) so that extrapolation keeps them positive."""

    def __init__(self, n: np.ndarray, pairs: _Pairs, max_lag: int) -> None:
        self.n, self.pairs, self.max_lag = n, pairs, max_lag
        n_areas, n_months = n.shape
        # shifted[:, tau - 1, t] = n[:, t - tau]: each lag's source counts, (areas, L, months).
        self.shifted = np.stack([lagged_sum(n, np.eye(max_lag)[tau]) for tau in range(max_lag)], axis=1)
        # Incidents of month s are seen triggering up to month T - 1: lags 1..min(L, T - 1 - s).
        horizon = np.minimum(n_months - 1 - np.arange(n_months), max_lag)
        self.by_horizon = np.bincount(horizon, n.sum(axis=0), max_lag + 1)
        self._by_lag: tuple[float, np.ndarray] | None = None

    def pack(self, mu: np.ndarray, theta: float, omega: float, sigma_m: float) -> np.ndarray:
        values = np.concatenate([mu, [theta, omega, sigma_m]])
        return np.asarray(np.log(np.clip(values, np.exp(_LOG_BOUNDS[0]), np.exp(_LOG_BOUNDS[1]))))

    def unpack(self, x: np.ndarray) -> tuple[np.ndarray, float, float, float]:
        values = np.exp(x)
        omega = float(np.clip(values[-2], *OMEGA_BOUNDS))
        sigma = float(np.clip(values[-1], *SIGMA_BOUNDS_M))
        return values[:-3], float(values[-3]), omega, sigma

    def exposure(self, omega: float) -> float:
        """Expected offspring per unit theta inside the window: sum_s n_s F(horizon_s)."""
        cumulative = np.concatenate([[0.0], np.cumsum(time_kernel(omega, self.max_lag))])
        return float(np.dot(self.by_horizon, cumulative))

    def by_lag(self, sigma_m: float) -> np.ndarray:
        """(areas, L, months): sum_b g_b(a) n[b, t - tau] for each lag (the last sigma's kept:
        an EM step and the likelihood of the same parameters ask for it twice)."""
        if self._by_lag is None or self._by_lag[0] != sigma_m:
            n_areas, n_months = self.n.shape
            flat = self.pairs.spread(self.pairs.kernel(sigma_m), self.shifted.reshape(n_areas, -1))
            self._by_lag = (sigma_m, flat.reshape(n_areas, self.max_lag, n_months))
        return self._by_lag[1]

    def intensity(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """lambda (areas, months) and the by-lag spread counts it came from."""
        mu, theta, omega, sigma = self.unpack(x)
        by_lag = self.by_lag(sigma)
        return mu[:, None] + theta * np.einsum("l,alt->at", time_kernel(omega, self.max_lag), by_lag), by_lag

    def log_likelihood(self, x: np.ndarray) -> float:
        mu, theta, omega, _ = self.unpack(x)
        lam, _ = self.intensity(x)
        return float((self.n * np.log(np.maximum(lam, _TINY))).sum() - self.n.shape[1] * mu.sum() - theta * self.exposure(omega))

    def em_step(self, x: np.ndarray) -> np.ndarray:
        mu, theta, omega, sigma = self.unpack(x)
        f = time_kernel(omega, self.max_lag)
        lam, by_lag = self.intensity(x)
        # E-step: r = n / lambda shares each area-month's count out by intensity.
        r = np.where(self.n > 0, self.n / np.maximum(lam, _TINY), 0.0)
        background = mu * r.sum(axis=1)
        per_lag = theta * f * np.einsum("at,alt->l", r, by_lag)
        # Expected triggered incidents per (source, target) pair, for sigma.
        lagged = np.einsum("l,alt->at", f, self.shifted)  # sum_tau f(tau) n[b, t - tau]
        per_pair = theta * self.pairs.kernel(sigma) * (r[self.pairs.target] * lagged[self.pairs.source]).sum(axis=1)
        # M-step.
        new_omega = _maximise(partial(_time_objective, per_lag=per_lag, exposure=self.exposure, max_lag=self.max_lag), OMEGA_BOUNDS)
        new_theta = float(per_lag.sum() / max(self.exposure(new_omega), _TINY))
        new_sigma = _maximise(partial(_space_objective, per_pair=per_pair, pairs=self.pairs), SIGMA_BOUNDS_M)
        return self.pack(background / self.n.shape[1], new_theta, new_omega, new_sigma)


def forecast(fit: SeppFit, counts: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """(areas, months): lambda[a, t] of ``fit`` from the counts of the months before each t."""
    n = np.asarray(counts, dtype=np.float64)
    if n.ndim != 2 or n.shape[0] != len(fit.background):
        raise ValueError(f"SEPP: counts of shape {n.shape} for a fit of {len(fit.background)} areas.")
    pairs = nearest_pairs(distances, fit.neighbours)
    triggered = pairs.spread(pairs.kernel(fit.sigma_m), lagged_sum(n, time_kernel(fit.omega, fit.max_lag)))
    out: np.ndarray = fit.background[:, None] + fit.theta * triggered
    return out


def simulate_sepp(
    background: np.ndarray,
    theta: float,
    omega: float,
    sigma_m: float,
    distances: np.ndarray,
    months: int,
    rng: np.random.Generator,
    *,
    max_lag: int = SEPP_MAX_LAG,
    neighbours: int = SEPP_NEIGHBOURS,
) -> np.ndarray:
    """Counts (areas, months) drawn from the process month by month (Poisson given the past):
    for tests that a fit recovers known parameters."""
    pairs = nearest_pairs(distances, neighbours)
    g = pairs.kernel(sigma_m)
    f = time_kernel(omega, max_lag)
    n = np.zeros((len(background), months), dtype=np.float64)
    for t in range(months):
        past = sum((f[tau - 1] * n[:, t - tau : t - tau + 1] for tau in range(1, min(max_lag, t) + 1)), np.zeros((len(background), 1)))
        n[:, t] = rng.poisson(background + theta * pairs.spread(g, past)[:, 0])
    return n.astype(np.int64)


def _time_objective(omega: float, per_lag: np.ndarray, exposure: Callable[[float], float], max_lag: int) -> float:
    """Expected complete-data log-likelihood of the triggered part at ``omega``, with theta at
    its optimum for that omega (profiled out)."""
    triggered = float(per_lag.sum())
    if triggered <= 0:
        return 0.0
    theta = triggered / max(exposure(omega), _TINY)
    f = time_kernel(omega, max_lag)
    return float(triggered * np.log(theta) + np.dot(per_lag, np.log(np.maximum(f, _TINY))) - triggered)


def _space_objective(sigma_m: float, per_pair: np.ndarray, pairs: _Pairs) -> float:
    """Expected complete-data log-likelihood of where triggered incidents landed."""
    # An elementwise product and sum, not a BLAS dot: on a loaded machine the threaded BLAS call
    # took milliseconds (its threads wait for cores) where this takes microseconds.
    return float((per_pair * pairs.log_kernel(sigma_m)).sum())


def _maximise(objective: Callable[[float], float], bounds: tuple[float, float]) -> float:
    """The argmax of a one-dimensional ``objective`` on log-scale ``bounds``."""
    low, high = np.log(bounds[0]), np.log(bounds[1])
    result = minimize_scalar(lambda x: -objective(float(np.exp(x))), bounds=(low, high), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(result.x))
