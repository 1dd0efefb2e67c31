"""The coordinator's side of federated analytics: it sums what the agencies send.

- `secure_sum`: federated mode. It receives only masked vectors (federation/secure_sum.py), each
  uniformly random mod M on its own, and learns only their sum: the agencies' noisy counts summed.
- `trusted_sum`: federated-trusted mode. It receives every agency's exact counts and adds the
  noise (discrete Gaussian or Skellam) itself; the guarantee holds only if the coordinator is trusted to add
  the noise and forget the exact counts (labelled so in every output).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from federation.secure_sum import MaskedVector, decode
from privacy.count_release import sample_noise
from privacy.mechanisms import DISCRETE_GAUSSIAN

__all__ = ["secure_sum", "trusted_sum"]


def secure_sum(vectors: Sequence[MaskedVector]) -> np.ndarray:
    """Sum of the masked vectors mod their common modulus, decoded to signed integers."""
    if not vectors:
        raise ValueError("nothing to sum")
    modulus = vectors[0].modulus
    if any(v.modulus != modulus or v.values.shape != vectors[0].values.shape for v in vectors):
        raise ValueError("masked vectors of different moduli or lengths cannot be summed")
    low = np.uint64(modulus - 1)
    total = np.zeros(vectors[0].values.shape, dtype=np.uint64)
    for v in vectors:
        total = (total + v.values) & low
    return decode(total, modulus)


def trusted_sum(exact: Sequence[np.ndarray], sigma: float, noise: str = DISCRETE_GAUSSIAN) -> np.ndarray:
    """Sum of the agencies' exact counts plus `noise` of std σ per cell, added by the coordinator."""
    if not exact:
        raise ValueError("nothing to sum")
    total = np.sum(np.stack(exact), axis=0).astype(np.int64)
    return total + sample_noise(noise, sigma, total.size).reshape(total.shape)
