"""The model: a small MLP with one output logit, and its weights as a list of numpy arrays.

Built for Opacus: only Linear layers carry parameters, no BatchNorm (it mixes examples of a batch,
which breaks per-sample gradients), no in-place activations (they break Opacus' hooks).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn


class MLP(nn.Sequential):
    """Linear/ReLU layers ending in one logit; ``forward`` returns shape (batch,)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # nn.Sequential.forward's loop, written out: torch leaves that method untyped
        for module in self:
            x = module(x)
        return x.squeeze(-1)


def make_model(n_features: int, hidden: Sequence[int] = (64, 64), *, seed: int | None = None) -> MLP:
    """An MLP ``n_features -> hidden... -> 1``; ``seed`` makes the initial weights reproducible
    without touching torch's global random state."""
    if n_features < 1 or any(h < 1 for h in hidden):
        raise ValueError(f"make_model: widths must be positive, got n_features={n_features}, hidden={list(hidden)}.")
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        layers: list[nn.Module] = []
        width = n_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 1))
        return MLP(*layers)


def initial_model(hidden: Sequence[int], seed: int, n_features: int | None = None) -> MLP:
    """The shared starting point of every architecture of a run (central, local, federated):
    the same weights for the same config seed. `n_features` defaults to the outcome task's."""
    from tasks.features import N_FEATURES
    from tasks.seeding import stable_seed

    return make_model(n_features or N_FEATURES, hidden, seed=stable_seed(seed, "initial-model"))


def get_weights(model: nn.Module) -> list[np.ndarray]:
    """Copies of the model's tensors, in ``model.state_dict()`` order."""
    return [t.detach().cpu().numpy().copy() for t in model.state_dict().values()]


def set_weights(model: nn.Module, weights: Sequence[np.ndarray]) -> None:
    """Load ``weights`` (as from ``get_weights``) into ``model``, checking count and shapes.

    Matching is by position, so weights taken from a plain model load into an Opacus-wrapped one
    (whose state-dict keys gain ``_module.``) and back.
    """
    state = model.state_dict()
    if len(weights) != len(state):
        raise ValueError(f"set_weights: got {len(weights)} arrays, the model has {len(state)} tensors.")
    new_state = {}
    for (key, current), w in zip(state.items(), weights, strict=True):
        w = np.asarray(w)
        if tuple(w.shape) != tuple(current.shape):
            raise ValueError(f"set_weights: {key} has shape {tuple(current.shape)}, got {tuple(w.shape)}.")
        new_state[key] = torch.as_tensor(w, dtype=current.dtype)
    model.load_state_dict(new_state, strict=True)
