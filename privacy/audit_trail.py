"""The audit trail: an append-only JSONL file with one line per message that left an agency (and
per aggregate the coordinator formed), hash-chained so that editing, removing, inserting or
reordering lines is detected — and the line named.

Every line is the canonical JSON (sorted keys, no spaces, UTF-8) of one entry:

    time, run, round, agency ("coordinator" for the coordinator), type, sizes, dp, epsilon,
    payload_sha256  — what the writer records (dp and epsilon: the DP parameters and the
                      cumulative ε after this release, or null);
    seq             — the entry's 1-based position in the file;
    prev            — `hash` of the previous line (64 zeros for the first);
    hash            — SHA-256 of the canonical JSON of the entry without `hash`.

A chain alone cannot show that lines were cut from the end. The coordinator therefore ends a
run's trail with a `close` entry holding the number of entries before it; `verify` reports a
trail without one. What stays undetectable from the file alone: someone who can write the file
can rewrite everything from some line on, recomputing every hash and a new `close` (the hashes
are keyless). Keep the final hash (`head`) somewhere the writer of the file cannot change — the
run's summary, each agency's own records — and pass it to `verify(anchor=...)`. A trail cut off
before its `close` cannot be told apart from a run that crashed.

Several processes may append to one file: each append takes an exclusive lock (flock), finds the
last line under it, and fsyncs before releasing it, so an entry is on disk before `append`
returns (and so before the reply it describes leaves). Finding the last line re-reads it unless
the file is exactly as this process left it after its own previous append (same device, inode,
size and modification time, checked under the lock): then the hash and position it wrote are
reused. (flock is reliable on local disks; not on every network file system.)

Inside `deferred_sync()` (Peel's in-process engine, where every agency and the coordinator share
one process and the engine itself carries their messages) `append` writes without the fsync and
the engine calls `sync_pending()` before any message crosses from one party to another; see
`deferred_sync` for why that keeps the guarantee.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import math
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

GENESIS = "0" * 64
COORDINATOR = "coordinator"
CLOSE = "close"
CHAIN_FIELDS = ("seq", "prev", "hash")
REQUIRED = {"run": str, "round": int, "agency": str, "type": str}
# A ledger release and a trail entry are the same release when these agree (a missing
# "architecture" is None on both sides).
RELEASE_KEY = ("run", "architecture", "round", "agency")
EPS_TOLERANCE = 1e-9


class AuditError(Exception):
    """An entry cannot be appended (the message says why and where)."""


def canonical(obj: Any) -> bytes:
    """The one byte serialisation that is hashed and written."""
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    except ValueError as exc:
        raise AuditError(f"audit entry: {exc} (record NaN/inf as null)") from None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def payload_sha256(*chunks: bytes) -> str:
    """SHA-256 over the payload's bytes (e.g. every array of a model update, in order)."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def entry_hash(entry: Mapping[str, Any]) -> str:
    return sha256(canonical({k: v for k, v in entry.items() if k != "hash"}))


def _check(entry: Mapping[str, Any]) -> None:
    for key, kind in REQUIRED.items():
        value = entry.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise AuditError(f"audit entry: {key!r} must be a {kind.__name__}, got {value!r}")
    reserved = [k for k in CHAIN_FIELDS if k in entry]
    if reserved:
        raise AuditError(f"audit entry: {reserved[0]!r} is set by the trail, not the writer")
    eps = entry.get("epsilon")
    if eps is not None and (not isinstance(eps, (int, float)) or isinstance(eps, bool) or not math.isfinite(eps)):
        raise AuditError(f"audit entry: 'epsilon' must be a finite number or null, got {eps!r}")


def _last_line(fh: BinaryIO) -> bytes:
    """The file's last line (without its newline), read backwards from the end."""
    end = fh.seek(0, os.SEEK_END)
    if end == 0:
        return b""
    fh.seek(end - 1)
    if fh.read(1) != b"\n":
        raise AuditError(f"{fh.name}: the last line is incomplete (a writer stopped mid-line); repair or verify the trail first")
    pos, chunk = end - 1, b""  # chunk: the bytes from pos up to the final newline
    while pos > 0 and b"\n" not in chunk:
        step = min(4096, pos)
        pos -= step
        fh.seek(pos)
        chunk = fh.read(step) + chunk
    return chunk.rsplit(b"\n", 1)[-1]


# The last entry this process appended to each trail, and the file's state right after it:
# path -> (st_dev, st_ino, st_size, st_mtime_ns, hash, seq, closed). Any other writer or edit
# changes the size or the modification time, and then the last line is read again.
_tails: dict[str, tuple[int, int, int, int, str, int, bool]] = {}
_tails_lock = threading.Lock()  # flock locks per open file, not per thread: serialise threads too


_deferred = 0  # depth of deferred_sync() blocks
_dirty: set[str] = set()  # trails written inside them and not yet synced


@contextmanager
def deferred_sync() -> Iterator[None]:
    """Within this block `append` writes each entry (under the lock, chained, flushed to the OS)
    but does not fsync it; whoever carries the messages must call `sync_pending()` before any
    message leaves one party for another, and everything still pending is synced when the block
    ends.

    Why that is the same guarantee: an entry must be durable before the message it describes
    leaves. In Peel's in-process engine a reply "leaves" when the engine hands it to the
    coordinator, and the coordinator's messages leave when the engine takes them; the engine
    calls `sync_pending()` at exactly those points, so every entry is on disk before its message
    is seen by anyone. A crash before that sync loses the unsynced entries *and* the messages
    they describe (all in this one process): nothing that left is unlogged. What this would NOT
    be is syncing once per round after the replies were aggregated or the next model was sent.
    Where a ClientApp's reply leaves through another process (Flower's Ray simulation, a
    SuperNode), nobody enters this block and every entry is fsynced on its own.

    The coordinator's own entries (`aggregate`, `close`) are fsynced at once even here: the
    coordinator checkpoints a formed model durably before sending it (`--resume` sends that
    model again without recording it again), so its entry must be on disk before the
    checkpoint, not merely before the send. Agencies' entries have no such second record: a
    kept DP release is recorded again each time it is re-sent."""
    global _deferred
    with _tails_lock:
        _deferred += 1
    try:
        yield
    finally:
        with _tails_lock:
            _deferred -= 1
        sync_pending()


def sync_pending() -> None:
    """fsync every trail written inside `deferred_sync()` since the last call."""
    with _tails_lock:
        while _dirty:
            path = _dirty.pop()
            try:
                fd = os.open(path, os.O_RDONLY)  # fsync flushes the file, whichever descriptor
            except FileNotFoundError:
                continue  # removed meanwhile: nothing left to make durable
            try:
                os.fsync(fd)
            except BaseException:
                _dirty.add(path)
                raise
            finally:
                os.close(fd)


def _file_state(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _open_for_append(path: Path) -> tuple[int, bool]:
    """A descriptor of `path` for reading and appending, and whether this call created it."""
    try:
        return os.open(path, os.O_RDWR | os.O_APPEND), False
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644), True
        except FileExistsError:  # another writer created it meanwhile
            return os.open(path, os.O_RDWR | os.O_APPEND), False


def _previous(fd: int, path: Path) -> tuple[str, int]:
    """(hash, seq) of the entry the next one chains to: read from the file's last line, or
    remembered from this process's own last append when the file has not changed since."""
    key = str(path)
    tail = _tails.get(key)
    if tail is not None and _file_state(os.fstat(fd)) == tail[:4]:
        prev, last_seq, closed = tail[4], tail[5], tail[6]
    else:
        with open(path, "rb") as fh:  # by name: errors name the file
            last = _last_line(fh)
        if not last:
            return GENESIS, 1
        try:
            previous = json.loads(last)
            prev, last_seq = str(previous["hash"]), int(previous["seq"])
        except (ValueError, KeyError, TypeError):
            raise AuditError(f"{path}: the last line is not an audit entry; verify the trail") from None
        closed = previous.get("type") == CLOSE
    if closed:
        raise AuditError(f"{path}: the trail is closed (line {last_seq}); a new run needs a new trail")
    return prev, last_seq + 1


def append(path: str | Path, entry: Mapping[str, Any]) -> dict[str, Any]:
    """Append one entry (chained to the current last line) and return it as written; it is on
    disk (fsync) when this returns."""
    _check(entry)
    path = Path(path)
    with _tails_lock:
        fd, new = _open_for_append(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                prev, seq = _previous(fd, path)
                record = {"time": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"), **entry, "seq": seq, "prev": prev}
                if record["type"] == CLOSE:  # counted under the lock: no writer can slip in between
                    record["entries"] = seq - 1
                record["hash"] = entry_hash(record)
                line = canonical(record) + b"\n"
                written = os.write(fd, line)  # O_APPEND: at the end, whatever the offset
                if written != len(line):
                    raise AuditError(f"{path}: short write ({written} of {len(line)} bytes); verify the trail")
                if _deferred and record["agency"] != COORDINATOR:
                    _dirty.add(str(path))  # synced by sync_pending() before the message leaves
                else:
                    os.fsync(fd)  # flushes the whole file: earlier deferred entries too
                    _dirty.discard(str(path))
                _tails[str(path)] = (*_file_state(os.fstat(fd)), record["hash"], seq, record["type"] == CLOSE)
            except BaseException:
                _tails.pop(str(path), None)
                raise
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    if new:  # make the file's creation itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return record


def close(path: str | Path, run: str, round_: int = 0) -> dict[str, Any]:
    """The coordinator's last entry: how many entries came before it (detects a cut-off end)."""
    return append(path, {"run": run, "round": round_, "agency": COORDINATOR, "type": CLOSE})


def head(path: str | Path) -> str:
    """The hash of the last entry: keep it elsewhere to anchor the trail."""
    with open(path, "rb") as fh:
        last = _last_line(fh)
    return str(json.loads(last)["hash"]) if last else GENESIS


def read(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_bytes().splitlines()]


def _chain_problem(n: int, raw: bytes, prev_hash: str) -> tuple[str | None, dict[str, Any] | None]:
    """What is wrong with line `n` (1-based) given the previous line's hash, if anything."""
    try:
        entry = json.loads(raw)
        if not isinstance(entry, dict):
            raise ValueError("not an object")
    except ValueError:
        return f"line {n}: not a JSON object (edited or corrupted)", None
    missing = [k for k in CHAIN_FIELDS if k not in entry]
    if missing:
        return f"line {n}: no {missing[0]!r} field (edited or not written by the audit trail)", entry
    if entry["hash"] != entry_hash(entry):
        return f"line {n}: its hash does not match its content (the line was edited)", entry
    if canonical(entry) != raw:
        return f"line {n}: not in canonical form (the line was re-serialised or edited)", entry
    if entry["seq"] != n:
        return f"line {n}: holds entry #{entry['seq']} (lines were removed, inserted or reordered before or at this line)", entry
    if entry["prev"] != prev_hash:
        return f"line {n}: does not follow line {n - 1} (line {n - 1} was edited or inserted, or a line between them was removed)", entry
    return None, entry


def _key(record: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(record.get(k) for k in RELEASE_KEY)


def _cross_check(entries: list[tuple[int, dict[str, Any]]], ledger_rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every DP release in the trail is in the ledger with the same ε, and vice versa (ledger
    rows of runs this trail does not cover are ignored: a ledger spans many runs)."""
    problems = []
    runs = {e.get("run") for _, e in entries}
    releases: dict[tuple[Any, ...], list[tuple[int, dict[str, Any]]]] = {}
    for n, entry in entries:
        if entry.get("agency") != COORDINATOR and entry.get("epsilon") is not None:
            releases.setdefault(_key(entry), []).append((n, entry))
    seen: set[tuple[Any, ...]] = set()
    for row in ledger_rows:
        if row.get("run") not in runs:
            continue
        key = _key(row)
        found = releases.get(key)
        what = f"run {row.get('run')}, {row.get('architecture') or ''} round {row.get('round')}, {row.get('agency')}".replace(",  round", ", round")
        if not found:
            problems.append(f"ledger: release of {what} (ε={row.get('epsilon')}) is not in the trail")
            continue
        seen.add(key)
        n, entry = found[0]
        if abs(float(entry["epsilon"]) - float(row["epsilon"])) > EPS_TOLERANCE * max(1.0, abs(float(row["epsilon"]))):
            problems.append(f"line {n}: ε after the release is {entry['epsilon']}, the ledger says {row['epsilon']} ({what})")
    for key, found in releases.items():
        # A resumed run may ask again for an update that already left: the agency sends the
        # same bytes (free), so a repeat must carry the same payload; anything else is a
        # second release the ledger charged once.
        for n, repeat in found[1:]:
            if repeat.get("payload_sha256") != found[0][1].get("payload_sha256") or repeat.get("epsilon") != found[0][1].get("epsilon"):
                problems.append(f"line {n}: a second, different update for the release on line {found[0][0]} (the ledger charged it once)")
        if key not in seen:
            problems.append(f"line {found[0][0]}: release of {key[3]} in round {key[2]} is not in the agency's ledger")
    return problems


def verify(path: str | Path, ledger_rows: Iterable[Mapping[str, Any]] | None = None, *, expect_closed: bool = True, anchor: str | None = None) -> list[str]:
    """Check the trail; return its problems, the first bad line first (empty: the trail is intact).

    Checks, line by line, the JSON, the entry's own hash, canonical form, position and link to
    the line before (stopping at the first broken line: everything after it is unanchored);
    then that the trail ends with a `close` entry counting the lines before it; then, with
    `anchor`, that the last hash is the one kept elsewhere; then, with `ledger_rows` (dicts with
    run, architecture, round, agency, epsilon), that trail and ledger hold the same releases."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [f"{path}: no audit trail"]
    lines = data.split(b"\n")
    problems: list[str] = []
    if lines[-1] != b"":
        problems.append(f"line {len(lines)}: incomplete (no newline: a writer stopped mid-line, or the file was cut)")
    lines = lines[:-1]
    entries: list[tuple[int, dict[str, Any]]] = []
    prev = GENESIS
    for n, raw in enumerate(lines, start=1):
        problem, entry = _chain_problem(n, raw, prev)
        if problem:
            return [problem, *problems]
        assert entry is not None  # no problem means the line parsed
        entries.append((n, entry))
        prev = entry["hash"]
        if entry.get("type") == CLOSE and n != len(lines):
            problems.append(f"line {n + 1}: follows the closing entry on line {n} (appended after the trail was closed)")
    if expect_closed:
        if not entries or entries[-1][1].get("type") != CLOSE:
            problems.append(f"line {len(lines) + 1}: missing: the trail has no closing entry (its last lines were removed, or the run did not finish)")
        elif entries[-1][1].get("entries") != len(lines) - 1:
            problems.append(f"line {len(lines)}: the closing entry counts {entries[-1][1].get('entries')} entries before it, the file has {len(lines) - 1}")
    if anchor is not None and prev != anchor:
        problems.append(f"line {len(lines)}: the last hash {prev[:12]}… is not the anchored {anchor[:12]}… (the trail was rewritten or cut)")
    if ledger_rows is not None:
        problems.extend(_cross_check(entries, ledger_rows))
    return problems
