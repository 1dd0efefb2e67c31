"""Durable, atomic file replacement for the state a crash must not lose or half-write (the
coordinator's checkpoints, an agency's kept releases): a reader sees the old file or the new
one, and the new one survives a power cut once this returns."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path


def replace_durably(path: Path, data: bytes, *, private_tmp: bool = False) -> None:
    """`private_tmp`: a temporary file of this call's own, for files several processes or
    threads may replace at once (a ledger's anchor); by default one fixed name, so a crash
    leaves at most one stale temporary behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if private_tmp:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        tmp, fh = Path(name), os.fdopen(fd, "wb")
    else:
        tmp = path.with_name(f".{path.name}.tmp")
        fh = open(tmp, "wb")
    try:
        with fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fd = os.open(path.parent, os.O_RDONLY)  # the rename itself must be on disk too
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_durably(obj: object, path: Path) -> None:
    """torch.save, durably and atomically."""
    import torch  # here, not at the top: the ledger's anchors use replace_durably without torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    replace_durably(path, buffer.getvalue())
