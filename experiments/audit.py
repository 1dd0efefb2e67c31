"""Privacy audits of a run (`audit: true`, or `peel audit RUN_DIR` afterwards).

- Membership inference on every architecture's final model, per agency: members are the
  agency's training rows, non-members the rows of the same months it held out (only runs made
  with `audit: true` hold rows out).
- A one-run canary audit (Steinke, Nasr & Jagielski 2023) of the DP-SGD mechanism exactly as
  the largest agency runs it (same plan: σ, sampling rate, steps, clipping), trained alone; and
  of plain training as a contrast. Its lower bound on ε must never exceed the claimed ε.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from experiments.config import RECORD_DP
from experiments.runner import RunFolder, model_of
from privacy.audit import canary_audit, dp_trainer, mia_bounds, mia_report, mia_scores, plain_trainer
from privacy.budget import plan_dp
from tasks.seeding import stable_seed

log = logging.getLogger("peel.audit")


class AuditUnavailable(Exception):
    """The run cannot be audited as asked (the message says why)."""


def audit_folder(folder: RunFolder) -> None:
    """Add an `audit` block to every architecture's results (summary.json is written after)."""
    splits = folder.splits
    if any(s.X_holdout is None for s in splits.values()):
        raise AuditUnavailable(
            f"{folder.run_dir}: this run trained on every training-period record (audit was off), so there "
            "are no same-month non-members for a membership attack; re-run with --set audit=true"
        )
    torch.set_num_threads(1)  # small models: threads only add contention
    config = folder.config
    canary = _canary(folder)
    for arch, entry in folder.results.items():
        per_agency = {}
        members, nonmembers = [], []
        for name, split in splits.items():
            model = model_of(folder.models[arch], name)
            inside, outside = mia_scores(model, split.X_train, split.y_train), mia_scores(model, split.X_holdout, split.y_holdout)
            report = mia_report(inside, outside, balance=True, seed=stable_seed(config.seed, name, "mia"))
            per_agency[name] = {"mia_auc": report["auc"], "mia_tpr_at_1pct_fpr": report["tpr_at_1pct_fpr"], "auc_null_sd": report["auc_null_sd"], "n_members": report["n_members"], "n_nonmembers": report["n_nonmembers"]}
            members.append(inside)
            nonmembers.append(outside)
        # Pooled over agencies: one attacker guessing membership across the whole federation.
        pooled = mia_report(np.concatenate(members), np.concatenate(nonmembers), balance=True, seed=config.seed)
        block = {
            "mia_auc": pooled["auc"],
            "mia_tpr_at_1pct_fpr": pooled["tpr_at_1pct_fpr"],
            "mia_auc_null_sd": pooled["auc_null_sd"],
            "mia_auc_max_agency": max(a["mia_auc"] for a in per_agency.values()),
            "per_agency": per_agency,
        }
        # The bound a claimed ε puts on a record-membership attack holds for record-level DP;
        # agency- or area-month-level ε protects a different unit, so no record bound is claimed.
        if entry.get("epsilon_max") is not None and entry.get("privacy_unit") == "record":
            bound = mia_bounds(entry["epsilon_max"], config.privacy.delta)
            block["mia_auc_bound"], block["mia_tpr_bound"] = bound["auc_max"], bound["tpr_at_fpr_max"]
        if arch in RECORD_DP and canary.get("dp"):
            block.update(_canary_fields(canary["dp"]))
        elif arch in ("central", "local", "fedavg") and canary.get("plain"):
            block.update(_canary_fields(canary["plain"]))
        entry["audit"] = block


def _canary_fields(result: dict) -> dict:
    return {
        "epsilon_lower_bound": result["epsilon_lower_bound"],
        "epsilon_claimed": None if not np.isfinite(result["epsilon_claimed"]) else result["epsilon_claimed"],
        "canary": {k: result[k] for k in ("agency", "k", "k_included", "guesses", "correct", "confidence", "violation", "mechanism") if k in result},
    }


def _canary(folder: RunFolder) -> dict:
    """The canary audit on the largest agency's records: its DP-SGD plan if the run has a
    record-level DP architecture, and plain training as the contrast."""
    config, splits = folder.config, folder.splits
    name = max(splits, key=lambda n: len(splits[n].y_train))
    split = splits[name]
    fed, privacy = config.federation, config.privacy
    k = min(config.audit.canaries, len(split.y_train))
    seed = stable_seed(config.seed, name, "canary")
    out = {}
    if any(a in RECORD_DP for a in config.architectures):
        budget = next(a["budget"] for a in folder.federation.agencies if a["name"] == name)
        plan = plan_dp(len(split.y_train), batch_size=fed.batch_size, local_epochs=fed.local_epochs, rounds=fed.rounds, target_epsilon=budget, delta=privacy.delta, max_grad_norm=privacy.max_grad_norm, accountant=privacy.accountant)
        log.info("canary audit: DP-SGD of %s (σ=%.2f, claimed ε=%.2f), %d canaries", name, plan.noise_multiplier, budget, k)
        result = canary_audit(split.X_train, split.y_train, plan, dp_trainer(config.task.hidden, fed.learning_rate), k, seed)
        out["dp"] = {**result, "agency": name, "mechanism": "DP-SGD with the agency's plan, trained alone"}
        if result.get("violation"):
            log.error("canary audit: lower bound %.3f exceeds the claimed ε %.3f — a privacy bug", result["epsilon_lower_bound"], result["epsilon_claimed"])
    if any(a in ("central", "local", "fedavg") for a in config.architectures):
        trainer = plain_trainer(config.task.hidden, epochs=fed.rounds * fed.local_epochs, batch_size=fed.batch_size, lr=fed.learning_rate)
        result = canary_audit(split.X_train, split.y_train, None, trainer, k, seed, delta=privacy.delta)
        out["plain"] = {**result, "agency": name, "mechanism": "plain training (no DP) of the same records"}
    return out
