"""The agency's DP plan per architecture, kept in its Flower `context.state` so that it persists
across the rounds of a run without re-reading it from disk (clients/releases.py keeps the same
plan durably, for a resumed run; the releases themselves are counted from the ledger)."""

from __future__ import annotations

from flwr.app import ConfigRecord, Context

from privacy.budget import DPPlan


def cached_plan(context: Context, architecture: str) -> DPPlan | None:
    record = context.state.config_records.get(f"dp-plan/{architecture}")
    return DPPlan(**dict(record)) if record is not None else None


def store_plan(context: Context, architecture: str, plan: DPPlan) -> None:
    context.state.config_records[f"dp-plan/{architecture}"] = ConfigRecord(plan.as_dict())
