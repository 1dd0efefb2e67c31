"""What a DP agency keeps beside its ledger so that a crashed and resumed run (`peel run
--resume`) costs it no second release and no uncharged one.

Per run and architecture (`<ledger stem>.releases/<run id>/<architecture>.*.pt`: runs on the
same agencies never overwrite each other's, so a crashed run resumed after another one finds
its own), two files tagged with the run: the DP plan (σ, sampling, steps — fixed before
the first charge, so a resumed run trains with the same noise it planned and was charged for),
written once, and the last update it released, written durably **before** that update leaves
(replacing the previous round's, without reading anything back). When a resumed
coordinator asks again for a round whose update already left, the agency sends the very same
bytes: re-sending a release is free (post-processing), training again would be a second,
differently noised release that the ledger never charged.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import torch
from flwr.app import ArrayRecord

from clients.agency import Agency
from privacy.budget import DPPlan, ReleaseRefused
from privacy.durable import save_durably

_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def _folder_name(name: str) -> str:
    """`name` as one path component that cannot leave its folder (a hash if it could)."""
    return name if _SAFE.fullmatch(name) and ".." not in name else "h-" + hashlib.sha256(name.encode()).hexdigest()[:24]


def _path(agency: Agency, run_id: str, architecture: str, what: str) -> Path:
    # Beside the ledger, named after it: a sweep cell keeps several agencies' ledgers in one folder.
    return agency.ledger.with_name(f"{agency.ledger.stem}.releases") / _folder_name(run_id) / f"{_folder_name(architecture)}.{what}.pt"


def _legacy_path(agency: Agency, architecture: str, what: str) -> Path:
    # Before kept files were per run: one per architecture, the latest run's.
    return agency.ledger.with_name(f"{agency.ledger.stem}.releases") / f"{_folder_name(architecture)}.{what}.pt"


def _read(agency: Agency, run_id: str, architecture: str, what: str) -> dict | None:
    path = _path(agency, run_id, architecture, what)
    if not path.exists():
        path = _legacy_path(agency, architecture, what)  # a run that stopped under the old layout
        if not path.exists():
            return None
    kept = torch.load(path, weights_only=True)
    return kept if kept.get("run_id") == run_id else None  # another run's: not this one's state


def saved_plan(agency: Agency, run_id: str, architecture: str) -> DPPlan | None:
    kept = _read(agency, run_id, architecture, "plan")
    return DPPlan(**kept["plan"]) if kept is not None else None


def save_plan(agency: Agency, run_id: str, architecture: str, plan: DPPlan) -> None:
    """Fix this run's plan for the architecture (before its first charge)."""
    save_durably({"run_id": run_id, "plan": plan.as_dict()}, _path(agency, run_id, architecture, "plan"))


class AlreadyReleased(ReleaseRefused):
    """Asked to train a round older than the last one released: that would be a second,
    uncharged release of a round that already left."""


def released(agency: Agency, run_id: str, architecture: str, server_round: int) -> tuple[ArrayRecord, dict] | None:
    """The update (and metrics) this agency already sent for this round of this run, if any.
    Raises AlreadyReleased for a round before the last one it sent."""
    kept = _read(agency, run_id, architecture, "release")
    if kept is None or kept["round"] < server_round:
        return None
    if kept["round"] > server_round:
        raise AlreadyReleased(f"round {server_round} of {architecture} in run {run_id} was released before round {kept['round']}; refusing to release it again")
    return ArrayRecord(kept["state_dict"]), dict(kept["metrics"])


def keep_release(agency: Agency, run_id: str, architecture: str, server_round: int, arrays: ArrayRecord, metrics: dict) -> None:
    """Durably keep the update about to leave (replacing the previous round's); its plan must
    have been kept first."""
    if not _path(agency, run_id, architecture, "plan").exists() and _read(agency, run_id, architecture, "plan") is None:
        raise RuntimeError(f"{agency.name}: no DP plan kept for {architecture} of run {run_id}")
    save_durably({"run_id": run_id, "round": server_round, "state_dict": arrays.to_torch_state_dict(), "metrics": dict(metrics)}, _path(agency, run_id, architecture, "release"))
