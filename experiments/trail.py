"""`peel audit verify RUN_DIR`: check a run's hash-chained audit trail, anchored by the head
stored in its summary, and cross-check it against every agency's budget ledger (each checked
against its own anchor: a missing, emptied or replaced ledger is named, never skipped)."""

from __future__ import annotations

import json
from pathlib import Path

from federation.spec import TRAIL_FILE
from privacy.audit_trail import verify
from privacy.ledger import Ledger, LedgerError, LedgerLost
from privacy.person_unit import person_ledger_path


def _ledger_path(agency: dict, spec: dict, run_dir: Path | None) -> Path:
    """The agency's ledger; for a run folder that was moved or copied since, the same file
    under its new place when the spec's path no longer exists."""
    path = Path(agency["ledger"])
    if path.exists() or run_dir is None or not spec.get("run_dir"):
        return path
    try:
        return run_dir / path.relative_to(spec["run_dir"])
    except ValueError:  # a ledger kept outside the run folder (the agencies' own folders)
        return path


def ledger_rows(spec: dict, run_id: str, problems: list[str] | None = None, run_dir: Path | None = None) -> list[dict]:
    """This run's releases as each agency's ledgers recorded them: its record ledger and, beside
    it, its person ledger (privacy.unit person charges that one). A ledger that cannot be read
    (corrupt, or missing, emptied or replaced against its anchor) is added to `problems` when
    given."""
    rows: list[dict] = []
    for agency in spec["agencies"]:
        record = _ledger_path(agency, spec, run_dir)
        for path in (record, person_ledger_path(record)):
            _read_rows(path, agency["name"], run_id, rows, problems)
    return rows


def _read_rows(path: Path, agency: str, run_id: str, rows: list[dict], problems: list[str] | None) -> None:
    """Append the run's releases in the ledger at `path` to `rows` (its problems to `problems`)."""
    try:
        with Ledger.inspect(path) as ledger:
            for row in ledger.rows():
                if row["run_id"] == run_id:
                    rows.append({"run": run_id, "architecture": row["architecture"], "round": row["round"], "agency": agency, "epsilon": row["epsilon_after"]})
    except LedgerLost as exc:
        if problems is not None:
            problems.append(f"ledger of {agency}: {exc}")
    except LedgerError as exc:
        # No file and no anchor: an agency that never charged (a run without DP), unless
        # the trail holds its releases, which the cross-check then names as missing.
        if problems is not None and path.exists():
            problems.append(f"ledger of {agency}: {exc}")


def _json(path: Path, what: str) -> dict | None:
    """A JSON object file, or None after printing one line saying what is wrong with it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        print(f"peel: {path}: missing ({what})")
        return None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        print(f"peel: {path}: unreadable {what} ({exc})")
        return None
    if not isinstance(data, dict):
        print(f"peel: {path}: not a {what} (a JSON object expected)")
        return None
    return data


def verify_run(run_dir: Path) -> int:
    """Print what is wrong (first bad line named) and return 1, or print OK and return 0 (2: not
    a run folder that can be checked)."""
    trail = run_dir / TRAIL_FILE
    if not trail.is_file():
        print(f"peel: {trail}: no audit trail (runs before the trail existed, or not a run folder)")
        return 2
    spec = _json(run_dir / "federation.json", "federation spec")
    if spec is None or not isinstance(spec.get("agencies"), list):
        if spec is not None:
            print(f"peel: {run_dir / 'federation.json'}: no agency list")
        return 2
    anchor = None
    summary_path = run_dir / "summary.json"
    if summary_path.is_file():
        summary = _json(summary_path, "run summary")
        if summary is None:
            return 1
        anchor = (summary.get("audit_trail") or {}).get("head") if isinstance(summary.get("audit_trail"), dict) else None
    # The agencies tag their releases with the run folder's name when the run was made; a folder
    # renamed since keeps that id in its spec.
    run_id = Path(spec["run_dir"]).name if spec.get("run_dir") else run_dir.name
    ledger_problems: list[str] = []
    rows = ledger_rows(spec, run_id, ledger_problems, run_dir)
    problems = [*ledger_problems, *verify(trail, rows, anchor=anchor)]  # a lost ledger first: it explains the rest
    if problems:
        for problem in problems:
            print(problem)
        return 1
    entries = sum(1 for _ in trail.open(encoding="utf-8"))
    print(f"{trail}: {entries} entries, chain intact{', anchored by summary.json' if anchor else ''}; matches every agency's ledger")
    return 0
