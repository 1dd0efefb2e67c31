"""The agency's side of the audit trail: before a reply leaves, one hash-chained line saying what
it holds (the names of its fields, sizes, a hash of the payload, the DP parameters and ε after
this release).

Simulation and loopback deployment share the run folder's `audit.jsonl`; an agency on its own
machine names its own file with `--node-config "audit-path='...'"` (beside its ledger)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from flwr.app import ArrayRecord, ConfigRecord

from clients.agency import Agency
from federation import contract
from privacy.audit_trail import append, canonical, payload_sha256

DP_KEYS = (contract.SIGMA, contract.SAMPLE_RATE, contract.STEPS, contract.DELTA)


def record_reply(
    agency: Agency,
    config: ConfigRecord | Mapping[str, object],
    kind: str,
    arrays: ArrayRecord | None,
    metrics: Mapping[str, object],
    reason: str | None = None,
    *,
    fields: Sequence[str] = (),
) -> None:
    """Append the trail entry of a reply about to leave the agency (`kind`: a message of
    federation.contract, or `count-release`). With SecAgg+ the payload hashed is the update
    before masking. `fields`: the names of the fields the message carries."""
    chunks = [a.data for a in arrays.values()] if arrays is not None else []
    chunks.append(canonical({k: v for k, v in metrics.items() if v == v}))  # NaN-free metrics
    spent = metrics.get(contract.EPSILON_SPENT_TO_DATE)
    dp = {k.replace("-", "_"): metrics[k] for k in DP_KEYS if k in metrics} if spent is not None else None
    append(
        agency.trail,
        {
            "run": agency.spec.run_id,
            "architecture": str(config.get("architecture", "")) or None,
            "round": int(config.get("server-round", 0)),  # type: ignore[call-overload]
            "agency": agency.name,
            "type": kind,
            "fields": sorted(fields),
            "sizes": {"bytes": sum(len(c) for c in chunks), "num_examples": int(metrics.get(contract.NUM_EXAMPLES, 0))},  # type: ignore[call-overload]
            "dp": dp,
            "epsilon": spent,
            "payload_sha256": payload_sha256(*chunks),
            **({"reason": reason} if reason else {}),
        },
    )
