"""Atomic file replacement, the one helper Peel writes files with: a reader sees the old file or
the new one, never half of one. Durable by default (the state a crash must not lose: the
coordinator's checkpoints, an agency's kept releases, a ledger's anchor), so the new file
survives a power cut once this returns; `sync=False` for files that can be rewritten (results,
reports), where only atomicity matters. (policedata/ keeps its own: it is below this room.)"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path


def replace_durably(path: Path, data: bytes | str, *, private_tmp: bool = False, sync: bool = True) -> None:
    """Replace `path` with `data` (str: UTF-8) through a temporary file beside it and a rename.
    `private_tmp`: a temporary file of this call's own, for files several processes or threads
    may replace at once (a ledger's anchor); by default one fixed name, so a crash leaves at most
    one stale temporary behind. `sync=False`: atomic only (no fsync of the file and folder)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
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
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if not sync:
        return
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
