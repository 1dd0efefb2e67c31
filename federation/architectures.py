"""Every architecture Peel can run, declared once.

An entry says what the architecture is (for the report), whether agencies federate in it, what
one unit of its DP protects, the regime of its agencies' replies (federation/contract.py), which
config keys it reads (a sweep over a key it does not read does not multiply its cells), which
aggregators its coordinator can use and how the coordinator trains it. The runner, the sweep,
the report, the coordinator and the agencies ask this registry; none of them keeps a list of
names. Adding an architecture is one `Architecture(...)` here (or `register(...)`) plus the
modules of its own trainer, if it needs a new one.

Imports nothing above `privacy/`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

Regime = Literal["dp", "plain"]
Unit = Literal["record", "agency"]
# How an architecture is trained: the two baselines in the runner's process, the federated ones
# by the coordinator (server/app.py maps each to its code).
Trainer = Literal["pooled", "per-agency", "fedavg-strategy", "secagg", "central-dp"]
FEDERATED_TRAINERS: tuple[Trainer, ...] = ("fedavg-strategy", "secagg", "central-dp")

# federation.aggregator's values: Flower's aggregators the coordinator can record with.
ROBUST_AGGREGATORS = ("fedavg", "median", "trimmed_mean", "krum")
# The clipped mean fedavg-central-dp's noise is calibrated to (not a federation.aggregator value).
CLIPPED_MEAN = "clipped_mean"
AGGREGATORS = (*ROBUST_AGGREGATORS, CLIPPED_MEAN)

# Config keys (dotted prefixes) read by groups of architectures.
# analytics: the block's releases run before training in every run (and charge the same ledgers).
EVERY = ("seed", "data", "task", "audit", "analytics", "federation.rounds", "federation.local_epochs", "federation.batch_size", "federation.learning_rate", "federation.round_timeout")
FAULTS = ("faults",)  # only federated agencies fail or send updates
AGGREGATION = ("federation.aggregator", "federation.trimmed_beta", "federation.krum_malicious")
RECORD_PRIVACY = (
    "privacy.epsilon", "privacy.budgets", "privacy.delta", "privacy.max_grad_norm", "privacy.accountant",
    "privacy.count_sigma", "privacy.max_noise_multiplier", "privacy.warn_below_share", "privacy.unit", "privacy.person",
)
CENTRAL_PRIVACY = ("privacy.central", "privacy.delta", "privacy.accountant", "privacy.epsilon")  # privacy.epsilon: central.epsilon's default


class UnknownArchitecture(ValueError):
    """A name no registered architecture has (the message lists the known ones)."""


@dataclass(frozen=True)
class Architecture:
    name: str
    description: str  # one line for the report's table
    federated: bool
    privacy_unit: Unit | None  # what one unit of its DP protects (None: no DP)
    regime: Regime  # of its agencies' replies (contract.regime)
    reads: tuple[str, ...]  # config keys (dotted prefixes) it reads
    aggregators: tuple[str, ...]  # what its coordinator may use; the first when the config's is not allowed
    trainer: Trainer
    aggregator_note: str | None = None  # why it ignores federation.aggregator, when it does

    def __post_init__(self) -> None:
        where = f"architecture {self.name!r}"
        if not self.name or self.name != self.name.strip() or "/" in self.name:
            raise ValueError(f"{where}: a name is a non-empty file-name-safe word")
        if self.federated != (self.trainer in FEDERATED_TRAINERS):
            raise ValueError(f"{where}: trainer {self.trainer!r} does not match federated={self.federated}")
        if self.federated and not self.aggregators:
            raise ValueError(f"{where}: a federated architecture names at least one aggregator")
        unknown = [a for a in self.aggregators if a not in AGGREGATORS]
        if unknown:
            raise ValueError(f"{where}: unknown aggregator(s) {unknown}; known: {list(AGGREGATORS)}")
        if self.privacy_unit == "record" and self.regime != "dp":
            raise ValueError(f"{where}: record-level DP means its agencies reply in the dp regime")

    @property
    def record_dp(self) -> bool:
        """Its agencies run DP-SGD and spend their own record-level budget (ledger)."""
        return self.privacy_unit == "record"

    @property
    def dp(self) -> bool:
        return self.privacy_unit is not None

    @property
    def robust(self) -> bool:
        """Its coordinator honours federation.aggregator (more than one aggregator allowed)."""
        return len(self.aggregators) > 1

    def reads_key(self, key: str) -> bool:
        """Whether it reads config key `key` (or a section holding one of its keys)."""
        return any(key == p or key.startswith(p + ".") or p.startswith(key + ".") for p in self.reads)

    def aggregator(self, configured: str) -> str:
        """The aggregator it uses when federation.aggregator is `configured`."""
        return configured if configured in self.aggregators else self.aggregators[0]


_NO_ROBUST_SECAGG = "the coordinator sees only the masked sum of the updates, so it cannot aggregate robustly: it averages"
_NO_ROBUST_CENTRAL = "keeps the mean its agency-level noise is calibrated to; each update is first clipped to privacy.central.clipping_norm, which bounds how far one agency can move the model"

def agency_noise_reason(n_agencies: int) -> str:
    """Why agency-level DP gives a model near chance with few agencies (said by the end table and the report)."""
    return (
        f"with {n_agencies} agencies the agency-level noise added to the average update drowns the signal "
        "(it needs many more agencies: docs/results.md measures 64)"
    )


_BUILT_IN = (
    Architecture("central", "all records pooled in one place", False, None, "plain", EVERY, (), "pooled"),
    Architecture("local", "each agency alone, nothing shared", False, None, "plain", EVERY, (), "per-agency"),
    Architecture("fedavg", "federated averaging, no DP", True, None, "plain", EVERY + FAULTS + AGGREGATION, ROBUST_AGGREGATORS, "fedavg-strategy"),
    Architecture("fedavg-dp", "federated, each agency runs DP-SGD to its own (ε, δ)", True, "record", "dp", EVERY + FAULTS + AGGREGATION + RECORD_PRIVACY, ROBUST_AGGREGATORS, "fedavg-strategy"),
    Architecture("fedavg-dp-secagg", "as fedavg-dp, coordinator sees only the masked sum", True, "record", "dp", EVERY + FAULTS + RECORD_PRIVACY, ("fedavg",), "secagg", _NO_ROBUST_SECAGG),
    Architecture("fedavg-central-dp", "federated, coordinator adds agency-level DP noise", True, "agency", "plain", EVERY + FAULTS + CENTRAL_PRIVACY, (CLIPPED_MEAN,), "central-dp", _NO_ROBUST_CENTRAL),
)

# Declaration order is the order of tables, legends and the coordinator's listing.
REGISTRY: dict[str, Architecture] = {a.name: a for a in _BUILT_IN}
DEFAULT = ("central", "local", "fedavg", "fedavg-dp")  # a config's architectures when it names none


def get(name: str) -> Architecture:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownArchitecture(f"unknown architecture {name!r}; known: {', '.join(REGISTRY)}") from None


def find(name: str) -> Architecture | None:
    """The entry of `name`, or None (e.g. a name in an older results folder)."""
    return REGISTRY.get(name)


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def federated() -> tuple[str, ...]:
    return tuple(a.name for a in REGISTRY.values() if a.federated)


def baselines() -> tuple[str, ...]:
    """The architectures the runner trains in its own process (nothing federated)."""
    return tuple(a.name for a in REGISTRY.values() if not a.federated)


def record_dp() -> tuple[str, ...]:
    return tuple(a.name for a in REGISTRY.values() if a.record_dp)


def is_federated(name: str) -> bool:
    entry = find(name)
    return entry is not None and entry.federated


def is_record_dp(name: str) -> bool:
    entry = find(name)
    return entry is not None and entry.record_dp


def order(name: str) -> int:
    """Position in declaration order (unknown names after every known one)."""
    return list(REGISTRY).index(name) if name in REGISTRY else len(REGISTRY)


def register(architecture: Architecture) -> Architecture:
    """Add an architecture (after the built-in ones); refuses a name already taken."""
    if architecture.name in REGISTRY:
        raise ValueError(f"architecture {architecture.name!r} is already registered")
    REGISTRY[architecture.name] = architecture
    return architecture


def unregister(name: str) -> None:
    if name in (a.name for a in _BUILT_IN):
        raise ValueError(f"architecture {name!r} is built in")
    REGISTRY.pop(name, None)


@contextmanager
def registered(architecture: Architecture) -> Iterator[Architecture]:
    """`register` for the duration of a block (tests, experiments)."""
    register(architecture)
    try:
        yield architecture
    finally:
        unregister(architecture.name)
