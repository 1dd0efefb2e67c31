"""Person-level DP-SGD for one agency: contribution bounding, per-person clipping, person-level
Poisson sampling. The unit it protects, and why, is in `privacy.person_unit` (read that first).

One step, over the agency's persons ("units": see `owners`):

1. every unit is in the batch independently with probability q (Poisson over units, not records);
2. each sampled unit's records' loss gradients are *summed*, and that sum is clipped to C;
3. the clipped sums are added, Gaussian noise N(0, σ²C²) is added per coordinate, and the result
   is divided by a fixed divisor, q × the unit count the plan was made for (a released, public
   figure: the realised batch would depend on the sample and leak it).

A unit enters with at most `max_records` records (`bound_contributions`), chosen by a rule that
reads only that unit's own records: the k records with the smallest HMAC of their record id.
Removing or adding a unit therefore changes no other unit's records, and the step is exactly a
Poisson-subsampled Gaussian with sensitivity C per unit: the ordinary DP-SGD accounting, with
units in place of records (`privacy.person_unit`).

The per-unit gradient norm needs no per-unit gradient tensor. For a Linear layer whose per-record
gradient is g_i a_iᵀ, a unit's gradient is Σ_{i∈u} g_i a_iᵀ and

    ‖Σ_{i∈u} g_i a_iᵀ‖_F² = Σ_{i,i'∈u} (g_i·g_i')(a_i·a_i')      (+ ‖Σ g_i‖² for the bias),

a sum of the batch's Gram products within each unit's block (ghost clipping, grouped); the
clipped sum is then Gᵀ diag(c_unit(i)) A, one matmul, as in `privacy.fastclip`. Same 1e-6 in
the clip factor as fastclip/Opacus. tests/test_person_dp.py checks it against per-record
gradients computed one by one, summed per person and clipped.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import torch
from torch import nn

from policedata.persons import NO_PERSON
from privacy.budget import DPPlan
from privacy.dpsgd import expected_batch_size, poisson_blocks
from privacy.fastclip import CLIP_EPS
from tasks.train import LinearStack, as_tensors, linear_stack, make_optimizer

__all__ = [
    "OWNER_ROLES",
    "BoundedUnits",
    "PersonClipper",
    "bound_contributions",
    "owners",
    "person_clipped_sum",
    "train_person_dp",
]

# Whose unit a record joins: its victim if it has one, else its suspect (privacy.person_unit says
# why, and what that leaves to the group bound).
OWNER_ROLES = ("victim", "suspect")
# Domain separation of the selection HMAC from every other use of the same secret.
_SELECT_CONTEXT = b"peel-person-select/1\x00"


def owners(victim: np.ndarray, suspect: np.ndarray) -> np.ndarray:
    """Per record, the code of the person it is attributed to: its victim, else its suspect, else
    NO_PERSON (then the record is a unit of its own). Codes as in `policedata.persons.RecordPersons`."""
    victim, suspect = np.asarray(victim, dtype=np.int64), np.asarray(suspect, dtype=np.int64)
    if victim.shape != suspect.shape:
        raise ValueError(f"owners: victim and suspect codes differ in length ({len(victim)} vs {len(suspect)})")
    return np.where(victim != NO_PERSON, victim, suspect)


@dataclass(frozen=True)
class BoundedUnits:
    """The training records as units after contribution bounding: `unit[i]` is record i's unit
    (0..n_units-1), or -1 for a record dropped by the cap; `records_per_unit` counts kept records."""

    unit: np.ndarray  # int64 (n_records,)
    n_units: int
    max_records: int
    dropped: int  # records over the cap (the harness's figure; it never leaves an agency)

    @property
    def records_per_unit(self) -> np.ndarray:
        kept = self.unit[self.unit >= 0]
        return np.bincount(kept, minlength=self.n_units)


def selection_rank(secret: bytes, record_ids: Sequence[str] | np.ndarray) -> np.ndarray:
    """HMAC-SHA256(secret, record id) per record, as bytes: the order in which a person's records
    are kept. Unpredictable without the secret, stable across runs and agencies."""
    return np.array([hmac.new(secret, _SELECT_CONTEXT + str(r).encode("utf-8"), hashlib.sha256).digest() for r in record_ids], dtype="S32")


def bound_contributions(owner: np.ndarray, record_ids: Sequence[str] | np.ndarray, max_records: int, secret: bytes) -> BoundedUnits:
    """Units of at most `max_records` records each: every person keeps the `max_records` of their
    records with the smallest `selection_rank`; a record with no person (owner NO_PERSON) is a unit
    of its own. The rule reads only the person's own records, so adding or removing one person
    changes no other unit. Record ids must be distinct (ValueError otherwise)."""
    owner = np.asarray(owner, dtype=np.int64)
    ids = np.asarray(record_ids, dtype=str)
    if isinstance(max_records, bool) or int(max_records) != max_records or max_records < 1:
        raise ValueError(f"max_records must be a whole number ≥ 1, got {max_records!r}")
    if len(owner) != len(ids):
        raise ValueError(f"bound_contributions: {len(owner)} owners for {len(ids)} record ids")
    if len(np.unique(ids)) != len(ids):
        raise ValueError("bound_contributions: record ids must be distinct (the cap ranks a person's records by id)")
    n = len(owner)
    if n == 0:
        return BoundedUnits(np.zeros(0, dtype=np.int64), 0, int(max_records), 0)
    rank = selection_rank(secret, ids)
    # Records with no person get owner codes of their own, past every person's.
    person_max = int(owner.max()) if (owner >= 0).any() else -1
    key = owner.copy()
    alone = key == NO_PERSON
    key[alone] = person_max + 1 + np.arange(int(alone.sum()))
    order = np.lexsort((rank, key))  # by owner, then by HMAC rank
    sorted_key = key[order]
    first = np.r_[True, sorted_key[1:] != sorted_key[:-1]]
    group_start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    position = np.arange(n) - group_start  # 0 = the person's smallest rank
    keep_sorted = position < max_records
    unit_sorted = np.cumsum(first) - 1  # dense unit code in owner order
    unit = np.full(n, -1, dtype=np.int64)
    unit[order[keep_sorted]] = unit_sorted[keep_sorted]
    return BoundedUnits(unit, int(unit_sorted[-1]) + 1, int(max_records), int((~keep_sorted).sum()))


def _unit_norms(pairs: list[tuple[torch.Tensor, torch.Tensor]], has_bias: list[bool], unit: torch.Tensor, n_units: int) -> torch.Tensor:
    """‖Σ_{i∈u} ∇_i‖ for every unit u of the batch (see the module docstring)."""
    rows = len(unit)
    squared = torch.zeros(n_units, dtype=pairs[0][0].dtype)
    if rows == 0:
        return squared
    same = unit.unsqueeze(0) == unit.unsqueeze(1)  # rows × rows: same unit
    gram = torch.zeros(rows, rows, dtype=pairs[0][0].dtype)
    for (a, g), bias in zip(pairs, has_bias, strict=True):
        gg = g @ g.t()
        gram.add_(gg * (a @ a.t()))
        if bias:
            gram.add_(gg)
    per_row = (gram * same).sum(1)  # Σ_{i'∈u(i)} K[i, i']
    return squared.index_add_(0, unit, per_row).clamp_(min=0).sqrt_()


def person_clipped_sum(pairs: list[tuple[torch.Tensor, torch.Tensor]], has_bias: list[bool], unit: torch.Tensor, n_units: int, max_grad_norm: float) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """Per Linear layer, (weight, bias) of Σ_u clip_C(Σ_{i∈u} ∇_i): the batch's per-record (A, G)
    pairs, `unit[i]` ∈ 0..n_units-1 the unit of row i. No noise, no division."""
    norms = _unit_norms(pairs, has_bias, unit, n_units)
    factor = torch.div(max_grad_norm, norms.add(CLIP_EPS)).clamp_(max=1.0)
    scale = factor[unit]
    out: list[tuple[torch.Tensor, torch.Tensor | None]] = []
    for (a, g), bias in zip(pairs, has_bias, strict=True):
        w = (g * scale.unsqueeze(1)).t() @ a
        out.append((w, g.t() @ scale if bias else None))
    return out


class PersonClipper:
    """Writes person-level DP-SGD's noised, clipped gradient of a batch of units into the ``.grad``
    of every parameter of `model` (views of ``self.flat``): Σ_u clip_C(Σ_{i∈u} ∇_i) + N(0, σ²C²),
    divided by `divisor`. Call ``release()`` when done."""

    def __init__(self, model: nn.Module, *, max_grad_norm: float, noise_multiplier: float, divisor: float) -> None:
        stack = linear_stack(model)
        if stack is None:
            raise ValueError(f"person-level clipping needs a tasks.model.MLP of Linear layers and ReLU/Tanh/Sigmoid; got {type(model).__name__}")
        if max_grad_norm <= 0 or noise_multiplier < 0 or divisor <= 0:
            raise ValueError(f"PersonClipper: need max_grad_norm > 0, noise_multiplier >= 0 and divisor > 0, got {max_grad_norm}, {noise_multiplier}, {divisor}")
        self.stack: LinearStack = stack
        self.max_grad_norm = float(max_grad_norm)
        self.noise_multiplier = float(noise_multiplier)
        self.divisor = float(divisor)
        self._has_bias = [m.bias is not None for m in stack.linears]
        self.flat, self._grads = stack.attach_flat_grads()

    @torch.no_grad()
    def compute(self, xb: torch.Tensor, yb: torch.Tensor, unit: torch.Tensor, n_units: int, generator: torch.Generator) -> torch.Tensor:
        """Fill the gradients for the records (xb, yb) of `n_units` units (`unit[i]` ∈ 0..n_units-1;
        possibly none: noise only) and return the records' mean loss (NaN for none)."""
        std = self.noise_multiplier * self.max_grad_norm / self.divisor
        if std > 0:
            self.flat.normal_(0.0, std, generator=generator)
        else:
            self.flat.zero_()
        logits, values = self.stack.forward(xb)
        pairs = self.stack.backward(values, torch.sigmoid(logits) - yb)
        clipped = person_clipped_sum(pairs, self._has_bias, unit, n_units, self.max_grad_norm)
        for (w, b), (w_grad, b_grad) in zip(clipped, self._grads, strict=True):
            w_grad.add_(w, alpha=1.0 / self.divisor)
            if b_grad is not None and b is not None:
                b_grad.add_(b, alpha=1.0 / self.divisor)
        return nn.functional.binary_cross_entropy_with_logits(logits, yb)

    def release(self) -> None:
        self.stack.release_grads()


def train_person_dp(model: nn.Module, X: np.ndarray, y: np.ndarray, units: BoundedUnits, *, plan: DPPlan, lr: float, generator: torch.Generator) -> dict[str, float]:
    """Run `plan.steps_per_round` person-level DP-SGD steps on `model` in place: each step samples
    every unit independently at `plan.sample_rate` (an empty batch still takes a noise-only step),
    takes all of the sampled units' kept records, clips per unit, adds noise and divides by
    q × `plan.n_public` (the released unit count; the exact one if the plan has none)."""
    X_t, y_t = as_tensors(X, y)
    if len(units.unit) != len(X_t):
        raise ValueError(f"train_person_dp: {len(units.unit)} unit codes for {len(X_t)} records")
    kept = np.flatnonzero(units.unit >= 0)
    order = kept[np.argsort(units.unit[kept], kind="stable")]  # records grouped by unit
    starts = np.searchsorted(units.unit[order], np.arange(units.n_units + 1))
    divisor = expected_batch_size(plan.n_public or units.n_units, plan.sample_rate)
    clipper = PersonClipper(model, max_grad_norm=plan.max_grad_norm, noise_multiplier=plan.noise_multiplier, divisor=divisor)
    optimizer = make_optimizer(model.parameters(), lr)
    model.train()
    losses: list[float] = []
    try:
        for picked, bounds in poisson_blocks(units.n_units, plan.sample_rate, plan.steps_per_round, generator):
            for lo, hi in pairwise(bounds):
                sampled = picked[lo:hi].numpy()
                rows, local = _rows_of(sampled, order, starts)
                loss = clipper.compute(X_t[rows], y_t[rows], local, len(sampled), generator)
                optimizer.step()
                if len(rows):
                    losses.append(float(loss))
    finally:
        clipper.release()
    return {"loss": float(np.mean(losses)) if losses else math.nan, "steps": plan.steps_per_round}


def _rows_of(sampled: np.ndarray, order: np.ndarray, starts: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The record rows of the sampled units and, per row, its unit's position in `sampled`."""
    lengths = starts[sampled + 1] - starts[sampled]
    if lengths.sum() == 0:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    local = np.repeat(np.arange(len(sampled)), lengths)
    offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    rows = order[np.repeat(starts[sampled], lengths) + offsets]
    return torch.from_numpy(rows.astype(np.int64)), torch.from_numpy(local.astype(np.int64))
