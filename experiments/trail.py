"""`peel audit verify RUN_DIR`: check a run's hash-chained audit trail, anchored by the head
stored in its summary, and cross-check it against every agency's budget ledger."""

from __future__ import annotations

import json
from pathlib import Path

from privacy.audit_trail import verify
from privacy.ledger import Ledger, LedgerError


def ledger_rows(spec: dict, run_id: str) -> list[dict]:
    """This run's releases as each agency's ledger recorded them."""
    rows = []
    for agency in spec["agencies"]:
        path = Path(agency["ledger"])
        if not path.is_file():
            continue
        try:
            with Ledger.inspect(path) as ledger:
                for row in ledger.rows():
                    if row["run_id"] == run_id:
                        rows.append({"run": run_id, "architecture": row["architecture"], "round": row["round"], "agency": agency["name"], "epsilon": row["epsilon_after"]})
        except LedgerError as exc:
            rows.append({"run": run_id, "architecture": None, "round": -1, "agency": agency["name"], "epsilon": None, "error": str(exc)})
    return rows


def verify_run(run_dir: Path) -> int:
    """Print what is wrong (first bad line named) and return 1, or print OK and return 0."""
    trail = run_dir / "audit.jsonl"
    if not trail.is_file():
        print(f"peel: {trail}: no audit trail (runs before the trail existed, or not a run folder)")
        return 2
    spec = json.loads((run_dir / "federation.json").read_text(encoding="utf-8"))
    summary_path = run_dir / "summary.json"
    anchor = None
    if summary_path.is_file():
        anchor = (json.loads(summary_path.read_text(encoding="utf-8")).get("audit_trail") or {}).get("head")
    problems = verify(trail, ledger_rows(spec, run_dir.name), anchor=anchor)
    if problems:
        for problem in problems:
            print(problem)
        return 1
    entries = sum(1 for _ in trail.open(encoding="utf-8"))
    print(f"{trail}: {entries} entries, chain intact{', anchored by summary.json' if anchor else ''}; matches every agency's ledger")
    return 0
