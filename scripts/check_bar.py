"""Check the foundation issue's utility bar on one or more `peel run` results (one per seed).

    python scripts/check_bar.py runs/RUN_A runs/RUN_B runs/RUN_C

Prints each figure with its threshold and exits 1 if any is missed. Lift = AUC - 0.5.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def lift(auc: float) -> float:
    return auc - 0.5


def check(run_dirs: list[Path]) -> list[tuple[str, float, str, bool]]:
    summaries = [json.loads((d / "summary.json").read_text()) for d in run_dirs]
    rows = []
    small_gains = []
    for s in summaries:
        arch = s["architectures"]
        auc = {a: arch[a]["metrics"]["auc"] for a in arch}
        seed = s["run_id"]
        rows.append((f"{seed} fedavg keeps of central's lift", lift(auc["fedavg"]) / lift(auc["central"]), ">= 0.95", lift(auc["fedavg"]) / lift(auc["central"]) >= 0.95))
        keep = lift(auc["fedavg-dp"]) / lift(auc["central"])
        rows.append((f"{seed} fedavg-dp (ε≤{arch['fedavg-dp']['epsilon_max']:.2f}) keeps of central's lift", keep, ">= 0.90", keep >= 0.90))
        if s.get("bayes_optimal"):
            ratio = lift(auc["central"]) / lift(s["bayes_optimal"]["metrics"]["auc"])
            rows.append((f"{seed} central reaches of Bayes lift", ratio, ">= 0.95", ratio >= 0.95))
        worst = min(
            arch["fedavg"]["per_agency"][n]["metrics"]["auc"] - arch["local"]["per_agency"][n]["metrics"]["auc"]
            for n in arch["local"]["per_agency"]
        )
        rows.append((f"{seed} min over agencies of fedavg - local AUC", worst, ">= -0.01", worst >= -0.01))
        agencies = sorted(s["agencies"], key=lambda a: a["n_train"])
        quarter = agencies[: max(1, len(agencies) // 4)]
        small_gains += [
            arch["fedavg-dp"]["per_agency"][a["name"]]["metrics"]["auc"] - arch["local"]["per_agency"][a["name"]]["metrics"]["auc"]
            for a in quarter
        ]
    mean_gain = sum(small_gains) / len(small_gains)
    rows.append((f"smallest quarter: mean fedavg-dp - local AUC over {len(summaries)} run(s)", mean_gain, ">= 0.02", mean_gain >= 0.02))
    return rows


def main() -> int:
    rows = check([Path(a) for a in sys.argv[1:]])
    for name, value, threshold, ok in rows:
        print(f"{'ok  ' if ok else 'MISS'} {name}: {value:.3f} ({threshold})")
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
