"""`faults.malicious`: one agency that trains honestly and then lies about its update.

The manipulation acts on the update Δ = trained − global, after any DP-SGD training and budget
charge, and before the audit trail records the reply, so the trail hashes what actually left.
DP bounds what an update reveals about an agency's records; it says nothing about how far a
lying agency can move the global model.
"""

from __future__ import annotations

import torch
from flwr.app import ArrayRecord, ConfigRecord

from clients.agency import Agency
from tasks.seeding import stable_seed

ATTACKS = ("scale", "sign_flip", "noise")

StateDict = dict[str, torch.Tensor]


def poison(global_state: StateDict, trained: StateDict, attack: str, factor: float, generator: torch.Generator | None = None) -> StateDict:
    """The update a malicious agency sends instead of `trained`:
    scale → global + factor·Δ; sign_flip → global − factor·Δ; noise → trained + N(0, factor²)."""
    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}; known: {list(ATTACKS)}")
    out = {}
    for key, new in trained.items():
        if not new.is_floating_point():  # counters (none in Peel's MLP) are sent as they are
            out[key] = new
        elif attack == "noise":
            out[key] = new + factor * torch.randn(new.shape, generator=generator, dtype=new.dtype)
        else:
            old = global_state[key].to(new.dtype)
            out[key] = old + (factor if attack == "scale" else -factor) * (new - old)
    return out


def maybe_poison(agency: Agency, config: ConfigRecord, sent: ArrayRecord, trained: StateDict) -> ArrayRecord:
    """The arrays this agency replies with: `trained`, or its manipulation when the config names
    this agency in `faults.malicious`. The noise is seeded by (seed, agency, architecture, round)
    so runs are reproducible."""
    malicious = agency.spec.faults.malicious
    if malicious is None or malicious.agency != agency.name:
        return ArrayRecord(trained)
    seed = stable_seed(agency.spec.seed, agency.name, str(config["architecture"]), int(config["server-round"]), "malicious")
    generator = torch.Generator().manual_seed(seed)
    return ArrayRecord(poison(sent.to_torch_state_dict(), trained, malicious.attack, malicious.factor, generator))
