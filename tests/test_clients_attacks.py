"""faults.malicious: the manipulated update is exactly global ± factor·Δ (scale, sign_flip) or the
trained model plus seeded N(0, factor²) noise; only the named agency lies."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord

from clients.agency import Agency
from clients.attacks import maybe_poison, poison
from federation import spec
from federation.policy import AgencyPolicy

GLOBAL = {"w": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "b": torch.tensor([0.5])}
TRAINED = {"w": torch.tensor([[1.5, 1.0], [3.0, 6.0]]), "b": torch.tensor([0.0])}  # Δ = [[.5,-1],[0,2]], [-.5]


def test_scale_multiplies_the_update():
    out = poison(GLOBAL, TRAINED, "scale", 10.0)
    torch.testing.assert_close(out["w"], torch.tensor([[6.0, -8.0], [3.0, 24.0]]))
    torch.testing.assert_close(out["b"], torch.tensor([-4.5]))


def test_sign_flip_reverses_the_update():
    out = poison(GLOBAL, TRAINED, "sign_flip", 2.0)
    torch.testing.assert_close(out["w"], torch.tensor([[0.0, 4.0], [3.0, 0.0]]))
    torch.testing.assert_close(out["b"], torch.tensor([1.5]))


def test_scale_by_one_sends_the_honest_model():
    out = poison(GLOBAL, TRAINED, "scale", 1.0)
    for key in TRAINED:
        torch.testing.assert_close(out[key], TRAINED[key])


def test_noise_is_seeded_and_has_the_factor_as_std():
    big = {"w": torch.zeros(200, 200)}
    a = poison(big, big, "noise", 3.0, torch.Generator().manual_seed(7))["w"]
    b = poison(big, big, "noise", 3.0, torch.Generator().manual_seed(7))["w"]
    torch.testing.assert_close(a, b)
    assert a.mean().item() == pytest.approx(0.0, abs=0.05)
    assert a.std().item() == pytest.approx(3.0, rel=0.02)


def test_unknown_attack_is_refused():
    with pytest.raises(ValueError, match="unknown attack"):
        poison(GLOBAL, TRAINED, "replace", 1.0)


def _agency(tmp_path: Path, name: str, malicious: dict | None) -> Agency:
    policy = AgencyPolicy(budget=1.0, delta=1e-5, max_grad_norm=5.0)
    run = spec.RunSpec(
        run_dir=tmp_path,
        seed=0,
        task=spec.TaskSpec("outcome", "2023-10", (8,)),
        federation=spec.FederationSpec(rounds=3, local_epochs=1, batch_size=64, learning_rate=0.01, round_timeout=60.0),
        central_dp=spec.CentralDPSpec(epsilon=1.0, delta=1e-5, accountant="auto"),
        default_policy=policy,
        agencies=(),
        federated=("fedavg",),
        faults=spec.FaultsSpec(malicious=spec.MaliciousSpec(**malicious) if malicious else None),
    )
    path = spec.write(run, tmp_path / f"spec-{name}-{bool(malicious)}.json")
    return Agency(name, tmp_path, path, tmp_path / "ledger.sqlite", policy, tmp_path / "audit.jsonl")


CONFIG = ConfigRecord({"architecture": "fedavg", "server-round": 3})


def test_only_the_named_agency_lies(tmp_path):
    malicious = {"agency": "Mallory Police", "attack": "scale", "factor": 10.0}
    sent = ArrayRecord(GLOBAL)
    honest = maybe_poison(_agency(tmp_path, "Honest Police", malicious), CONFIG, sent, TRAINED).to_torch_state_dict()
    torch.testing.assert_close(honest["w"], TRAINED["w"])
    liar = maybe_poison(_agency(tmp_path, "Mallory Police", malicious), CONFIG, sent, TRAINED).to_torch_state_dict()
    torch.testing.assert_close(liar["w"], poison(GLOBAL, TRAINED, "scale", 10.0)["w"])
    clean = maybe_poison(_agency(tmp_path, "Mallory Police", None), CONFIG, sent, TRAINED).to_torch_state_dict()
    torch.testing.assert_close(clean["b"], TRAINED["b"])


def test_noise_attack_is_reproducible_per_round(tmp_path):
    agency = _agency(tmp_path, "Mallory Police", {"agency": "Mallory Police", "attack": "noise", "factor": 1.0})
    sent = ArrayRecord(GLOBAL)
    first = maybe_poison(agency, CONFIG, sent, TRAINED).to_torch_state_dict()["w"]
    again = maybe_poison(agency, CONFIG, sent, TRAINED).to_torch_state_dict()["w"]
    other_round = maybe_poison(agency, ConfigRecord({"architecture": "fedavg", "server-round": 4}), sent, TRAINED).to_torch_state_dict()["w"]
    torch.testing.assert_close(first, again)
    assert not torch.equal(first, other_round)
