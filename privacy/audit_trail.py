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

Several processes may append to one file: each append takes an exclusive lock (flock), re-reads
the last line under it, and fsyncs before releasing it. (flock is reliable on local disks; not on
every network file system.)
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

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


def entry_hash(entry: Mapping) -> str:
    return sha256(canonical({k: v for k, v in entry.items() if k != "hash"}))


def _check(entry: Mapping) -> None:
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


def _last_line(fh) -> bytes:  # noqa: ANN001 - a binary file open for reading
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


def append(path: str | Path, entry: Mapping) -> dict:
    """Append one entry (chained to the current last line) and return it as written."""
    _check(entry)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with open(path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            last = _last_line(fh)
            if last:
                try:
                    previous = json.loads(last)
                    prev, seq = str(previous["hash"]), int(previous["seq"]) + 1
                except (ValueError, KeyError, TypeError):
                    raise AuditError(f"{path}: the last line is not an audit entry; verify the trail") from None
                if previous.get("type") == CLOSE:
                    raise AuditError(f"{path}: the trail is closed (line {seq - 1}); a new run needs a new trail")
            else:
                prev, seq = GENESIS, 1
            record = {"time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds"), **entry, "seq": seq, "prev": prev}
            if record["type"] == CLOSE:  # counted under the lock: no writer can slip in between
                record["entries"] = seq - 1
            record["hash"] = entry_hash(record)
            fh.seek(0, os.SEEK_END)
            fh.write(canonical(record) + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    if new:  # make the file's creation itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return record


def close(path: str | Path, run: str, round_: int = 0) -> dict:
    """The coordinator's last entry: how many entries came before it (detects a cut-off end)."""
    return append(path, {"run": run, "round": round_, "agency": COORDINATOR, "type": CLOSE})


def head(path: str | Path) -> str:
    """The hash of the last entry: keep it elsewhere to anchor the trail."""
    with open(path, "rb") as fh:
        last = _last_line(fh)
    return str(json.loads(last)["hash"]) if last else GENESIS


def read(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_bytes().splitlines()]


def _chain_problem(n: int, raw: bytes, prev_hash: str) -> tuple[str | None, dict | None]:
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


def _key(record: Mapping) -> tuple:
    return tuple(record.get(k) for k in RELEASE_KEY)


def _cross_check(entries: list[tuple[int, dict]], ledger_rows: Iterable[Mapping]) -> list[str]:
    """Every DP release in the trail is in the ledger with the same ε, and vice versa (ledger
    rows of runs this trail does not cover are ignored: a ledger spans many runs)."""
    problems = []
    runs = {e.get("run") for _, e in entries}
    releases: dict[tuple, list[tuple[int, dict]]] = {}
    for n, entry in entries:
        if entry.get("agency") != COORDINATOR and entry.get("epsilon") is not None:
            releases.setdefault(_key(entry), []).append((n, entry))
    seen: set[tuple] = set()
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
        if len(found) > 1:
            problems.append(f"line {found[1][0]}: the release on line {found[0][0]} is recorded twice")
        if key not in seen:
            problems.append(f"line {found[0][0]}: release of {key[3]} in round {key[2]} is not in the agency's ledger")
    return problems


def verify(path: str | Path, ledger_rows: Iterable[Mapping] | None = None, *, expect_closed: bool = True, anchor: str | None = None) -> list[str]:
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
    entries: list[tuple[int, dict]] = []
    prev = GENESIS
    for n, raw in enumerate(lines, start=1):
        problem, entry = _chain_problem(n, raw, prev)
        if problem:
            return [problem, *problems]
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
