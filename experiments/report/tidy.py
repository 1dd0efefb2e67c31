"""The tidy tables of a Study: one row per (cell, architecture), per (cell, architecture, agency)
and per deprivation quintile, from each cell's summary.json, config.yaml and metrics.jsonl."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from experiments.report.study import Cell, Study, _get, _num, _read_yaml
from federation import architectures

# --- tidy tables ----------------------------------------------------------------------------------


def _study(kind: str, folder: Path, study_id: str, config_file: str | None, summary: dict, cells: list[Cell], swept: list[str]) -> Study:
    task = str(summary.get("task") or "outcome")
    headline = str(summary.get("headline_metric") or ("pai" if task == "hotspot" else "auc"))
    arch_rows, agency_rows, quintile_rows = [], [], []
    for cell in cells:
        _cell_rows(cell, swept, headline, arch_rows, agency_rows, quintile_rows)
    return Study(
        kind=kind,
        folder=folder,
        study_id=str(study_id),
        config_file=config_file,
        task=task,
        headline=headline,
        swept_keys=swept,
        cells=cells,
        archs=pd.DataFrame(arch_rows),
        agencies=pd.DataFrame(agency_rows),
        quintiles=pd.DataFrame(quintile_rows, columns=["cell", "seed", "facet", "line", "architecture", "is_dp", "eps_budget", "quintile", "flag_share", "true_share", "recorded_share"]),
        privacy_notes=summary.get("privacy") if isinstance(summary.get("privacy"), dict) else {},
    )


def _default_unit(arch: str) -> str | None:
    """The privacy unit the registry gives `arch`, for an older summary.json that does not say."""
    known = architectures.find(arch)
    return known.privacy_unit if known is not None else None


def _is_dp(arch: str, entry: dict) -> bool:
    return entry.get("epsilon_max") is not None or bool(entry.get("privacy_unit")) or _default_unit(arch) is not None


# Swept keys of poisoning studies: they name lines (an aggregator, an attack), not sub-plots, so
# that the clean averaging run stays plain "fedavg" beside central and the others.
POISONING_KEYS = ("federation.aggregator", "federation.trimmed_beta", "federation.krum_malicious", "faults.malicious")


def _facet(values: dict) -> str:
    """Swept keys other than seed, architectures, privacy.* and poisoning: the sub-plot a cell
    belongs to."""
    parts = [f"{k}={_show(v)}" for k, v in sorted(values.items()) if k not in ("seed", "architectures", *POISONING_KEYS) and not k.startswith("privacy.")]
    return ", ".join(parts)


def _line(arch: str, values: dict, dp: bool) -> str:
    """An architecture, with the privacy keys other than ε that it was run with when swept, its
    aggregator when not plain averaging, and the attack it faced (None: unused or clean)."""
    extra = [f"{k}={_show(v)}" for k, v in sorted(values.items()) if dp and k.startswith("privacy.") and k != "privacy.epsilon"]
    if values.get("federation.aggregator") not in (None, "fedavg"):
        extra.append(str(values["federation.aggregator"]))
    extra += [f"{k.split('.')[-1]}={_show(values[k])}" for k in POISONING_KEYS[1:3] if values.get(k) is not None]
    if values.get("faults.malicious") is not None:
        extra.append(f"attacked: {_show(values['faults.malicious'])}")
    return f"{arch} ({', '.join(extra)})" if extra else arch


def _show(value: object) -> str:
    if isinstance(value, dict) and "attack" in value:  # faults.malicious
        return attack_label(value) or "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def attack_label(attack: object) -> str | None:
    """A poisoning attack (faults.malicious) in words, e.g. "scale ×10 by Kingsby Constabulary";
    "none" for a clean run, None when not stated."""
    if attack is None:
        return "none"
    if not isinstance(attack, dict):
        return None
    factor = _num(attack.get("factor"))
    how = {"scale": f"scale ×{factor:g}", "sign_flip": f"sign flip ×{factor:g}", "noise": f"noise σ={factor:g}"}.get(str(attack.get("attack")), str(attack.get("attack")))
    return f"{how} by {attack.get('agency')}"


def _metrics_budgets(folder: Path | None) -> dict[tuple[str, str], float]:
    """(architecture, agency) → the ε budget each agency recorded in metrics.jsonl."""
    out: dict[tuple[str, str], float] = {}
    path = folder / "metrics.jsonl" if folder else None
    if path is None or not path.exists():
        return out
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if '"epsilon_budget"' not in line:
                continue
            try:
                row = json.loads(line)
            except ValueError:
                continue
            budget = _num(row.get("epsilon_budget"))
            if not math.isnan(budget):
                out[(str(row.get("architecture")), str(row.get("agency")))] = budget
    return out


def _budget(arch: str, config: dict, values: dict, agency: str | None = None) -> float:
    """The ε budget the config gave `arch` (and `agency`), NaN when nothing says."""
    privacy = config.get("privacy") if isinstance(config.get("privacy"), dict) else {}
    eps = _num(values.get("privacy.epsilon", privacy.get("epsilon")))
    known = architectures.find(arch)
    if known is not None and known.trainer == "central-dp":  # the coordinator's budget, privacy.central.epsilon
        central = _num(_get(privacy, "central", "epsilon"))
        return central if not math.isnan(central) else eps
    budgets = privacy.get("budgets") if isinstance(privacy.get("budgets"), dict) else {}
    if agency is not None and not math.isnan(_num(budgets.get(agency))):
        return _num(budgets[agency])
    return eps


def _cell_rows(cell: Cell, swept: list[str], headline: str, arch_rows: list, agency_rows: list, quintile_rows: list) -> None:
    summary = cell.summary or {}
    config = _read_yaml(cell.folder / "config.yaml") if cell.folder else {}
    recorded_budgets = _metrics_budgets(cell.folder)
    values = {k: cell.values[k] for k in swept if k in cell.values}
    seed = values.get("seed", config.get("seed"))
    facet = _facet(values)
    bayes = summary.get("bayes_optimal") if isinstance(summary.get("bayes_optimal"), dict) else None
    sizes = {str(a.get("name")): a for a in summary.get("agencies") or [] if isinstance(a, dict)}
    for arch, entry in (summary.get("architectures") or {}).items():
        if not isinstance(entry, dict):
            continue
        dp = _is_dp(arch, entry)
        metrics = entry.get("metrics") or {}
        audit = entry.get("audit") if isinstance(entry.get("audit"), dict) else {}
        fairness = entry.get("fairness") if isinstance(entry.get("fairness"), dict) else {}
        per_agency = entry.get("per_agency") or {}
        ceiling = _num(_get(bayes, "metrics", headline))
        if math.isnan(ceiling) and headline == "pai":
            ceiling = _num(metrics.get("pai_oracle"))  # the ground-truth intensities' PAI
        row = {
            "cell": cell.name,
            "seed": seed,
            "facet": facet,
            "line": _line(arch, values, dp),
            "architecture": arch,
            "is_dp": dp,
            "eps_budget": _budget(arch, config, values) if dp else math.nan,
            "status": entry.get("status"),  # trained | refused | no-replies (None: an older summary)
            "headline": _num(metrics.get(headline)),
            "auc": _num(metrics.get("auc")),
            "epsilon_max": _num(entry.get("epsilon_max")),
            "delta": _num(entry.get("delta")),
            "privacy_unit": entry.get("privacy_unit") or (_default_unit(arch) if dp else None),
            "neighbouring": entry.get("neighbouring"),
            "accountant": entry.get("accountant") or (_get(summary, "privacy", "accountant") if dp else None),
            "records_moved": _num(entry.get("records_moved")),
            "update_bytes": _num(entry.get("update_bytes")),
            "wall_s": _num(entry.get("wall_s")),
            "mia_auc": _num(audit.get("mia_auc")),
            "mia_tpr": _num(audit.get("mia_tpr_at_1pct_fpr")),
            "mia_bound": _num(audit.get("mia_auc_bound")),
            # The white-box canary audit (gradient canaries in the clipped sums) where it ran: the
            # stronger of the two; its ceiling is the most it could show on an ideal mechanism.
            "eps_lower": _num(_get(audit, "whitebox", "epsilon_lower_bound") if isinstance(audit.get("whitebox"), dict) else audit.get("epsilon_lower_bound")),
            "eps_ceiling": _num(_get(audit, "whitebox", "ceiling") if isinstance(audit.get("whitebox"), dict) else audit.get("ceiling")),
            "eps_claimed": _num(audit.get("epsilon_claimed")),
            "disparity": _num(fairness.get("disparity")),
            "ceiling": ceiling,
            "flower_startup_s": _num(summary.get("flower_startup_s")),
            "n_errors": sum(len(p.get("errors") or []) for p in per_agency.values() if isinstance(p, dict)),
            # Poisoning (federated architectures; absent from older summaries).
            "aggregator": entry.get("aggregator"),
            "poisoning": attack_label(entry["attack"]) if "attack" in entry else None,
            "clipping_norm": _num(entry.get("clipping_norm")),
            "setting": _line(arch, {k: v for k, v in values.items() if k not in POISONING_KEYS}, dp),  # the line, attack and aggregator aside
        }
        if dp and math.isnan(row["eps_budget"]):
            row["eps_budget"] = row["eps_claimed"]
        arch_rows.append(row)
        audit_agency = audit.get("per_agency") if isinstance(audit.get("per_agency"), dict) else {}
        for agency, data in per_agency.items():
            if not isinstance(data, dict):
                continue
            size = sizes.get(agency, {})
            errors = [e for e in data.get("errors") or [] if isinstance(e, dict)]
            budget = _num(data.get("epsilon_budget"))
            if math.isnan(budget):
                budget = recorded_budgets.get((arch, agency), _budget(arch, config, values, agency) if dp else math.nan)
            agency_rows.append(
                {
                    "cell": cell.name,
                    "seed": seed,
                    "facet": facet,
                    "line": row["line"],
                    "architecture": arch,
                    "is_dp": dp,
                    "eps_budget": row["eps_budget"],
                    "agency": agency,
                    "n_train": _num(data.get("n_train", size.get("n_train"))),
                    "n_test": _num(data.get("n_test", size.get("n_test"))),
                    "headline": _num((data.get("metrics") or {}).get(headline)),
                    "auc": _num((data.get("metrics") or {}).get("auc")),
                    "epsilon": _num(data.get("epsilon")),  # spent to date (the agency's ledger)
                    "epsilon_this_run": _num(data.get("epsilon_this_run")),
                    "budget": budget,
                    "records_moved": _num(data.get("records_moved")),
                    "update_bytes_sent": _num(data.get("update_bytes_sent")),
                    "updates_sent": _num(data.get("updates_sent")),
                    "n_errors": len(errors),
                    "first_error": f"round {errors[0].get('round')}: {errors[0].get('reason')}" if errors else "",
                    "mia_auc": _num(_get(audit_agency, agency, "mia_auc")),
                    "ceiling": _num(_get(bayes, "per_agency", agency, headline)),
                }
            )
        for q in fairness.get("quintiles") or []:
            if isinstance(q, dict):
                quintile_rows.append(
                    {
                        "cell": cell.name,
                        "seed": seed,
                        "facet": facet,
                        "line": row["line"],
                        "architecture": arch,
                        "is_dp": dp,
                        "eps_budget": row["eps_budget"],
                        "quintile": q.get("quintile"),
                        "flag_share": _num(q.get("flag_share")),
                        "true_share": _num(q.get("true_share")),
                        "recorded_share": _num(q.get("recorded_share")),
                    }
                )
