"""Stable seeds derived from names (Python's hash() of strings changes between processes)."""

from __future__ import annotations

import hashlib


def stable_seed(*parts: object) -> int:
    """A 31-bit seed that depends only on `parts` (e.g. config seed, agency, round)."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little") >> 1
