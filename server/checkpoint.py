"""The coordinator's per-round checkpoint of one architecture: the global model and the round
state needed to continue after a crash (`peel run --resume RUN_DIR`).

Written twice per round, atomically (temporary file, fsync, rename): once the round's model is
formed and **before** it is sent anywhere (`aggregated`), and once its evaluation rows are written
(`evaluated`). A resumed run therefore never forms a second, differently noised model for a round
whose model may already have left the coordinator, and never loses a round's rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from flwr.app import ArrayRecord

from privacy.durable import save_durably

CHECKPOINT_DIR = "checkpoints"
AGGREGATED, EVALUATED = "aggregated", "evaluated"


class CorruptCheckpoint(RuntimeError):
    """A checkpoint file that cannot be read back (damaged or edited after it was written)."""


@dataclass
class Checkpoint:
    architecture: str
    round: int  # the last round whose global model was formed
    phase: str  # AGGREGATED (its evaluation has not been recorded) or EVALUATED
    arrays: ArrayRecord
    wall_s: float  # training time spent on this architecture so far (all attempts)
    strategy_state: dict = field(default_factory=dict)  # e.g. central DP's releases and clipping norm
    train_rows: dict = field(default_factory=dict)  # AGGREGATED: the round's train rows, not yet written


def checkpoint_path(run_dir: Path, architecture: str) -> Path:
    return run_dir / CHECKPOINT_DIR / f"{architecture}.pt"


def save(run_dir: Path, checkpoint: Checkpoint) -> None:
    """Durably replace the architecture's checkpoint (a crash leaves the old one or the new one)."""
    if checkpoint.phase not in (AGGREGATED, EVALUATED):
        raise ValueError(f"checkpoint phase must be {AGGREGATED!r} or {EVALUATED!r}, got {checkpoint.phase!r}")
    save_durably(
        {
            "architecture": checkpoint.architecture,
            "round": checkpoint.round,
            "phase": checkpoint.phase,
            "state_dict": checkpoint.arrays.to_torch_state_dict(),
            "wall_s": checkpoint.wall_s,
            "strategy_state": checkpoint.strategy_state,
            "train_rows": checkpoint.train_rows,
        },
        checkpoint_path(run_dir, checkpoint.architecture),
    )


def load(run_dir: Path, architecture: str) -> Checkpoint | None:
    """The architecture's last checkpoint, or None if it has none."""
    path = checkpoint_path(run_dir, architecture)
    if not path.exists():
        return None
    try:
        raw = torch.load(path, weights_only=True)
        return Checkpoint(
            architecture=str(raw["architecture"]),
            round=int(raw["round"]),
            phase=str(raw["phase"]),
            arrays=ArrayRecord(raw["state_dict"]),
            wall_s=float(raw["wall_s"]),
            strategy_state=dict(raw["strategy_state"]),
            train_rows=dict(raw["train_rows"]),
        )
    except Exception as exc:  # written atomically: a bad file was damaged or edited afterwards
        # Not "start the architecture again": its agencies' rounds were released and charged.
        raise CorruptCheckpoint(f"{path}: unreadable checkpoint ({type(exc).__name__}); this run cannot be resumed, start a new run") from None
