"""`peel run --resume RUN_DIR`: continue a run that stopped (killed, crashed, machine lost) with
the same resolved config, data, seeds and ledgers.

What continues from where: baselines whose model and entry were written are kept; a federated
architecture continues after the last round its coordinator checkpointed (server/checkpoint.py);
each DP agency re-sends an update that already left and never charges a round twice
(clients/releases.py); scoring, audits and the report run again. The run folder is locked
for the whole resume (experiments/lock.py): a second resume, or the run itself still going,
is refused. Before that, a line a stopped writer left half-written at the end of the run's
JSON-lines files is dropped: a trail entry is complete (and fsynced) before its reply leaves,
so a half line records nothing that left.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from experiments.config import ConfigError
from experiments.lock import hold
from experiments.runner import execute, keep_torch_cache_in, reopen_unfinished
from federation import architectures
from federation.spec import TRAIL_FILE
from server import checkpoint
from server.recorder import drop_rows

log = logging.getLogger("peel.resume")

LINE_FILES = (TRAIL_FILE, "metrics.jsonl", "federated.jsonl")


def drop_torn_tail(path: Path) -> bool:
    """Cut a last line that has no newline (its writer stopped mid-line); True if one was."""
    if not path.exists():
        return False
    with open(path, "r+b") as fh:
        end = fh.seek(0, os.SEEK_END)
        if end == 0:
            return False
        fh.seek(end - 1)
        if fh.read(1) == b"\n":
            return False
        pos = end
        while pos > 0:  # back to the last newline
            step = min(4096, pos)
            fh.seek(pos - step)
            chunk = fh.read(step)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                pos = pos - step + cut + 1
                break
            pos -= step
        fh.truncate(pos)
        fh.flush()
        os.fsync(fh.fileno())
    return True


def resume(run_dir: Path, engine: str = "in-process", deploy_dir: Path | None = None) -> Path:
    """Finish the run in `run_dir`; returns it. ConfigError if it is not an unfinished run, or
    if another process holds it (RunFolderBusy: the lock is taken before anything is read or cut)."""
    unfinished = reopen_unfinished(run_dir)  # a folder that is no unfinished run is refused before anything is written to it
    for arch in unfinished.federated:
        try:
            checkpoint.load(run_dir, arch)
        except checkpoint.CorruptCheckpoint as exc:  # refused here, not in the coordinator mid-run
            raise ConfigError(str(exc)) from None
    hold(run_dir)
    folder = reopen_unfinished(run_dir)  # again, under the lock: the run may have finished meanwhile
    keep_torch_cache_in(run_dir)
    for name in LINE_FILES:
        if drop_torn_tail(run_dir / name):
            log.warning("%s: dropped its last line, cut off when the run stopped", run_dir / name)
    drop_rows(run_dir / "metrics.jsonl", lambda row: row.get("architecture") in architectures.baselines())  # scoring writes them again
    done = [a for a in folder.config.architectures if a in folder.results]
    log.info("resuming %s (finished before the stop: %s)", run_dir, ", ".join(done) or "no baseline")
    execute([folder], engine=engine, deploy_dir=deploy_dir)
    return run_dir
