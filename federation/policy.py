"""An agency's own privacy policy: the settings it, not the coordinator, decides.

In simulation `peel run` writes each agency's policy into the federation spec from the config
(`privacy.*`, with `privacy.budgets` per agency); on the deployment engine the agency's operator
sets it on its SuperNode (`--node-config "budget=2 delta=1e-6 ..."`), and those values win over
anything in the spec. The ledger then pins δ at its first charge, so neither can change it later.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace

# Node-config keys (deployment) → AgencyPolicy fields.
NODE_KEYS = {
    "budget": "budget",
    "delta": "delta",
    "max-grad-norm": "max_grad_norm",
    "accountant": "accountant",
    "count-sigma": "count_sigma",
    "max-noise-multiplier": "max_noise_multiplier",
    "allow-plain": "allow_plain",
    "privacy-unit": "unit",
    "person-max-records": "person_max_records",
}
UNITS = ("record", "person")  # privacy/person_unit.py


class PolicyError(ValueError):
    """An agency policy value that cannot be used (the message names it)."""


@dataclass(frozen=True)
class AgencyPolicy:
    budget: float  # record-level ε, cumulative over everything the agency ever releases
    delta: float  # pinned by the ledger at its first charge
    max_grad_norm: float  # per-record clipping norm C of its DP-SGD
    accountant: str = "auto"
    count_sigma: float = 50.0  # std of the Gaussian noise on its released record count
    max_noise_multiplier: float = 30.0  # refuse a release whose σ would exceed this (noise, not a model)
    # Take part in architectures without record-level DP (fedavg, fedavg-central-dp), whose replies
    # carry exact counts, losses and test metrics? A deployed agency can say no (allow-plain=false).
    allow_plain: bool = True
    # What its DP releases protect: one incident record, or one person with the records attributed
    # to them (privacy/person_unit.py; charged to a person ledger of its own), at most
    # person_max_records of them per person.
    unit: str = "record"
    person_max_records: int = 5

    def __post_init__(self) -> None:
        for name in ("budget", "max_grad_norm", "count_sigma", "max_noise_multiplier"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise PolicyError(f"agency policy {name} must be a finite number > 0, got {value!r}")
        if not (isinstance(self.delta, int | float) and 0 < self.delta < 1):
            raise PolicyError(f"agency policy delta must be in (0, 1), got {self.delta!r}")
        if self.unit not in UNITS:
            raise PolicyError(f"agency policy unit must be one of {', '.join(UNITS)}, got {self.unit!r}")
        if isinstance(self.person_max_records, bool) or not isinstance(self.person_max_records, int) or self.person_max_records < 1:
            raise PolicyError(f"agency policy person_max_records must be a whole number ≥ 1, got {self.person_max_records!r}")

    def as_dict(self) -> dict[str, float | str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> AgencyPolicy:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise PolicyError(f"agency policy: unknown key(s) {unknown}")
        return cls(**data)  # type: ignore[arg-type]

    def with_node_config(self, node: Mapping[str, object]) -> AgencyPolicy:
        """This policy with the values the agency's operator set on its node (they win)."""
        changes: dict[str, object] = {}
        for key, name in NODE_KEYS.items():
            if key in node:
                raw = node[key]
                try:
                    if name in ("accountant", "unit"):
                        changes[name] = str(raw)
                    elif name == "person_max_records":
                        changes[name] = int(str(raw))
                    elif name == "allow_plain":
                        changes[name] = _flag(key, raw)
                    else:
                        changes[name] = float(str(raw))
                except ValueError:
                    raise PolicyError(f"node config {key}={raw!r}: not a number") from None
        return replace(self, **changes) if changes else self  # type: ignore[arg-type]


def _flag(key: str, raw: object) -> bool:
    text = str(raw).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise PolicyError(f"node config {key}={raw!r}: use true or false")
