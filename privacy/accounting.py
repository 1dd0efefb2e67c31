"""Privacy accounting for DP-SGD with Poisson sampling: ε from a history of releases, and σ
calibration.

A history is a list of `(noise_multiplier, sample_rate, steps)` entries, one per release, in the
order they happened. It is the only state an agency needs to know what it has spent, so it is
what the agency persists (today in its Flower `context.state`).
"""

from __future__ import annotations

from collections.abc import Sequence

from opacus.accountants import PRVAccountant, RDPAccountant
from opacus.accountants.utils import get_noise_multiplier

Release = tuple[float, float, int]  # (noise multiplier σ, Poisson sample rate q, steps)

# PRV (Gopi et al. 2021) is the tighter of Opacus' two accountants for the Poisson-subsampled
# Gaussian; it reports the upper end of its error bound. RDP is looser but simple.
ACCOUNTANTS = {"prv": PRVAccountant, "rdp": RDPAccountant}
DEFAULT_ACCOUNTANT = "prv"


def merge_history(history: Sequence[Release]) -> list[Release]:
    """Merge neighbouring releases with the same (σ, q): composition only counts steps, and the
    merged form makes ε independent of how the same steps were split into rounds."""
    merged: list[Release] = []
    for sigma, q, steps in history:
        if steps <= 0:
            continue
        if merged and merged[-1][0] == sigma and merged[-1][1] == q:
            merged[-1] = (sigma, q, merged[-1][2] + int(steps))
        else:
            merged.append((float(sigma), float(q), int(steps)))
    return merged


def epsilon(history: Sequence[Release], delta: float, accountant: str = DEFAULT_ACCOUNTANT) -> float:
    """Cumulative ε at `delta` of every release in `history` (0 for an empty history)."""
    merged = merge_history(history)
    if not merged:
        return 0.0
    acc = ACCOUNTANTS[accountant]()
    acc.history = merged
    return float(acc.get_epsilon(delta=delta))


def calibrate_noise(
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    accountant: str = DEFAULT_ACCOUNTANT,
) -> float:
    """Smallest σ (to Opacus' tolerance) whose ε after `steps` steps at `sample_rate` is below
    `target_epsilon`."""
    return float(
        get_noise_multiplier(
            target_epsilon=target_epsilon,
            target_delta=delta,
            sample_rate=sample_rate,
            steps=steps,
            accountant=accountant,
            epsilon_tolerance=0.005,
        )
    )
