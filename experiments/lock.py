"""One holder per run folder: `peel run` and `peel run --resume` take an exclusive lock on
`<run folder>/.peel.lock` for as long as the process lives, so two processes never train,
charge and send for the same run at once (a second resume would send second, uncharged
updates).

`fcntl.flock` on an open file: the kernel drops it when the process exits, however it exits
(SIGKILL included), so a crashed run never leaves a stale lock behind to clear by hand.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from experiments.config import ConfigError

LOCK_FILENAME = ".peel.lock"

_held: dict[Path, int] = {}  # run folder → the descriptor holding its lock (kept open until exit)


class RunFolderBusy(ConfigError):
    """Another process holds the run folder, or it cannot be locked (one line; the CLI exits 2)."""


def hold(run_dir: Path) -> None:
    """Lock `run_dir` for the rest of this process; a no-op if this process already holds it.
    Raises RunFolderBusy if another process (or another descriptor) holds it."""
    key = Path(run_dir).resolve()
    if key in _held:
        return
    try:
        fd = try_lock(key)
    except OSError as exc:
        raise RunFolderBusy(f"{run_dir}: cannot lock the run folder ({exc.strerror})") from None
    if fd is None:
        holder = _holder(key / LOCK_FILENAME)
        raise RunFolderBusy(f"{run_dir}: another peel process{holder} is running or resuming this run; wait for it to finish")
    _held[key] = fd


def try_lock(run_dir: Path) -> int | None:
    """An open descriptor holding the exclusive lock of `run_dir`, or None if it is held
    elsewhere. The holder's pid is written into the lock file (for the message only: the lock
    is the flock, not the file's content)."""
    path = Path(run_dir) / LOCK_FILENAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def release(run_dir: Path) -> None:
    """Drop this process's lock on `run_dir` (exiting does the same)."""
    fd = _held.pop(Path(run_dir).resolve(), None)
    if fd is not None:
        os.close(fd)


def _holder(path: Path) -> str:
    try:
        pid = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""
