"""The agency's privacy spend, kept in its Flower `context.state` so that it persists across
the rounds of a run (one history per DP architecture: each architecture is an alternative
world trained on the same records)."""

from __future__ import annotations

from flwr.app import ConfigRecord, Context

from privacy.accounting import Release
from privacy.budget import DPPlan


def _key(architecture: str) -> str:
    return f"dp-history/{architecture}"


def history(context: Context, architecture: str) -> list[Release]:
    record = context.state.config_records.get(_key(architecture))
    if record is None:
        return []
    return list(zip(record["sigma"], record["sample-rate"], record["steps"], strict=True))


def record_release(context: Context, architecture: str, release: Release) -> None:
    """Append a release to the history. Called before the update leaves the agency."""
    past = history(context, architecture) + [release]
    context.state.config_records[_key(architecture)] = ConfigRecord(
        {
            "sigma": [float(r[0]) for r in past],
            "sample-rate": [float(r[1]) for r in past],
            "steps": [int(r[2]) for r in past],
        }
    )


def cached_plan(context: Context, architecture: str) -> DPPlan | None:
    record = context.state.config_records.get(f"dp-plan/{architecture}")
    return DPPlan(**dict(record)) if record is not None else None


def store_plan(context: Context, architecture: str, plan: DPPlan) -> None:
    context.state.config_records[f"dp-plan/{architecture}"] = ConfigRecord(plan.as_dict())
