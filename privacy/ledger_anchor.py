"""A ledger's anchor: a small file beside it (`<stem>.anchor.json`) recording its creation id,
release count, the hash-chain head of its releases and the releases themselves (run-length
coded), rewritten after every change, so that a ledger that disappears, is emptied, replaced or
cut back is refused (LedgerLost) instead of starting over. See privacy/ledger.py."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from privacy.durable import replace_durably
from privacy.ledger_schema import DEFAULT_MECHANISM, Budget, LedgerError, LedgerLost, utc_now

ANCHOR_SUFFIX = ".anchor.json"  # `<ledger stem>.anchor.json`, beside the ledger
ANCHOR_FORMAT = "peel-ledger-anchor"
GENESIS = "0" * 64


def anchor_path(ledger: Path | str) -> Path:
    """The anchor file of a ledger: `<stem>.anchor.json` beside it."""
    ledger = Path(ledger)
    return ledger.with_name(ledger.stem + ANCHOR_SUFFIX)


def ledger_of_anchor(anchor: Path | str) -> Path:
    """The ledger file an anchor stands for (its name is recorded inside; the default one's
    otherwise)."""
    anchor = Path(anchor)
    try:
        name = json.loads(anchor.read_text(encoding="utf-8")).get("ledger")
    except (OSError, ValueError, AttributeError):
        name = None
    if not isinstance(name, str) or "/" in name or name in ("", ".", ".."):
        name = anchor.name[: -len(ANCHOR_SUFFIX)] + ".sqlite"
    return anchor.with_name(name)


def chain_head(rows: Sequence[dict[str, Any]]) -> str:
    """Hash chain over release rows, oldest first: what an anchor pins."""
    head = GENESIS
    for r in rows:
        fields = [
            r["id"], r["run_id"], r["architecture"], r["round"], float(r["sigma"]), float(r["sample_rate"]), r["steps"],
            float(r["delta"]), r["accountant"], r.get("mechanism", DEFAULT_MECHANISM), r["recorded_at"],
        ]
        if r.get("kind") is not None:  # rows without a kind hash as they did before kinds were stored
            fields += [r["kind"], float(r["sensitivity"])]
        head = hashlib.sha256((head + json.dumps(fields, ensure_ascii=True, separators=(",", ":"))).encode()).hexdigest()
    return head


def run_length(rows: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """Releases run-length coded: [[σ, q, steps, mechanism, count], ...] in order, with
    [..., count, kind, sensitivity] for a release that has a kind (privacy/mechanisms.py)."""
    coded: list[list[Any]] = []
    for r in rows:
        key = [float(r["sigma"]), float(r["sample_rate"]), int(r["steps"]), r.get("mechanism", DEFAULT_MECHANISM)]
        kind = [r["kind"], float(r["sensitivity"])] if r.get("kind") is not None else []
        if coded and coded[-1][:4] == key and coded[-1][5:] == kind:
            coded[-1][4] += 1
        else:
            coded.append([*key, 1, *kind])
    return coded


def decode_history(history: Sequence[Sequence[Any]]) -> list[tuple[float, float, int, str, int, str | None, float | None]]:
    """An anchor's run-length coded releases: (σ, q, steps, mechanism, count, kind, sensitivity)."""
    decoded: list[tuple[float, float, int, str, int, str | None, float | None]] = []
    for entry in history:
        if len(entry) not in (5, 7):
            raise ValueError(f"a release entry of {len(entry)} fields")
        kind = str(entry[5]) if len(entry) == 7 else None
        sens = float(entry[6]) if len(entry) == 7 else None
        decoded.append((float(entry[0]), float(entry[1]), int(entry[2]), str(entry[3]), int(entry[4]), kind, sens))
    return decoded


def read_anchor(path: Path) -> dict[str, Any] | None:
    anchor = anchor_path(path)
    try:
        data = anchor.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LedgerError(f"{anchor}: unreadable ledger anchor ({exc.strerror})") from None
    try:
        found = json.loads(data)
        if not isinstance(found, dict) or found.get("format") != ANCHOR_FORMAT:
            raise ValueError("not a ledger anchor")
        releases, head = int(found["releases"]), str(found["head"])
        coded = decode_history(found["history"])
        if releases < 0 or sum(c[4] for c in coded) != releases or not 0 <= int(found["counted_from"]) <= releases or len(head) != 64:
            raise ValueError("its figures do not add up")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LedgerError(f"{anchor}: corrupt ledger anchor ({exc}); restore it or the ledger's backup") from None
    return found


def lost(path: Path, anchor: dict[str, Any], what: str) -> LedgerLost:
    agency = anchor.get("agency")
    return LedgerLost(
        f"{path}: ledger {what}; its anchor {anchor_path(path).name} records {anchor['releases']} releases of "
        f"{agency!r} (δ={anchor.get('delta')}). Restore the ledger file, or re-initialise it with "
        f"`peel budget reinit {path} --reason TEXT --yes` (its anchored spend is carried over)",
        what,
    )


def anchor_state(path: Path, agency: str, rows: Sequence[dict[str, Any]], meta: dict[str, str], budget: Budget | None) -> dict[str, Any]:
    """What the anchor of the ledger at `path` records, from one consistent read of its rows,
    meta and budget."""
    pinned = meta.get("delta")
    return {
        "format": ANCHOR_FORMAT,
        "agency": agency,
        "ledger": path.name,
        "ledger_id": meta.get("ledger_id"),
        "releases": len(rows),
        "counted_from": sum(1 for r in rows if not r["counted"]),
        "head": chain_head(rows),
        "delta": float(pinned) if pinned is not None else None,
        # The neighbouring relation the first charge pinned (None before it): a re-initialised
        # ledger must account its carried releases, and refuse later charges, under the same one.
        "neighbouring": meta.get("neighbouring"),
        "budget": {"epsilon": budget.epsilon, "delta": budget.delta} if budget else None,
        "history": run_length(rows),
        "updated_at": utc_now(),
    }


def write_anchor(path: Path, state: dict[str, Any], *, only_if_stale: bool = False) -> None:
    """Write the anchor of the ledger at `path` atomically; never replace an anchor of this
    ledger that records more releases (a concurrent writer's newer one)."""
    try:
        current = read_anchor(path)
    except LedgerError:
        current = None
    if current is not None and current.get("ledger_id") == state["ledger_id"]:
        if int(current["releases"]) > state["releases"]:
            return
        if only_if_stale and (current["releases"], current["head"], current["counted_from"], current.get("budget"), current.get("delta")) == (
            state["releases"], state["head"], state["counted_from"], state["budget"], state["delta"]
        ):
            return
    elif only_if_stale and current is None and state["releases"] == 0 and state["budget"] is None:
        return  # nothing to protect yet: no file written by merely opening
    data = json.dumps(state, indent=1, ensure_ascii=False).encode()
    try:
        replace_durably(anchor_path(path), data, private_tmp=True)
    except OSError as exc:
        raise LedgerError(f"{anchor_path(path)}: cannot write the ledger's anchor ({exc.strerror})") from None


def check_anchor(path: Path, agency: str, meta: dict[str, str], rows: Sequence[dict[str, Any]], anchor: dict[str, Any]) -> None:
    """LedgerLost unless the ledger at `path` (its agency, meta and release rows) is the one its
    anchor records, holding at least the anchored releases."""
    if anchor.get("agency") != agency:
        raise lost(path, anchor, f"replaced: it is a ledger of {agency!r}")
    if anchor.get("ledger_id") is not None and meta.get("ledger_id") != anchor.get("ledger_id"):
        raise lost(path, anchor, f"replaced: another ledger file (creation id {meta.get('ledger_id')}, anchored {anchor.get('ledger_id')})")
    n = int(anchor["releases"])
    if len(rows) < n:
        raise lost(path, anchor, f"cut back: it holds {len(rows)} releases, fewer than anchored (an older copy, or rows lost)")
    if chain_head(rows[:n]) != anchor["head"]:
        raise lost(path, anchor, f"altered: its first {n} releases are not the anchored ones (hash chain differs)")
