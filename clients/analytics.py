"""The agency's side of federated analytics: its exact counts never leave it un-noised (except,
labelled, to a trusted coordinator), and every release is charged to its own ledger first.

This is an in-process agency object, not a Flower ClientApp: `peel analyze` runs the agencies
in one process, each reading only its own folder and its own ledger. The release rules are the
training replies' rules: the release boundary (federation.contract) is checked on every field,
the ledger is charged before anything leaves, and a release that would pass the budget is
refused with the reason and nothing leaves.

Histograms hold counts, or fixed-point sums of a bounded numeric column (tasks.analytics): both
integers, so the same noise and secure sum serve both, with the sensitivity one record (or one
person) moves them by. Under `privacy.unit: person` the agency reads its own persons.csv and
federation.key, counts each person's records under the caps (privacy.person_histogram) and
charges its person ledger (add-remove-person).

Modes, per histogram (noise: discrete Gaussian N_Z(0, σ²) or Skellam Sk(σ²/2), `analytics.noise`):
- local: its own counts + noise of std σ, published as they are;
- federated: its counts + its noise share (privacy.count_release.ShareDesign), masked
  pairwise (federation.secure_sum) so the coordinator sees only the sum;
- federated-trusted: its exact counts, to a coordinator trusted to add noise of std σ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from federation import contract
from federation.policy import AgencyPolicy
from federation.secure_sum import KeyPair, MaskedVector, mask
from policedata.loader import load_street_folder
from privacy.audit_trail import append, payload_sha256
from privacy.budget import BudgetExceeded, ReleaseRefused, epsilon_after
from privacy.count_release import ShareDesign, count_event, sample_noise
from privacy.ledger import Ledger, LedgerError, RelationMismatch
from privacy.mechanisms import DISCRETE_GAUSSIAN, MechanismEvent
from privacy.person_histogram import PersonBounds, PersonCaps, cell_caps, person_bounds
from privacy.person_histogram import sensitivity as person_sensitivity
from privacy.person_unit import ADD_REMOVE_PERSON, accounting_relation, person_ledger_path
from tasks.analytics import Domain, Histogram, cell_index, cell_totals

ANALYTICS_ARCHITECTURE = "analytics"  # the ledger's `architecture` column for these releases
NEIGHBOURING = "add-remove"  # a record added or removed changes one cell by one (record unit)


class AnalyticsRefused(ReleaseRefused):
    """An agency will not release a histogram (the message says why; nothing left it)."""


@dataclass
class AnalyticsAgency:
    """One agency, holding only its own records and its own ledger."""

    name: str
    ledger: Path
    policy: AgencyPolicy
    records: pd.DataFrame = field(repr=False)
    max_cell_count: int = 1_000_000_000
    keys: KeyPair = field(default_factory=KeyPair, repr=False)  # fresh per agency object (per run)
    trail: Path | None = None  # the hash-chained message log a line is appended to before each release leaves
    # privacy.unit person: the records as capped persons (privacy.person_histogram); `ledger` is
    # then the agency's person ledger. None: the record unit.
    persons: PersonBounds | None = field(default=None, repr=False)

    @classmethod
    def load(cls, name: str, folder: Path, ledger: Path, policy: AgencyPolicy, agency_column: str = "Falls within", agency_pattern: str | None = None, max_cell_count: int = 1_000_000_000, trail: Path | None = None, person_caps: PersonCaps | None = None) -> AnalyticsAgency:
        """The agency from its own folder. Under `policy.unit` person, with its persons.csv and
        federation.key bounded by `person_caps` (records cap: the policy's person_max_records),
        charged to its person ledger."""
        records, _ = load_street_folder(folder, agency_column, agency_pattern)
        records = records[records["agency"] == name].reset_index(drop=True)
        persons = None
        if policy.unit == "person":
            caps = person_caps or PersonCaps(policy.person_max_records)
            persons = person_bounds(records, folder, PersonCaps(policy.person_max_records, caps.max_cells, caps.max_per_cell))
            ledger = person_ledger_path(ledger)
            ledger.parent.mkdir(parents=True, exist_ok=True)
        return cls(name, ledger, policy, records, max_cell_count, trail=trail, persons=persons)

    @property
    def neighbouring(self) -> str:
        """The relation its releases are charged under: one record, or one person with every
        record attributed to them (privacy.person_unit)."""
        return ADD_REMOVE_PERSON if self.persons is not None else NEIGHBOURING

    def person_kept(self, histogram: Histogram, domain: Domain) -> np.ndarray | None:
        """Which records count under the person caps (None: the record unit, every record)."""
        if self.persons is None:
            return None
        cell, counted = cell_index(self.records, histogram, domain)
        return cell_caps(self.persons, cell, counted)

    def dropped_by_person_cap(self, histogram: Histogram, domain: Domain) -> int | None:
        """Records the histogram would count that the person caps drop (the harness's figure;
        it never leaves the agency). None under the record unit."""
        if self.persons is None:
            return None
        cell, counted = cell_index(self.records, histogram, domain)
        return int(counted.sum() - cell_caps(self.persons, cell, counted).sum())

    # --- inside the agency ---------------------------------------------------------------
    def _exact(self, histogram: Histogram, domain: Domain) -> np.ndarray:
        """Exact totals (counts, or fixed-point sums), clamped to the declared public bound
        ±max_cell_count × a record's largest move (clamping is 1-Lipschitz, so it keeps the
        sensitivity; the secure sum's modulus is sized from that bound)."""
        bound = self.max_cell_count * histogram.sensitivity
        return np.clip(cell_totals(self.records, histogram, domain, self.person_kept(histogram, domain)), -bound, bound)

    def exact_capped(self, histogram: Histogram, domain: Domain) -> np.ndarray:
        """Its exact totals under the caps, for the harness's cap-bias figure (never released)."""
        return self._exact(histogram, domain)

    def sensitivity(self, histogram: Histogram) -> int:
        """How far one unit moves the histogram (L2, integer units): one record, or one person
        within the caps (privacy.person_histogram)."""
        if self.persons is None:
            return histogram.sensitivity
        return person_sensitivity(self.persons.caps, histogram.sensitivity)

    def _accountant(self) -> str:
        if self.policy.accountant not in ("auto", "pld"):
            raise AnalyticsRefused(f"{self.name}: its accountant {self.policy.accountant} cannot account for a discrete Gaussian or Skellam count; set accountant auto or pld")
        return "pld"

    def check(self, events: Sequence[MechanismEvent]) -> float:
        """ε this agency would have spent after all `events` (nothing written); AnalyticsRefused
        if its budget or its ledger's relation forbids them."""
        if not events:
            return self.spent()
        try:
            with Ledger.open(self.ledger, self.name) as ledger:
                if ledger.lifetime_history() and ledger.pinned_neighbouring() != self.neighbouring:
                    raise AnalyticsRefused(f"{self.name}: its ledger accounts for {ledger.pinned_neighbouring()} neighbours; a count is charged for {self.neighbouring}")
                pinned = ledger.pinned_delta()
                if pinned is not None and pinned != self.policy.delta:
                    raise AnalyticsRefused(f"{self.name}: its ledger's δ is pinned at {pinned:g}, not {self.policy.delta:g}")
                return epsilon_after([*ledger.history(), *events[:-1]], events[-1], budget=self.policy.budget, delta=self.policy.delta, accountant=self._accountant(), neighbouring=accounting_relation(self.neighbouring))
        except BudgetExceeded as exc:
            raise AnalyticsRefused(f"{self.name}: {exc}") from None
        except LedgerError as exc:
            raise AnalyticsRefused(f"{self.name}: {exc}") from None

    def _charge(self, event: MechanismEvent, run_id: str, label: str) -> tuple[float, int]:
        """Charge `event` to the ledger (durably) before anything leaves: (ε after it, its
        release number in this run — the ledger's and the trail's `round`)."""
        try:
            with Ledger.open(self.ledger, self.name) as ledger:
                ledger.set_budget(self.policy.budget, self.policy.delta, source=f"analytics {run_id}")
                number = 1 + sum(1 for r in ledger.rows() if r["run_id"] == run_id and r["architecture"] == ANALYTICS_ARCHITECTURE)
                after = ledger.charge(run_id, ANALYTICS_ARCHITECTURE, number, event, delta=self.policy.delta, accountant=self._accountant(), budget=self.policy.budget, mechanism=label, neighbouring=self.neighbouring)
                return after, number
        except (BudgetExceeded, RelationMismatch, LedgerError) as exc:
            raise AnalyticsRefused(f"{self.name}: {exc}") from None

    def _record(self, run_id: str, number: int, fields: list[str], payload: np.ndarray, event: MechanismEvent | None, spent: float | None) -> None:
        """The trail line of a release about to leave (field names, size, payload hash, ε after)."""
        if self.trail is None:
            return
        dp = {"sigma": event.noise, "sensitivity": event.sensitivity, "kind": event.kind, "delta": self.policy.delta} if event is not None else None
        append(self.trail, {
            "run": run_id, "architecture": ANALYTICS_ARCHITECTURE, "round": number, "agency": self.name, "type": contract.ANALYTICS_REPLY,
            "fields": sorted(fields), "sizes": {"bytes": int(payload.nbytes), "num_examples": 0}, "dp": dp, "epsilon": spent,
            "payload_sha256": payload_sha256(np.ascontiguousarray(payload).tobytes()),
        })

    # --- what leaves ---------------------------------------------------------------------
    def local_release(self, histogram: Histogram, domain: Domain, sigma: float, run_id: str, noise: str = DISCRETE_GAUSSIAN) -> np.ndarray:
        """Its own counts + `noise` of std σ, charged first: published as they are (local mode)."""
        fields = contract.check(contract.ANALYTICS_REPLY, "dp", [contract.NOISY_COUNTS, contract.AGENCY, contract.EPSILON_SPENT_TO_DATE])
        exact = self._exact(histogram, domain)
        event = count_event(sigma, sensitivity=self.sensitivity(histogram), noise=noise)
        spent, number = self._charge(event, run_id, f"{noise}-count:{histogram.name}:local")
        noisy = exact + sample_noise(noise, sigma, exact.size)
        self._record(run_id, number, fields, noisy, event, spent)
        return noisy

    def public_key(self) -> bytes:
        """Its key-agreement public key for the pairwise masks (cryptographic, no data)."""
        contract.check(contract.ANALYTICS_REPLY, "dp", [contract.ANALYTICS_PUBLIC_KEY, contract.AGENCY])
        return self.keys.public

    def masked_share(self, histogram: Histogram, domain: Domain, design: ShareDesign, peers: Mapping[str, bytes], modulus: int, context: bytes, run_id: str, *, noise_off_for_tests: bool = False) -> MaskedVector:
        """Its counts + its noise share, masked with every peer: what the coordinator receives
        (federated mode). Charged as the noise the sum guarantees with up to `design.tolerate`
        shares missing (`ShareDesign.event`). σ = 0 (no noise, nothing charged) only when a test
        says so explicitly: no config or command reaches it."""
        fields = contract.check(contract.ANALYTICS_REPLY, "dp", [contract.MASKED_COUNTS, contract.AGENCY, contract.EPSILON_SPENT_TO_DATE])
        exact = self._exact(histogram, domain)
        if design.sigma == 0:
            if not noise_off_for_tests:
                raise AnalyticsRefused(f"{self.name}: refusing to send counts without noise")
            return mask(self.name, self.keys, peers, exact, modulus, context)
        event = design.event(self.sensitivity(histogram))
        spent, number = self._charge(event, run_id, f"{design.noise}-count:{histogram.name}:federated-share")
        masked = mask(self.name, self.keys, peers, exact + design.sample_share(exact.size), modulus, context)
        self._record(run_id, number, fields, masked.values, event, spent)
        return masked

    def exact_to_trusted(self, histogram: Histogram, domain: Domain, sigma: float, run_id: str, noise: str = DISCRETE_GAUSSIAN) -> np.ndarray:
        """Its exact counts for a coordinator trusted to add `noise` of std σ: charged for the
        noised release the coordinator promises (federated-trusted mode)."""
        fields = contract.check(contract.ANALYTICS_REPLY, "plain", [contract.EXACT_COUNTS, contract.AGENCY])
        exact = self._exact(histogram, domain)
        event = count_event(sigma, sensitivity=self.sensitivity(histogram), noise=noise)
        spent, number = self._charge(event, run_id, f"{noise}-count:{histogram.name}:trusted-coordinator")
        self._record(run_id, number, fields, exact, event, spent)
        return exact

    def spent(self) -> float:
        """ε its ledger has spent (at its pinned δ), read with PLD: the one accountant that
        composes discrete-Gaussian and Skellam counts with DP-SGD rounds (whatever the policy names)."""
        with Ledger.open(self.ledger, self.name) as ledger:
            return ledger.spent(accountant="pld") if ledger.history() else 0.0
