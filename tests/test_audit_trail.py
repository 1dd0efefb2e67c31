"""The hash-chained audit trail: any edited, removed or reordered line is found and named."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from privacy import audit_trail as trail

AGENCIES = ["Avon", "Brent", "Cleve"]
N_LINES = 20  # 19 entries + the closing entry


def _entries() -> list[dict]:
    """A small run: per round, each agency's DP update, then the coordinator's aggregate."""
    out, eps = [], dict.fromkeys(AGENCIES, 0.0)
    for rnd in range(1, 6):
        for agency in AGENCIES:
            eps[agency] += 0.25
            out.append(
                {
                    "run": "run-1",
                    "architecture": "fedavg-dp",
                    "round": rnd,
                    "agency": agency,
                    "type": "train-reply",
                    "sizes": {"bytes": 4096, "num_examples": 100},
                    "dp": {"sigma": 1.1, "sample_rate": 0.05, "steps": 20, "delta": 1e-5},
                    "epsilon": round(eps[agency], 6),
                    "payload_sha256": trail.payload_sha256(f"{rnd}{agency}".encode()),
                }
            )
        out.append({"run": "run-1", "architecture": "fedavg-dp", "round": rnd, "agency": trail.COORDINATOR, "type": "aggregate", "sizes": {"bytes": 4096}, "epsilon": None})
    return out[: N_LINES - 1]


def _ledger(entries: list[dict]) -> list[dict]:
    return [{k: e[k] for k in ("run", "architecture", "round", "agency", "epsilon")} for e in entries if e["agency"] != trail.COORDINATOR]


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("trail") / "audit.jsonl"
    for entry in _entries():
        trail.append(path, entry)
    trail.close(path, "run-1", 5)
    return path


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _write(tmp_path: Path, lines: list[bytes]) -> Path:
    out = tmp_path / "audit.jsonl"
    out.write_bytes(b"".join(lines))
    return out


def test_intact_trail_verifies_with_its_ledger(good: Path) -> None:
    assert len(_lines(good)) == N_LINES
    assert trail.verify(good, _ledger(_entries()), anchor=trail.head(good)) == []
    last = trail.read(good)[-1]
    assert last["type"] == trail.CLOSE and last["entries"] == N_LINES - 1


@pytest.mark.parametrize("line", range(1, N_LINES + 1))
def test_editing_any_line_names_it(good: Path, tmp_path: Path, line: int) -> None:
    lines = _lines(good)
    entry = json.loads(lines[line - 1])
    entry["round"] = entry["round"] + 1  # a plausible-looking edit; hash left as it was
    lines[line - 1] = trail.canonical(entry) + b"\n"
    problems = trail.verify(_write(tmp_path, lines))
    assert problems and problems[0].startswith(f"line {line}:"), problems


@pytest.mark.parametrize("line", range(1, N_LINES + 1))
def test_editing_a_line_and_its_hash_is_caught_at_the_next_line_or_by_the_anchor(good: Path, tmp_path: Path, line: int) -> None:
    lines = _lines(good)
    entry = json.loads(lines[line - 1])
    entry["time"] = "2020-01-01T00:00:00.000000+00:00"
    entry["hash"] = trail.entry_hash(entry)
    lines[line - 1] = trail.canonical(entry) + b"\n"
    path = _write(tmp_path, lines)
    if line < N_LINES:
        problems = trail.verify(path)
        assert problems and problems[0].startswith(f"line {line + 1}:") and f"line {line} was edited" in problems[0]
    else:  # the last line re-hashed: only a hash kept elsewhere shows it
        assert trail.verify(path) == []
        assert trail.verify(path, anchor=trail.head(good))[0].startswith(f"line {line}:")


@pytest.mark.parametrize("line", range(1, N_LINES + 1))
def test_deleting_any_line_names_it(good: Path, tmp_path: Path, line: int) -> None:
    lines = _lines(good)
    del lines[line - 1]
    problems = trail.verify(_write(tmp_path, lines))
    assert problems and problems[0].startswith(f"line {line}:"), problems


@pytest.mark.parametrize("line", range(1, N_LINES))
def test_swapping_any_two_adjacent_lines_names_the_first(good: Path, tmp_path: Path, line: int) -> None:
    lines = _lines(good)
    lines[line - 1], lines[line] = lines[line], lines[line - 1]
    problems = trail.verify(_write(tmp_path, lines))
    assert problems and problems[0].startswith(f"line {line}:"), problems


def test_a_duplicated_line_is_named(good: Path, tmp_path: Path) -> None:
    lines = _lines(good)
    lines.insert(5, lines[4])  # line 5 repeated as line 6
    assert trail.verify(_write(tmp_path, lines))[0].startswith("line 6:")


def test_a_cut_off_last_line_is_reported(good: Path, tmp_path: Path) -> None:
    lines = _lines(good)
    lines[-1] = lines[-1][:40]
    problems = trail.verify(_write(tmp_path, lines))
    assert any(p.startswith(f"line {N_LINES}:") for p in problems)


def test_append_refuses_a_closed_or_torn_trail(good: Path, tmp_path: Path) -> None:
    closed = _write(tmp_path, _lines(good))
    with pytest.raises(trail.AuditError, match="closed"):
        trail.append(closed, {"run": "run-1", "round": 6, "agency": "Avon", "type": "train-reply"})
    torn = tmp_path / "torn.jsonl"
    torn.write_bytes(_lines(good)[0][:-10])
    with pytest.raises(trail.AuditError, match="incomplete"):
        trail.append(torn, {"run": "run-1", "round": 1, "agency": "Avon", "type": "train-reply"})


def test_append_checks_entries(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with pytest.raises(trail.AuditError, match="'round'"):
        trail.append(path, {"run": "r", "round": "1", "agency": "A", "type": "t"})
    with pytest.raises(trail.AuditError, match="'hash'"):
        trail.append(path, {"run": "r", "round": 1, "agency": "A", "type": "t", "hash": "x"})
    with pytest.raises(trail.AuditError, match="epsilon"):
        trail.append(path, {"run": "r", "round": 1, "agency": "A", "type": "t", "epsilon": float("nan")})
    assert not path.exists()


def test_an_unclosed_trail_is_reported_unless_still_open(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    for entry in _entries()[:4]:
        trail.append(path, entry)
    assert trail.verify(path)[0].startswith("line 5: missing")
    assert trail.verify(path, expect_closed=False) == []


def test_ledger_cross_check_both_ways(good: Path) -> None:
    ledger = _ledger(_entries())
    missing_in_ledger = [r for r in ledger if not (r["agency"] == "Brent" and r["round"] == 2)]
    problems = trail.verify(good, missing_in_ledger)
    assert len(problems) == 1 and "Brent in round 2 is not in the agency's ledger" in problems[0]
    assert problems[0].startswith("line 6:")  # round 2: lines 5-7 are Avon, Brent, Cleve

    extra = [*ledger, {"run": "run-1", "architecture": "fedavg-dp", "round": 9, "agency": "Avon", "epsilon": 3.0}]
    assert any("round 9, Avon" in p and "not in the trail" in p for p in trail.verify(good, extra))

    changed = [dict(r, epsilon=r["epsilon"] + 0.5) if (r["agency"], r["round"]) == ("Cleve", 3) else r for r in ledger]
    problems = trail.verify(good, changed)
    assert len(problems) == 1 and problems[0].startswith("line 11:") and "the ledger says" in problems[0]

    other_run = [*ledger, {"run": "run-0", "architecture": "fedavg-dp", "round": 1, "agency": "Avon", "epsilon": 0.5}]
    assert trail.verify(good, other_run) == []  # a ledger spans many runs; only this run's rows count


def _writer(path: str, who: str, n: int) -> None:
    for i in range(n):
        trail.append(path, {"run": "run-1", "round": i, "agency": who, "type": "train-reply", "epsilon": None})


def test_concurrent_writers_keep_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    ctx = multiprocessing.get_context("fork")
    writers = [ctx.Process(target=_writer, args=(str(path), who, 60)) for who in ("Avon", "Brent")]
    for w in writers:
        w.start()
    for w in writers:
        w.join(60)
        assert w.exitcode == 0
    trail.close(path, "run-1")
    assert trail.verify(path) == []
    entries = trail.read(path)
    assert [e["seq"] for e in entries] == list(range(1, 122))
    assert sorted(e["round"] for e in entries if e["agency"] == "Avon") == list(range(60))
    assert entries[-1]["entries"] == 120


def test_deferred_sync_syncs_once_per_handover_and_before_leaving(tmp_path: Path, monkeypatch) -> None:
    """Inside deferred_sync (Peel's in-process engine) entries are written at once but fsynced by
    sync_pending(), which the engine calls before any message crosses; outside it, every append
    fsyncs before returning."""
    import os

    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(trail.os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    path = tmp_path / "audit.jsonl"
    trail.append(path, {"run": "r", "round": 1, "agency": "Avon", "type": "train-reply"})
    assert len(synced) == 2  # the entry, and the folder (a new file)
    synced.clear()
    with trail.deferred_sync():
        for who in AGENCIES:
            trail.append(path, {"run": "r", "round": 2, "agency": who, "type": "train-reply"})
        assert synced == [] and len(trail.read(path)) == 4  # written, chained, not yet synced
        trail.sync_pending()
        assert len(synced) == 1  # one fsync for the three entries, before the hand-over
        trail.sync_pending()
        assert len(synced) == 1  # nothing pending
        trail.append(path, {"run": "r", "round": 3, "agency": "Avon", "type": "train-reply"})
        trail.append(path, {"run": "r", "round": 3, "agency": trail.COORDINATOR, "type": "aggregate"})
        assert len(synced) == 2  # the coordinator's entry (and Avon's before it) at once: it is checkpointed next
        trail.sync_pending()
        assert len(synced) == 2  # nothing left pending
        trail.append(path, {"run": "r", "round": 4, "agency": "Avon", "type": "train-reply"})
    assert len(synced) == 3  # leaving the block syncs what is left
    trail.close(path, "r")
    assert len(synced) == 4 and trail.verify(path) == []


def test_append_notices_another_writer_between_its_appends(tmp_path: Path) -> None:
    """The last line is remembered only while the file is exactly as this process left it."""
    path = tmp_path / "audit.jsonl"
    trail.append(path, {"run": "r", "round": 1, "agency": "Avon", "type": "train-reply"})
    ctx = multiprocessing.get_context("fork")
    other = ctx.Process(target=trail.append, args=(path, {"run": "r", "round": 1, "agency": "Brent", "type": "train-reply"}))
    other.start()
    other.join()
    trail.append(path, {"run": "r", "round": 1, "agency": "Cleve", "type": "train-reply"})
    trail.close(path, "r")
    assert trail.verify(path) == []
    assert [e["agency"] for e in trail.read(path)] == ["Avon", "Brent", "Cleve", trail.COORDINATOR]
