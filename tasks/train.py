"""Plain (non-private) training and prediction for the one-logit models of ``tasks.model``.

Batches are taken by indexing tensors with a seeded permutation: on small tabular data a torch
DataLoader costs 2-3x the whole training step. For the MLPs of ``tasks.model`` the forward and
backward passes are written out by hand (``LinearStack``): on a 64-64 MLP autograd's bookkeeping
costs more than the arithmetic. The DP path (``privacy``) uses the same optimizer, loss and
passes, so plain and private runs differ only in the privacy mechanism.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, overload

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tasks.model import MLP

PREDICT_CHUNK = 65_536  # rows per forward pass in predict_proba: bounds memory, not speed


def make_optimizer(params: Iterable[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """The optimizer of every architecture (plain and DP alike).

    ``fused`` Adam: one kernel for all parameters, ~25% off a small-MLP epoch on CPU; Opacus'
    DPOptimizer wraps it unchanged (checked with hooks and ghost clipping).
    """
    return torch.optim.Adam(params, lr=lr, fused=True)


def loss_fn() -> nn.Module:
    return nn.BCEWithLogitsLoss(reduction="mean")


@overload
def as_tensors(X: np.ndarray) -> tuple[torch.Tensor, None]: ...
@overload
def as_tensors(X: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]: ...
@overload
def as_tensors(X: np.ndarray, y: np.ndarray | None) -> tuple[torch.Tensor, torch.Tensor | None]: ...
def as_tensors(X: np.ndarray, y: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """float32 tensors from a feature matrix and 0/1 labels (one conversion per training call)."""
    X_t = torch.as_tensor(np.asarray(X, dtype=np.float32))
    if X_t.ndim != 2:
        raise ValueError(f"features must be a 2-D matrix, got shape {tuple(X_t.shape)}.")
    if y is None:
        return X_t, None
    y_t = torch.as_tensor(np.asarray(y, dtype=np.float32).reshape(-1))
    if len(y_t) != len(X_t):
        raise ValueError(f"{len(X_t)} feature rows but {len(y_t)} labels.")
    return X_t, y_t


# ---------------------------------------------------------------- hand-written passes

# Elementwise activations the manual passes know: (forward, backward from the output alone).
# Only exact types: a subclass may compute something else.
_Activation = tuple[Callable[..., Any], Callable[..., Any]]
_ACTIVATIONS: dict[type, _Activation] = {
    # threshold_backward is what autograd itself runs for ReLU: grad where output > 0, else 0
    nn.ReLU: (torch.relu, lambda g, out: torch.ops.aten.threshold_backward(g, out, 0)),
    nn.Tanh: (torch.tanh, lambda g, out: g * (1 - out * out)),
    nn.Sigmoid: (torch.sigmoid, lambda g, out: g * out * (1 - out)),
}


class LinearStack:
    """A ``tasks.model.MLP`` as what it is: Linear layers and elementwise activations, each
    sample one row. ``forward`` keeps every intermediate value; ``backward`` returns, per Linear
    layer, its input rows and the gradient of the loss w.r.t. its output rows, from which weight
    gradients (and per-sample gradient norms, see ``privacy.fastclip``) follow by matmuls.

    Build it with ``linear_stack(model)``; the passes read the module's parameters live, so the
    optimizer can update them in place between steps.
    """

    def __init__(self, model: nn.Sequential) -> None:
        self.model = model
        # a Linear layer, or an activation's (forward, backward)
        self.ops: list[nn.Linear | _Activation] = [m if isinstance(m, nn.Linear) else _ACTIVATIONS[type(m)] for m in model]
        self.linears: list[nn.Linear] = [m for m in model if isinstance(m, nn.Linear)]
        self._first_linear = next(i for i, op in enumerate(self.ops) if isinstance(op, nn.Linear))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(logits of shape (batch,), the input of every op followed by the output)."""
        values = [x]
        for op in self.ops:
            a = values[-1]
            if isinstance(op, nn.Linear):
                out = a @ op.weight.t() if op.bias is None else torch.addmm(op.bias, a, op.weight.t())
            else:
                out = op[0](a)
            values.append(out)
        return values[-1].squeeze(-1), values

    def backward(self, values: list[torch.Tensor], dlogits: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per Linear layer (forward order): (its input rows A, d loss / d its output rows G)."""
        g = dlogits.unsqueeze(-1)
        pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
        for k in range(len(self.ops) - 1, self._first_linear - 1, -1):
            op = self.ops[k]
            if isinstance(op, nn.Linear):
                pairs.append((values[k], g))
                if k > self._first_linear:  # no gradient w.r.t. the features
                    g = g @ op.weight
            else:
                g = op[1](g, values[k + 1])
        pairs.reverse()
        return pairs

    def attach_flat_grads(self) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor | None]]]:
        """Point every parameter's ``.grad`` at a view of one flat tensor (parameter order);
        returns it and the (weight, bias) gradient views per Linear. One buffer lets a step
        write, noise or scale all gradients with one call each."""
        params = list(self.model.parameters())
        flat = torch.zeros(sum(p.numel() for p in params), dtype=params[0].dtype)
        views: dict[int, torch.Tensor] = {}
        offset = 0
        for p in params:
            p.grad = views[id(p)] = flat[offset : offset + p.numel()].view_as(p)
            offset += p.numel()
        per_layer: list[tuple[torch.Tensor, torch.Tensor | None]] = [
            (views[id(m.weight)], None if m.bias is None else views[id(m.bias)]) for m in self.linears
        ]
        return flat, per_layer

    def release_grads(self) -> None:
        for p in self.model.parameters():
            p.grad = None


def linear_stack(model: nn.Module) -> LinearStack | None:
    """A ``LinearStack`` of `model`, or None when the hand-written passes would not compute
    exactly what ``model(x)`` and autograd compute (then use autograd)."""
    if not isinstance(model, MLP) or type(model).forward is not MLP.forward or len(model) == 0:
        return None
    linears = [m for m in model if isinstance(m, nn.Linear)]
    if not linears or not all(type(m) is nn.Linear or type(m) in _ACTIVATIONS for m in model):
        return None
    if linears[-1].out_features != 1:  # the output must squeeze to one logit per row
        return None
    params = list(model.parameters())
    if len(params) != sum(1 + (m.bias is not None) for m in linears):  # shared (tied) weights
        return None
    if any(not p.requires_grad or p.dtype != torch.float32 for p in params):
        return None
    # hooks would be skipped by the hand-written passes
    if any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in model.modules()):
        return None
    return LinearStack(model)


# ---------------------------------------------------------------- training


def train_plain(
    model: nn.Module,
    X: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
) -> dict[str, Any]:
    """Train ``model`` in place; returns {"loss": mean loss of the last epoch, "steps": int}.

    The batch order comes only from ``generator``, so a seeded generator and the same initial
    weights give the same result. The last batch of an epoch may be smaller.
    """
    if epochs < 0 or batch_size < 1:
        raise ValueError(f"train_plain: need epochs >= 0 and batch_size >= 1, got {epochs}, {batch_size}.")
    X_t, y_t = as_tensors(X, y)
    n = len(X_t)
    if n == 0 or epochs == 0:
        return {"loss": float("nan"), "steps": 0}
    optimizer = make_optimizer(model.parameters(), lr)
    model.train()
    stack = linear_stack(model)
    step = _autograd_step(model, optimizer) if stack is None else _manual_step(stack, optimizer)
    steps = 0
    try:
        for _ in range(epochs):
            perm = torch.randperm(n, generator=generator)
            X_epoch, y_epoch = X_t[perm], y_t[perm]  # one gather per epoch; batches are then views
            total = 0.0
            for start in range(0, n, batch_size):
                total += step(X_epoch[start : start + batch_size], y_epoch[start : start + batch_size])
                steps += 1
    finally:
        if stack is not None:
            stack.release_grads()
    return {"loss": total / n, "steps": steps}


def _autograd_step(model: nn.Module, optimizer: torch.optim.Optimizer) -> Callable[[torch.Tensor, torch.Tensor], float]:
    criterion = loss_fn()

    def step(xb: torch.Tensor, yb: torch.Tensor) -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
        return float(loss.item()) * len(xb)

    return step


def _manual_step(stack: LinearStack, optimizer: torch.optim.Optimizer) -> Callable[[torch.Tensor, torch.Tensor], float]:
    """One Adam step on the batch mean of the logistic loss, gradients by the hand-written passes
    (equal to autograd's up to float rounding; tests/test_tasks_train.py checks it)."""
    _, grads = stack.attach_flat_grads()

    @torch.no_grad()
    def step(xb: torch.Tensor, yb: torch.Tensor) -> float:
        logits, values = stack.forward(xb)
        # d mean BCE-with-logits / d logit = (sigmoid(logit) - y) / batch
        dlogits = (torch.sigmoid(logits) - yb).div_(len(xb))
        for (a, g), (w_grad, b_grad) in zip(stack.backward(values, dlogits), grads, strict=True):
            torch.mm(g.t(), a, out=w_grad)
            if b_grad is not None:
                torch.sum(g, 0, out=b_grad)
        optimizer.step()
        return F.binary_cross_entropy_with_logits(logits, yb, reduction="sum").item()

    return step


def predict_proba(model: nn.Module, X: np.ndarray) -> np.ndarray:
    """P(y = 1) per row as float64, computed without gradients in chunks."""
    X_t, _ = as_tensors(X)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            # sigmoid in float64 so tiny probabilities keep their precision for log loss
            chunks = [torch.sigmoid(model(X_t[i : i + PREDICT_CHUNK]).double()) for i in range(0, len(X_t), PREDICT_CHUNK)]
    finally:
        model.train(was_training)
    if not chunks:
        return np.empty(0, dtype=np.float64)
    return torch.cat(chunks).numpy().reshape(-1)
