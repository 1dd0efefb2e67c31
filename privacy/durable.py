"""Durable, atomic file replacement for the state a crash must not lose or half-write (the
coordinator's checkpoints, an agency's kept releases): a reader sees the old file or the new
one, and the new one survives a power cut once this returns."""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch


def replace_durably(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)  # the rename itself must be on disk too
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_durably(obj: object, path: Path) -> None:
    """torch.save, durably and atomically."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    replace_durably(path, buffer.getvalue())
