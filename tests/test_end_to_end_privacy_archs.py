"""fedavg-dp-secagg and fedavg-central-dp through Flower's real simulation (Ray, the ServerApp and
ClientApp Peel ships), in one Flower run on a tiny federation. Marked slow."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest
import torch

from experiments.config import validate
from experiments.prepare import materialise, write_spec
from experiments.results import read_rows
from experiments.simulation import run_federated
from privacy.accounting import epsilon
from privacy.budget import plan_dp

pytestmark = pytest.mark.slow

ARCHS = ["fedavg-dp-secagg", "fedavg-central-dp"]
TINY = {
    "seed": 2,
    "data": {"agencies": 4, "incidents": 4000, "months": 12},
    "task": {"test_months": 3, "hidden": [16]},
    "federation": {"rounds": 2, "batch_size": 64},
    "privacy": {"epsilon": 2.0, "accountant": "rdp", "central": {"epsilon": 8.0}},
    "architectures": ARCHS,
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("privacy-archs")
    config = validate(TINY, "tiny")
    spec = write_spec(config, materialise(config, run_dir / "data"), run_dir)
    assert json.loads(spec.read_text())["federated"] == ARCHS
    run_federated(spec, 4)
    return run_dir


def _rows(run_dir: Path, architecture: str) -> dict[str, list[dict]]:
    per_agency: dict[str, list[dict]] = defaultdict(list)
    for row in read_rows(run_dir / "metrics.jsonl"):
        if row["architecture"] == architecture:
            per_agency[row["agency"]].append(row)
    return {a: sorted(rows, key=lambda r: r["round"]) for a, rows in per_agency.items()}


def test_models_and_rows_of_every_architecture(run_dir):
    for arch in ARCHS:
        state = torch.load(run_dir / "models" / f"{arch}.pt")
        assert all(torch.isfinite(t).all() for t in state.values()), arch
        rows = _rows(run_dir, arch)
        assert len(rows) == 4, arch
        for agency_rows in rows.values():
            assert [r["round"] for r in agency_rows] == [1, 2]
            assert all("train_error" not in r for r in agency_rows), arch
            if arch in ("fedavg-dp", "fedavg-dp-secagg"):  # a DP agency keeps its test metrics
                assert all(r.get("evaluated_locally") == 1 and "auc" not in r for r in agency_rows), arch
            else:
                assert all(r.get("auc") is not None for r in agency_rows), arch


def test_central_dp_reports_agency_level_epsilon_within_target(run_dir):
    line = next(r for r in read_rows(run_dir / "federated.jsonl") if r["architecture"] == "fedavg-central-dp")
    assert line["privacy_unit"] == "agency" and line["accountant"] == "rdp" and line["sample_rate"] == 1.0
    assert line["releases"] == 2 and [r["round"] for r in line["per_round"]] == [1, 2]
    assert line["epsilon"] <= 8.0 and line["epsilon"] == pytest.approx(8.0, rel=0.01)
    assert line["epsilon"] == pytest.approx(epsilon([(line["noise_multiplier"], 1.0, 2)], line["delta"], "rdp"))
    assert line["noise_std_on_average"] == pytest.approx(line["noise_multiplier"] * line["clipping_norm"] / 4) == line["per_round"][-1]["noise_std_on_average"]
    # Agencies trained plainly: no record-level ε in their rows.
    assert not any("epsilon" in r for rows in _rows(run_dir, "fedavg-central-dp").values() for r in rows)


def test_secagg_agencies_spend_exactly_as_in_fedavg_dp(run_dir):
    """Each agency planned and accounted its DP-SGD as fedavg-dp does: the same σ calibration for
    its released size (fresh ledger: only its released count before), cumulative ε recomputed
    from its releases."""
    spec = json.loads((run_dir / "federation.json").read_text())
    policy, fed = spec["default_policy"], spec["federation"]
    for agency, rows in _rows(run_dir, "fedavg-dp-secagg").items():
        n_train = rows[0]["n_train"]
        plan = plan_dp(
            n_train,
            batch_size=fed["batch_size"],
            local_epochs=fed["local_epochs"],
            rounds=fed["rounds"],
            target_epsilon=policy["budget"],
            delta=policy["delta"],
            max_grad_norm=policy["max_grad_norm"],
            accountant="rdp",
            prior=[(50.0, 1.0, 1)],  # its record count, released once (privacy.count_sigma)
        )
        for row in rows:
            assert (row["sigma"], row["sample_rate"], row["steps"]) == pytest.approx(plan.release), agency
        history = [(50.0, 1.0, 1)] + [(r["sigma"], r["sample_rate"], r["steps"]) for r in rows]
        eps = [r["epsilon_spent_to_date"] for r in rows]
        assert eps[0] < eps[1] <= 2.0
        assert eps[1] == pytest.approx(epsilon(history, 1e-5, "rdp")), agency
