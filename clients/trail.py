"""The agency's side of the audit trail: before a reply leaves, one hash-chained line saying what
it holds (sizes, a hash of the payload, the DP parameters and ε after this release).

Simulation and loopback deployment share the run folder's `audit.jsonl`; an agency on its own
machine names its own file with `--node-config "audit-path='...'"` (beside its ledger)."""

from __future__ import annotations

from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord

from clients.agency import Agency
from privacy.audit_trail import append, canonical, payload_sha256

DP_KEYS = ("sigma", "sample-rate", "steps", "delta")


def record_reply(agency: Agency, config: ConfigRecord, kind: str, arrays: ArrayRecord | None, metrics: dict, reason: str | None = None) -> None:
    """Append the trail entry of a reply about to leave the agency (`kind`: train-reply,
    evaluate-reply or refusal). With SecAgg+ the payload hashed is the update before masking."""
    chunks = [a.data for a in arrays.values()] if arrays is not None else []
    chunks.append(canonical({k: v for k, v in metrics.items() if v == v}))  # NaN-free metrics
    dp = {k.replace("-", "_"): metrics[k] for k in DP_KEYS if k in metrics} if "epsilon" in metrics else None
    append(
        agency.trail,
        {
            "run": Path(agency.spec["run_dir"]).name,
            "architecture": str(config.get("architecture", "")) or None,
            "round": int(config.get("server-round", 0)),
            "agency": agency.name,
            "type": kind,
            "sizes": {"bytes": sum(len(c) for c in chunks), "num_examples": int(metrics.get("num-examples", 0))},
            "dp": dp,
            "epsilon": metrics.get("epsilon"),
            "payload_sha256": payload_sha256(*chunks),
            **({"reason": reason} if reason else {}),
        },
    )
