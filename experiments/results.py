"""Results files of a run: atomic writes, metrics.jsonl rows, summary.json, the end table."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

from federation import architectures
from privacy.durable import replace_durably

METRIC_KEYS = ("auc", "accuracy", "f1", "log_loss", "brier")
# The hotspot task's crime-analyst metrics, reported when present.
HOTSPOT_KEYS = ("hit_rate", "pai", "pei", "pai_oracle", "pai_hindsight", "flagged_share")


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file."""
    replace_durably(path, text, sync=False)


def write_json(path: Path, data: object) -> None:
    write_atomic(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def append_rows(path: Path, rows: Iterable[dict]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(row) + "\n" for row in rows))


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def metric_values(metrics: dict) -> dict:
    """The reported metrics (METRIC_KEYS) as JSON-safe values: None for undefined or NaN."""
    out = {}
    for key in METRIC_KEYS + tuple(k for k in HOTSPOT_KEYS if k in metrics):
        value = metrics.get(key)
        out[key] = None if isinstance(value, float) and math.isnan(value) else value
    return out


def per_agency_from_rows(rows: list[dict], architecture: str, agencies: list[str]) -> dict[str, dict]:
    """For a federated architecture: each agency's metrics after the last round it was
    evaluated, its privacy figures as its own replies stated them (ε this run, ε spent to date
    from its ledger, budget, pinned δ), updates sent and refusals. Every agency gets an entry,
    also one that never answered."""
    out = {name: {"metrics": None, "epsilon": None, "updates_sent": 0, "errors": []} for name in agencies}
    for row in sorted((r for r in rows if r["architecture"] == architecture), key=lambda r: r["round"]):
        if row["agency"] not in out:  # a node that never named its agency: nothing to attribute
            continue
        entry = out[row["agency"]]
        if "auc" in row:
            entry["metrics"] = metric_values(row)
            entry["n_test"] = row.get("n_test")
        if "train_error" in row:
            entry["errors"].append({"round": row["round"], "reason": row["train_error"]})
        elif "n_train" in row:
            entry["updates_sent"] += 1
            entry["n_train"] = row["n_train"]
        if row.get("epsilon_spent_to_date") is not None:
            # ε never decreases: the largest each figure reached is the one after the last release.
            for key in ("epsilon_spent_to_date", "epsilon_this_run"):
                entry[key] = max(entry.get(key) or 0.0, row[key])
            entry["epsilon_budget"] = row.get("epsilon_budget")
            entry["delta"] = row.get("delta")
            entry["epsilon"] = entry["epsilon_spent_to_date"]
    return out


def format_table(summary: dict) -> str:
    """Per-agency AUC side by side for every architecture (smallest agency first), then one line
    per architecture."""
    archs = list(summary["architectures"])
    bayes = summary.get("bayes_optimal")
    key = summary.get("headline_metric", "auc")
    label = key.upper()
    agencies = sorted(summary["agencies"], key=lambda a: a["n_train"])
    head = ["agency", "n_train"] + [f"{a} {label}" for a in archs]
    dp_arch = next((a for a in architectures.record_dp() if a in archs), None)
    if dp_arch:
        head.append(f"{dp_arch} ε this run / spent to date / budget")
    if bayes:
        head.append(f"{'Bayes' if key == 'auc' else 'oracle'} {label}")
    lines = [head]

    def fmt(value: float | None, digits: int = 3) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    for agency in agencies:
        name = agency["name"]
        row = [name + (" (small test set)" if agency.get("small_test_set") else ""), str(agency["n_train"])]
        for arch in archs:
            row.append(fmt((summary["architectures"][arch]["per_agency"][name]["metrics"] or {}).get(key)))
        if dp_arch:
            row.append(_epsilons(summary["architectures"][dp_arch]["per_agency"][name], agency.get("budget")))
        if bayes:
            row.append(fmt(bayes["per_agency"][name].get(key)))
        lines.append(row)
    total = ["all (test-weighted)", str(sum(a["n_train"] for a in agencies))]
    total += [fmt(summary["architectures"][a]["metrics"].get(key)) for a in archs]
    if dp_arch:
        entry = summary["architectures"][dp_arch]
        total.append(f"max {fmt(entry.get('epsilon_this_run_max'), 2)} / {fmt(entry.get('epsilon_spent_to_date_max'), 2)}")
    if bayes:
        total.append(fmt(bayes["metrics"].get(key)))
    lines.append(total)
    text = _grid(lines, rules=(1, len(lines) - 1))

    arch_head = ["architecture"] + ([label] if key != "auc" else []) + ["AUC", "accuracy", "log loss", "ε spent to date, max", "records moved", "update MB sent", "wall s"]
    arch_lines = [arch_head]
    for arch in archs:
        entry = summary["architectures"][arch]
        m = entry["metrics"]
        arch_lines.append(
            [arch]
            + ([fmt(m.get(key))] if key != "auc" else [])
            + [
                fmt(m.get("auc")),
                fmt(m.get("accuracy")),
                fmt(m.get("log_loss")),
                _privacy_cell(entry),
                str(entry["records_moved"]),
                f"{entry['update_bytes'] / 1e6:.2f}",
                f"{entry['wall_s']:.1f}",
            ]
        )
    from experiments.reference import end_table_rows  # imports this module

    reference_rows, reference_footer = end_table_rows(summary) if key == "auc" else ([], [])
    arch_lines += reference_rows
    footer = reference_footer + [f"warning: {w}" for w in summary.get("warnings") or []]
    footer += _below_chance_notes(summary, archs, len(agencies))
    hotspot_sentence = (summary.get("hotspot_baselines") or {}).get("sentence")
    if hotspot_sentence:  # the hotspot task's answer: do the models beat the analysts' baselines?
        footer.append(f"hotspot baselines: {hotspot_sentence}")
    for arch in archs:
        incident = [a["epsilon_per_incident"]["epsilon"] for a in summary["architectures"][arch]["per_agency"].values() if a.get("epsilon_per_incident")]
        if incident:
            footer.append(
                f"{arch}: ε is per area-month example (replace-one); per incident record it is up to {max(incident):.4g} "
                "(one incident changes up to g examples): no meaningful guarantee for one incident"
            )
    from experiments.person_figures import end_table_line  # imports the run folder, which imports this module

    by_unit = end_table_line(summary)
    if by_unit:
        footer.append(by_unit)
    if summary.get("flower_startup_s") is not None:
        footer.append(f"Flower start-up: {summary['flower_startup_s']:.1f} s, paid once by the federated architectures (not in their wall times)")
    return "\n".join(text + [""] + _grid(arch_lines, rules=(1, len(archs) + 1) if reference_rows else (1,)) + footer)


# Below this pooled AUC an architecture's model is called near chance in the end table.
NEAR_CHANCE_AUC = 0.55


def _below_chance_notes(summary: dict, archs: list[str], n_agencies: int) -> list[str]:
    """Why an architecture's AUC is no better than chance, said under the table that shows it."""
    notes = []
    for arch in archs:
        entry = summary["architectures"][arch]
        value = (entry.get("metrics") or {}).get("auc")
        if value is None or value >= NEAR_CHANCE_AUC:
            continue
        why = f"{arch}: AUC {value:.3f}, at or near chance (0.5)"
        if entry.get("privacy_unit") == "agency":
            why += f": agency-level DP hides a whole agency, so {architectures.agency_noise_reason(n_agencies)}"
        notes.append(why)
    return notes


def _epsilons(agency: dict, budget: float | None) -> str:
    """An agency's record-level ε: this run / spent to date (its ledger) / budget."""
    this_run, to_date = agency.get("epsilon_this_run"), agency.get("epsilon_spent_to_date")
    if this_run is None and to_date is None:
        return "refused" if agency.get("errors") else "-"
    return f"{this_run:.2f} / {to_date:.2f} / {budget:g}" if budget is not None else f"{this_run:.2f} / {to_date:.2f}"


def _privacy_cell(entry: dict) -> str:
    """An architecture's privacy in the end table: refused, none, or ε spent to date (max)."""
    if entry.get("status") == "refused":
        return "refused: no agency released an update"
    if entry.get("status") == "no-replies":
        return "no replies: untrained model, not a result"
    if entry["epsilon_max"] is None:
        return "none (no DP)"
    relation = f", {entry['neighbouring']}" if entry.get("neighbouring") and entry.get("privacy_unit") != "agency" else ""
    return f"{entry['epsilon_max']:.2f} (δ={entry['delta']:g}, {entry.get('privacy_unit') or 'record'}{relation})"


def _grid(rows: list[list[str]], rules: tuple[int, ...]) -> list[str]:
    """Columns padded to width (first left-aligned, the rest right-aligned), with a rule line
    inserted before each row index in `rules`."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for index, row in enumerate(rows):
        if index in rules:
            out.append("  ".join("-" * w for w in widths))
        out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    return out
