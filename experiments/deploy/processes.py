"""Start long-running processes detached from the terminal, record them, and stop exactly them.

A recorded process is identified by its PID *and* its start time, so a PID that the system has
since given to someone else's process is never signalled. Stopping takes the recorded process
and every process descended from it (Flower's SuperLink and SuperNodes start helpers of their
own, some in new sessions), collected before the first signal so none is orphaned unseen:
SIGTERM, wait, then SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from experiments.deploy.errors import DeployError
from privacy.durable import replace_durably

# Set in the environment of every process `peel deploy` starts (value: the deploy folder), so
# that helpers orphaned by a crashed parent can still be found and stopped — and nothing else.
MARKER_VAR = "PEEL_DEPLOY_DIR"


@dataclass
class Proc:
    """One process `peel deploy` started."""

    name: str
    pid: int
    started: str  # start time as the process table reports it: with the PID, the identity
    command: list[str]
    log: str
    ports: dict[str, int] = field(default_factory=dict)


# --- the process table ------------------------------------------------------------------------


def proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, start time) of every process, from /proc or, elsewhere, `ps`."""
    table: dict[int, tuple[int, str]] = {}
    proc = Path("/proc")
    if (proc / "self" / "stat").exists():
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # exited while we looked
                continue
            # Fields after the command name (which may hold spaces and parentheses).
            rest = stat[stat.rindex(")") + 2 :].split()
            if rest[0] == "Z":  # a zombie has exited; only its parent's wait() is missing
                continue
            table[int(entry.name)] = (int(rest[1]), rest[19])
        return table
    out = subprocess.run(["ps", "-A", "-o", "pid=", "-o", "ppid=", "-o", "stat=", "-o", "lstart="], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split(None, 3)
        if len(parts) == 4 and not parts[2].startswith("Z"):
            table[int(parts[0])] = (int(parts[1]), parts[3].strip())
    return table


def start_time(pid: int) -> str | None:
    entry = proc_table().get(pid)
    return entry[1] if entry else None


def is_alive(proc: Proc, table: Mapping[int, tuple[int, str]] | None = None) -> bool:
    """Is the recorded process still running (same PID and the same start time)?"""
    entry = (table if table is not None else proc_table()).get(proc.pid)
    return entry is not None and entry[1] == proc.started


def marked(marker: str) -> list[int]:
    """PIDs of processes whose environment holds MARKER_VAR=`marker` (every process `peel deploy`
    starts, and everything they start, inherits it). Linux only; elsewhere an empty list."""
    needle = f"{MARKER_VAR}={marker}".encode() + b"\0"
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if needle in (entry / "environ").read_bytes() + b"\0":
                found.append(int(entry.name))
        except OSError:  # gone, or not ours to read
            continue
    return found


def descendants(pid: int, table: Mapping[int, tuple[int, str]]) -> list[int]:
    children: dict[int, list[int]] = {}
    for child, (parent, _) in table.items():
        children.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


# --- starting ---------------------------------------------------------------------------------


def start(name: str, command: Sequence[str], log: Path, env: Mapping[str, str], cwd: Path, ports: Mapping[str, int] | None = None) -> Proc:
    """Start `command` in its own session (not killed by the terminal's Ctrl-C), with stdout and
    stderr appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        try:
            child = subprocess.Popen(list(command), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=dict(env), cwd=cwd, start_new_session=True)
        except OSError as exc:
            raise DeployError(f"cannot start {name} ({command[0]}): {exc.strerror}") from None
    started = start_time(child.pid)
    if started is None:  # exited at once: its log says why
        child.wait()
        raise DeployError(f"{name} exited at once (code {child.returncode}); see {log}")
    # The Popen object is dropped: `peel deploy up` exits while these run on (the OS re-parents
    # them). A returncode stops Python warning that a child is still running; `stop` reaps.
    child.returncode = 0
    return Proc(name, child.pid, started, list(command), str(log), dict(ports or {}))


# --- the record ---------------------------------------------------------------------------------


def write_record(path: Path, procs: Iterable[Proc], extra: Mapping | None = None) -> None:
    """Write the record atomically (a reader sees the old or the new file, never half of one)."""
    data = {**(extra or {}), "processes": [asdict(p) for p in procs]}
    replace_durably(path, json.dumps(data, indent=2), private_tmp=True)


def read_record(path: Path) -> tuple[list[Proc], dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        procs = [Proc(**p) for p in data.pop("processes")]
    except FileNotFoundError:
        raise DeployError(f"{path}: no record of running processes (nothing was started with this deploy folder, or it was stopped)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise DeployError(f"{path}: not a process record written by `peel deploy up` ({exc})") from None
    return procs, data


# --- stopping ---------------------------------------------------------------------------------


def _signal(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:  # not ours after all: leave it
            pass


def stop(procs: Sequence[Proc], marker: str | None = None, timeout: float = 10.0) -> list[str]:
    """Stop the recorded processes, their descendants and (with `marker`) every process carrying
    the deploy folder's marker: SIGTERM, wait up to `timeout` s, SIGKILL what is left. Returns one
    line per recorded process saying what happened."""
    table = proc_table()
    targets: dict[int, str] = {}  # pid -> start time: identity re-checked before every signal
    mine = [p for p in procs if is_alive(p, table)]
    for proc in mine:
        targets[proc.pid] = proc.started
    for pid in marked(marker) if marker else []:
        if pid in table and pid != os.getpid():
            targets.setdefault(pid, table[pid][1])

    def live() -> list[int]:
        now = proc_table()
        # Helpers started while we wait (a ClientApp launched just now) are descendants too.
        for pid in [p for p in targets if now.get(p, (0, None))[1] == targets[p]]:
            for child in descendants(pid, now):
                targets.setdefault(child, now[child][1])
        return [pid for pid, started in targets.items() if now.get(pid, (0, None))[1] == started]

    signalled: set[int] = set()
    deadline = time.monotonic() + timeout
    while (left := live()) and time.monotonic() < deadline:
        # Once each (a second SIGTERM cuts Flower's graceful exit short); this also reaches
        # helpers that appeared since.
        _signal([pid for pid in left if pid not in signalled], signal.SIGTERM)
        signalled.update(left)
        time.sleep(0.2)
    killed = set(left)
    if left:
        _signal(left, signal.SIGKILL)
        while live() and time.monotonic() < deadline + 5:
            time.sleep(0.1)
    for proc in procs:  # reap them if they are our own children (`up` and `down` in one process)
        try:
            os.waitpid(proc.pid, os.WNOHANG)
        except ChildProcessError:
            pass
    lines = []
    for proc in procs:
        if proc not in mine:
            lines.append(f"{proc.name}: was not running (PID {proc.pid})")
        elif proc.pid in killed:
            lines.append(f"{proc.name}: killed after {timeout:.0f} s (PID {proc.pid})")
        else:
            lines.append(f"{proc.name}: stopped (PID {proc.pid})")
    return lines


def survivors(procs: Sequence[Proc], marker: str | None = None) -> list[int]:
    """PIDs among the recorded processes, and (with `marker`) any marked process, still running."""
    table = proc_table()
    alive = {p.pid for p in procs if is_alive(p, table)}
    alive.update(pid for pid in (marked(marker) if marker else []) if pid in table and pid != os.getpid())
    return sorted(alive)
