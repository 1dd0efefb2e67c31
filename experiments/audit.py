"""Privacy audits of a run (`audit: true`, or `peel audit RUN_DIR` afterwards).

- Membership inference on every architecture's final model, per agency: members are the
  agency's training rows, non-members the rows of the same months it held out (only runs made
  with `audit: true` hold rows out).
- Per record-level DP architecture, two one-run canary audits (Steinke, Nasr & Jagielski 2023)
  of the largest agency's DP-SGD exactly as it ran: its own plan as it kept it
  (`clients.releases.saved_plan`: σ, sampling rate, steps, C), the function its ClientApp calls
  (`privacy.dpsgd.train_dp`), as many rounds as its ledger charged, from the run's initial model,
  trained alone. The claim is what its ledger charged for those releases. The black-box audit
  plants records and reads the final model; the white-box one plants gradient canaries in the
  clipped sums and reads every step (`privacy.audit.whitebox`). Plain training is audited as a
  contrast. A lower bound above the claimed ε is a privacy bug; each bound is stored with its
  `ceiling`, the most that audit could be expected to show at the claimed ε, so that a low bound
  is not read as proof of privacy.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
from flwr.app import Context, RecordDict

from clients.agency import Agency, locate
from clients.releases import saved_plan
from experiments.run_folder import RunFolder, model_of
from federation import architectures
from privacy.accounting import epsilon as accountant_epsilon
from privacy.audit import canary_audit, dp_trainer, mia_bounds, mia_report, mia_scores, plain_trainer
from privacy.audit.whitebox import whitebox_audit
from privacy.budget import DPPlan
from privacy.ledger import Ledger, LedgerError
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
        if architectures.is_record_dp(arch):
            if arch in canary["dp"]:
                block.update(_canary_fields(canary["dp"][arch]))
            else:
                block["canary_unavailable"] = canary["unavailable"].get(arch, "no DP release of this architecture to audit")
        elif not architectures.get(arch).dp and canary.get("plain"):  # no DP: the plain contrast
            block.update(_canary_fields(canary["plain"]))
        entry["audit"] = block


def _canary_fields(result: dict) -> dict:
    """The audit block's canary fields: the black-box bound at the top level (as before) with its
    `ceiling`, details under `canary`, the white-box audit (when run) under `whitebox`."""
    claimed = result["epsilon_claimed"]
    out = {
        "epsilon_lower_bound": result["epsilon_lower_bound"],
        "ceiling": result["ceiling"],
        "epsilon_claimed": claimed if math.isfinite(claimed) else None,
        "canary": {k: result[k] for k in ("agency", "k", "k_included", "guesses", "correct", "confidence", "violation", "mechanism", "rounds") if k in result},
    }
    if "whitebox" in result:
        wb = result["whitebox"]
        out["whitebox"] = {
            "epsilon_lower_bound": wb["epsilon_lower_bound"],
            "ceiling": wb["ceiling"],
            "epsilon_claimed": wb["epsilon_claimed"],
            **{k: wb[k] for k in ("violation", "agency", "k", "k_included", "guesses", "correct", "score", "confidence", "steps", "raw_norm", "mechanism") if k in wb},
        }
    return out


def _agency(folder: RunFolder, index: int) -> Agency:
    """Agency number `index` of the run's spec, found the way its ClientApp finds itself."""
    context = Context(run_id=0, node_id=0, node_config={"partition-id": index}, state=RecordDict(), run_config={"peel-spec": str(folder.spec_path)})
    return locate(context)


def _charged(agency: Agency, run_id: str, architecture: str) -> list[tuple[float, float, int]]:
    """The DP-SGD releases this agency's ledger charged for `architecture` in this run, one per
    round (a round charged twice by a retried attempt is one release)."""
    if not agency.ledger.is_file():
        return []
    try:
        with Ledger.inspect(agency.ledger) as ledger:
            rows = ledger.rows()
    except LedgerError as exc:
        log.warning("canary audit: cannot read %s's ledger (%s)", agency.name, exc)
        return []
    per_round = {r["round"]: (float(r["sigma"]), float(r["sample_rate"]), int(r["steps"])) for r in rows if (r["run_id"], r["architecture"]) == (run_id, architecture)}
    return [per_round[k] for k in sorted(per_round)]


def _audited_agency(folder: RunFolder, architecture: str) -> tuple[Agency, DPPlan, list] | str:
    """The largest agency that trained `architecture` with DP in this run: its plan and charged
    releases; or why there is none."""
    run_id, splits = folder.run_dir.name, folder.splits
    order = sorted(range(len(folder.federation.agencies)), key=lambda i: -len(splits[folder.federation.agencies[i]["name"]].y_train))
    for i in order:
        agency = _agency(folder, i)
        plan, charged = saved_plan(agency, run_id, architecture), _charged(agency, run_id, architecture)
        if plan is not None and charged:
            if any(release != plan.release for release in charged):
                log.warning("canary audit: %s's ledger charged releases other than its kept plan for %s; auditing the plan", agency.name, architecture)
            return agency, plan, charged
    return f"no agency kept a DP plan and charged a release for {architecture} in run {run_id} (refused, or trained on another machine)"


def _canary(folder: RunFolder) -> dict:
    """The canary audits: per record-level DP architecture of the run, black-box and white-box on
    the largest agency that trained it; plain training as the contrast."""
    config, splits = folder.config, folder.splits
    fed = config.federation
    out: dict = {"dp": {}, "unavailable": {}}
    for arch in (a for a in config.architectures if architectures.is_record_dp(a)):
        found = _audited_agency(folder, arch)
        if isinstance(found, str):
            log.warning("canary audit of %s: %s", arch, found)
            out["unavailable"][arch] = found
            continue
        agency, plan, charged = found
        split = splits[agency.name]
        # Add/remove neighbours: a canary is in or out, so that is the relation the audit tests.
        claimed = float(accountant_epsilon(charged, plan.delta, plan.accountant))
        k = min(config.audit.canaries, len(split.y_train))
        seed = stable_seed(config.seed, agency.name, "canary")
        log.info("canary audits of %s: %s's plan (σ=%.2f, q=%.4f, %d steps × %d rounds, C=%g), claimed ε=%.3f, %d canaries", arch, agency.name, plan.noise_multiplier, plan.sample_rate, plan.steps_per_round, len(charged), plan.max_grad_norm, claimed, k)
        trainer = dp_trainer(config.task.hidden, fed.learning_rate, initial_model=folder.new_model, rounds=len(charged))
        result = canary_audit(split.X_train, split.y_train, plan, trainer, k, seed, epsilon_claimed=claimed)
        result.update(agency=agency.name, rounds=len(charged), mechanism="the agency's DP-SGD (train_dp) with its kept plan, trained alone; final model read")
        wb = whitebox_audit(split.X_train, split.y_train, plan, initial_model=folder.new_model, lr=fed.learning_rate, rounds=len(charged), k=k, seed=seed, epsilon_claimed=claimed)
        wb.update(agency=agency.name, mechanism="gradient canaries in the agency's clipped sums (train_dp, its kept plan); every step's noisy gradient read")
        result["whitebox"] = wb
        for label, r in (("black-box", result), ("white-box", wb)):
            log.info("canary audit of %s (%s): ε lower bound %.3f, ceiling %.3f at the claimed ε %.3f", arch, label, r["epsilon_lower_bound"], r["ceiling"], claimed)
            if r["violation"]:
                log.error("canary audit of %s (%s): lower bound %.3f exceeds the claimed ε %.3f — a privacy bug", arch, label, r["epsilon_lower_bound"], claimed)
        out["dp"][arch] = result
    if any(not architectures.get(a).dp for a in config.architectures):
        name = max(splits, key=lambda n: len(splits[n].y_train))
        split = splits[name]
        k = min(config.audit.canaries, len(split.y_train))
        trainer = plain_trainer(config.task.hidden, epochs=fed.rounds * fed.local_epochs, batch_size=fed.batch_size, lr=fed.learning_rate)
        result = canary_audit(split.X_train, split.y_train, None, trainer, k, stable_seed(config.seed, name, "canary"), delta=config.privacy.delta)
        out["plain"] = {**result, "agency": name, "mechanism": "plain training (no DP) of the same records"}
    return out
