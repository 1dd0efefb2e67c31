"""A pairwise-masked modular sum of integer vectors (the secure aggregation of DP counts).

Each agency holds an X25519 key pair; the coordinator relays only public keys. Every pair of
agencies derives a shared secret by Diffie–Hellman, expands it (SHAKE-256, bound to the query
and the modulus) into a mask vector mod M, and one adds the mask while the other subtracts it.
An agency's masked vector is its noisy counts plus a sum of masks that are uniform mod M to
anyone without one of its pairwise secrets, so each masked vector alone is uniformly random
mod M; the masks cancel in the sum of all of them.

What this is not: Flower's SecAgg+ (Bell et al. 2020) also secret-shares the pairwise keys so
the sum survives agencies dropping out *after* masking. Here the set of agencies is fixed
before masking (an agency that drops out does so before it masks); one that vanishes after
masking makes the sum unrecoverable, and the release is refused. The arithmetic is exact:
M is a power of two at least 2·bound + 1 for a public `bound` on |sum|, so nothing wraps
(Flower's SecAgg+ by default clips every value to ±8 before quantising: counts would saturate).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

__all__ = ["MAX_MODULUS_BITS", "KeyPair", "MaskedVector", "decode", "mask", "modulus_for", "public_bytes"]

MAX_MODULUS_BITS = 62  # uint64 arithmetic with room: values and masks stay below 2^62


@dataclass(frozen=True)
class MaskedVector:
    """What one agency sends: its vector plus pairwise masks, mod `modulus` (uint64)."""

    agency: str
    values: np.ndarray
    modulus: int


class KeyPair:
    """An agency's X25519 key pair for one aggregation (the private key never leaves it)."""

    def __init__(self) -> None:
        self._private = X25519PrivateKey.generate()  # OS entropy

    @property
    def public(self) -> bytes:
        return public_bytes(self._private.public_key())

    def shared(self, peer_public: bytes) -> bytes:
        return self._private.exchange(X25519PublicKey.from_public_bytes(peer_public))


def public_bytes(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def modulus_for(bound: int) -> int:
    """The power of two M ≥ 2·bound + 1: a signed sum with |sum| ≤ bound decodes exactly."""
    if bound < 0:
        raise ValueError(f"bound must be ≥ 0, got {bound}")
    bits = max(1, math.ceil(math.log2(2 * bound + 1)))
    if bits > MAX_MODULUS_BITS:
        raise ValueError(f"a sum bounded by {bound:,} needs a {bits}-bit modulus; at most {MAX_MODULUS_BITS} bits are supported")
    return 1 << bits


def _stream(secret: bytes, context: bytes, length: int, modulus: int) -> np.ndarray:
    """`length` values uniform mod `modulus` (a power of two) from a shared secret."""
    raw = hashlib.shake_256(b"peel-secure-sum\x00" + context + b"\x00" + secret).digest(8 * length)
    return np.frombuffer(raw, dtype="<u8").astype(np.uint64) & np.uint64(modulus - 1)


def mask(agency: str, keys: KeyPair, peers: Mapping[str, bytes], values: np.ndarray, modulus: int, context: bytes) -> MaskedVector:
    """`values` (signed int64) mod `modulus` plus the pairwise masks with every peer (name →
    public key; the agency's own name may be among them and is skipped). The agency with the
    smaller name adds each pair's mask, the other subtracts it."""
    if modulus & (modulus - 1) or not 1 < modulus <= 1 << MAX_MODULUS_BITS:
        raise ValueError(f"modulus must be a power of two up to 2^{MAX_MODULUS_BITS}, got {modulus}")
    low = np.uint64(modulus - 1)
    out = values.astype(np.int64).astype(np.uint64) & low  # two's complement: −x ↦ M − x
    for peer, public in sorted(peers.items()):
        if peer == agency:
            continue
        pair = b"\x00".join(sorted((agency.encode(), peer.encode())))
        stream = _stream(keys.shared(public), context + b"\x00" + pair + b"\x00" + str(modulus).encode(), len(out), modulus)
        out = (out + stream) & low if agency < peer else (out - stream) & low  # uint64 wraps mod 2^64, a multiple of M
    return MaskedVector(agency, out, modulus)


def decode(total: np.ndarray, modulus: int) -> np.ndarray:
    """A sum mod `modulus` back to signed integers (values ≥ M/2 are negative)."""
    t = total.astype(np.uint64) & np.uint64(modulus - 1)
    signed = t.astype(np.int64)
    return np.where(signed >= modulus // 2, signed - modulus, signed)

