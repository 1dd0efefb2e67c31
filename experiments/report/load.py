"""Read a run folder or a sweep folder into tidy tables that every part of the report draws from.

A run is treated as a sweep of one cell, so plots, tables and the reading have one code path.
Everything optional in summary.json (audit, fairness, Bayes ceiling, privacy unit, per-agency
records moved) may be absent: the tables then hold NaN/None and the report says "not measured".
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from federation import architectures

# The score a model with no information reaches (random ranking / random flagging).
CHANCE = {"auc": 0.5, "pai": 1.0}
LABELS = {"auc": "AUC", "pai": "PAI", "pei": "PEI", "hit_rate": "hit rate", "accuracy": "accuracy"}
METRIC_COLUMNS = ("auc", "accuracy", "f1", "log_loss", "brier", "hit_rate", "pai", "pei")
BAYES = "bayes-optimal"


class ReportError(Exception):
    """A folder that cannot be reported on; the message is one line naming the file."""


@dataclass
class Cell:
    name: str
    folder: Path | None  # the cell's run folder (None: only sweep.csv rows)
    values: dict
    status: str
    summary: dict | None
    source: str  # which file the cell's numbers come from


@dataclass
class Study:
    kind: str  # "run" or "sweep"
    folder: Path
    study_id: str
    config_file: str | None
    task: str
    headline: str
    swept_keys: list[str]
    cells: list[Cell]
    archs: pd.DataFrame  # one row per (cell, architecture)
    agencies: pd.DataFrame  # one row per (cell, architecture, agency)
    quintiles: pd.DataFrame  # one row per (cell, architecture, deprivation quintile)
    privacy_notes: dict = field(default_factory=dict)
    sources: list[tuple[str, str]] = field(default_factory=list)  # (file, what the report took from it)
    missing: list[str] = field(default_factory=list)  # cells listed but without results

    @property
    def chance(self) -> float | None:
        return CHANCE.get(self.headline)

    @property
    def headline_label(self) -> str:
        return LABELS.get(self.headline, self.headline)


def load(folder: Path) -> Study:
    """The study in `folder`: a sweep if it holds sweep.json, a run if it holds summary.json."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ReportError(f"{folder}: no such folder (give a run folder runs/<id> or a sweep folder)")
    if (folder / "sweep.json").exists():
        return _load_sweep(folder)
    if (folder / "summary.json").exists():
        return _load_run(folder)
    raise ReportError(f"{folder}: neither summary.json (a run folder) nor sweep.json (a sweep folder) is in it")


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: cannot be read as JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object")
    return data


def _read_yaml(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ReportError(f"{path}: cannot be read as YAML ({exc})") from None
    return data if isinstance(data, dict) else {}


def _num(value: object) -> float:
    """A number or NaN (None, strings, booleans and non-finite values become NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value) if math.isfinite(value) else math.nan


def _get(data: dict | None, *path: str) -> object:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


# --- runs -----------------------------------------------------------------------------------------


def _load_run(folder: Path) -> Study:
    summary = _read_json(folder / "summary.json")
    if not isinstance(summary.get("architectures"), dict) or not summary["architectures"]:
        raise ReportError(f"{folder / 'summary.json'}: lists no architectures (is the run finished?)")
    cell = Cell(name=summary.get("run_id") or folder.name, folder=folder, values={}, status="done", summary=summary, source="summary.json")
    study = _study("run", folder, summary.get("run_id") or folder.name, summary.get("config_file"), summary, [cell], [])
    study.sources = [
        ("summary.json", "every metric, ε, attack, fairness, records and bytes moved, wall time"),
        ("config.yaml", "the ε budgets (privacy.epsilon, privacy.budgets, privacy.central.epsilon) and the seed"),
        ("metrics.jsonl", "each agency's ε budget as it recorded it (epsilon_budget), where present"),
    ]
    if summary.get("config_file"):
        study.sources.append((str(summary["config_file"]), "the experiment config the run was started with"))
    return study


# --- sweeps ---------------------------------------------------------------------------------------


def _load_sweep(folder: Path) -> Study:
    spec = _read_json(folder / "sweep.json")
    swept = [str(k) for k in spec.get("swept_keys") or []]
    csv_rows = _read_csv(folder / "sweep.csv")
    cells, missing = [], []
    for entry in spec.get("cells") or []:
        name = str(entry.get("cell"))
        run_dir = _cell_folder(folder, name, entry.get("run_dir"))
        summary, source = None, ""
        if run_dir is not None and (run_dir / "summary.json").exists():
            summary, source = _read_json(run_dir / "summary.json"), _rel(run_dir / "summary.json", folder)
        elif csv_rows is not None and name in set(csv_rows["cell"].astype(str)):
            summary, source = _summary_from_csv(csv_rows[csv_rows["cell"].astype(str) == name]), "sweep.csv"
        if summary is None or not summary.get("architectures"):
            missing.append(f"{name} ({entry.get('status') or 'no results'})")
            continue
        cells.append(Cell(name, run_dir, dict(entry.get("values") or {}), str(entry.get("status") or ""), summary, source))
    if not cells:
        raise ReportError(f"{folder / 'sweep.json'}: no cell has results yet (neither cells/<cell>/summary.json nor rows in sweep.csv)")
    first = cells[0].summary
    study = _study("sweep", folder, spec.get("sweep_id") or folder.name, spec.get("config_file"), first, cells, swept)
    study.missing = missing
    study.sources = [
        ("sweep.json", "the cells and the values of the swept keys in each"),
        ("cells/<cell>/summary.json", "each cell's metrics, ε, attack, fairness, records and bytes moved, wall time"),
        ("cells/<cell>/config.yaml", "each cell's ε budgets and seed"),
        ("sweep.csv", "a cell's numbers when its summary.json is absent (overall = test-weighted mean of its agencies)"),
    ]
    if spec.get("config_file"):
        study.sources.append((str(spec["config_file"]), "the sweep config"))
    return study


def _rel(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


def _cell_folder(sweep_dir: Path, name: str, run_dir: object) -> Path | None:
    candidates = [sweep_dir / "cells" / name]
    if run_dir:
        run_path = Path(str(run_dir))
        candidates += [run_path] if run_path.is_absolute() else [sweep_dir / run_path, run_path]
    return next((c for c in candidates if c.is_dir()), None)


def _read_csv(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    try:
        return pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: cannot be read as CSV ({exc})") from None


def _summary_from_csv(rows: pd.DataFrame) -> dict:
    """A summary.json-shaped dict from one cell's sweep.csv rows: per-agency values as given,
    overall metrics as the test-weighted mean of the agencies (how summary.json defines them)."""

    def value(row: pd.Series, key: str) -> object:
        v = row.get(key)
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else (v.item() if hasattr(v, "item") else v)

    archs, bayes = {}, None
    for arch, group in rows.groupby("architecture", sort=False):
        per_agency = {}
        for _, row in group.iterrows():
            per_agency[str(row["agency"])] = {
                "metrics": {k: value(row, k) for k in METRIC_COLUMNS if k in row.index},
                "epsilon": value(row, "epsilon"),
                "n_train": value(row, "n_train"),
                "n_test": value(row, "n_test"),
                "records_moved": value(row, "records_moved"),
                "update_bytes_sent": value(row, "update_bytes_sent"),
            }
        overall = _weighted({a: p["metrics"] for a, p in per_agency.items()}, {a: p["n_test"] or 0 for a, p in per_agency.items()})
        if arch == BAYES:
            bayes = {"metrics": overall, "per_agency": {a: p["metrics"] for a, p in per_agency.items()}}
            continue
        eps = [p["epsilon"] for p in per_agency.values() if p["epsilon"] is not None]
        walls = [value(r, "wall_s") for _, r in group.iterrows() if value(r, "wall_s") is not None]
        archs[str(arch)] = {
            "metrics": overall,
            "per_agency": per_agency,
            "epsilon_max": max(eps) if eps else None,
            "records_moved": sum(p["records_moved"] or 0 for p in per_agency.values()),
            "update_bytes": sum(p["update_bytes_sent"] or 0 for p in per_agency.values()),
            "wall_s": walls[0] if walls else None,
        }
    agencies = rows[rows["architecture"] != BAYES].drop_duplicates("agency")
    return {
        "architectures": archs,
        "bayes_optimal": bayes,
        "agencies": [{"name": str(r["agency"]), "n_train": value(r, "n_train"), "n_test": value(r, "n_test")} for _, r in agencies.iterrows()],
    }


def _weighted(per_agency: dict[str, dict], weights: dict[str, float]) -> dict:
    out = {}
    keys = {k for m in per_agency.values() for k in m}
    for key in keys:
        pairs = [(m[key], weights[a]) for a, m in per_agency.items() if m.get(key) is not None and weights[a] > 0]
        total = sum(w for _, w in pairs)
        out[key] = sum(v * w for v, w in pairs) / total if total else None
    return out


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
