"""Book-keeping per-sample clipping for MLPs (Bu et al. 2023, "Differentially private
optimization on large model at small cost"; the norm trick is the ghost clipping of Li et al.
2021): DP-SGD's clipped, noised gradient without per-sample gradient tensors.

For a Linear layer that sees one input row a_i per sample and gets back the output gradient g_i of
that sample's loss, the per-sample weight gradient is the outer product g_i a_iᵀ, so its norm is
‖g_i‖·‖a_i‖ (and the bias gradient is g_i). One hand-written forward/backward pass
(``tasks.train.LinearStack``) gives every layer's A and G; from them

    ‖∇_i‖² = Σ_layers ‖g_i‖² (‖a_i‖² + 1),   c_i = min(1, C / (‖∇_i‖ + 1e-6)),
    clipped sum per layer = Gᵀ diag(c) A  (one matmul),

then Gaussian noise N(0, σ²C²) per coordinate and division by the expected batch size, exactly as
Opacus' DPOptimizer does (same 1e-6 in the clip factor, same normalisation; its ``loss_reduction
="mean"`` gradients are those of the per-sample loss, as here). tests/test_privacy_fastclip.py
checks it against one-by-one per-sample gradients and against the Opacus path.
"""

from __future__ import annotations

import torch
from torch import nn

from tasks.train import LinearStack, linear_stack

CLIP_EPS = 1e-6  # Opacus' DPOptimizer: c_i = C / (‖∇_i‖ + 1e-6), at most 1


def supports(model: nn.Module) -> bool:
    """Whether `model` is an MLP of Linear layers and elementwise activations that book-keeping
    clipping computes exactly (else use Opacus)."""
    return linear_stack(model) is not None


class BookkeepingClipper:
    """Writes DP-SGD's noised, clipped mean gradient of a batch into the ``.grad`` of every
    parameter of `model` (views of one flat tensor, ``self.flat``, in parameter order), ready for
    any optimizer's ``step()``. Call ``release()`` when done to drop the gradient buffer."""

    def __init__(self, model: nn.Module, *, max_grad_norm: float, noise_multiplier: float, expected_batch_size: float) -> None:
        stack = linear_stack(model)
        if stack is None:
            raise ValueError(
                f"book-keeping clipping needs a tasks.model.MLP of Linear layers and ReLU/Tanh/Sigmoid "
                f"(float32, trainable, no hooks); got {type(model).__name__}: use method='opacus'."
            )
        if max_grad_norm <= 0 or noise_multiplier < 0 or expected_batch_size <= 0:
            raise ValueError(
                f"BookkeepingClipper: need max_grad_norm > 0, noise_multiplier >= 0 and expected_batch_size > 0, "
                f"got {max_grad_norm}, {noise_multiplier}, {expected_batch_size}."
            )
        self.stack: LinearStack = stack
        self.max_grad_norm = float(max_grad_norm)
        self.noise_multiplier = float(noise_multiplier)
        self.expected_batch_size = float(expected_batch_size)
        self._has_bias = [m.bias is not None for m in stack.linears]
        self.flat, self._grads = stack.attach_flat_grads()

    @torch.no_grad()
    def compute(self, xb: torch.Tensor, yb: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Fill the gradients for batch (xb, yb) — possibly empty: then noise only — and return
        the batch's mean loss (BCE with logits; NaN for an empty batch)."""
        logits, values = self.stack.forward(xb)
        # per-sample loss gradient w.r.t. the logit: rows of G are per sample, not batch-mean
        pairs = self.stack.backward(values, torch.sigmoid(logits) - yb)
        # min(1, C / (‖∇_i‖ + eps)) / (q·n), the division folded into both terms
        scale = _per_sample_norms(pairs, self._has_bias).add_(CLIP_EPS)
        scale = torch.div(self.max_grad_norm / self.expected_batch_size, scale).clamp_(max=1.0 / self.expected_batch_size)
        std = self.noise_multiplier * self.max_grad_norm / self.expected_batch_size
        if std > 0:
            self.flat.normal_(0.0, std, generator=generator)
        else:  # like Opacus: no noise drawn, so the generator stays where it was
            self.flat.zero_()
        for (a, g), (w_grad, b_grad) in zip(pairs, self._grads, strict=True):
            w_grad.addmm_((g * scale.unsqueeze(1)).t(), a)  # Gᵀ diag(scale) A
            if b_grad is not None:
                b_grad.addmv_(g.t(), scale)
        return nn.functional.binary_cross_entropy_with_logits(logits, yb)

    def release(self) -> None:
        self.stack.release_grads()


def per_sample_grad_norms(model: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    """‖∇θ loss(x_i, y_i)‖ for every row, without per-sample gradients (for checks and audits)."""
    stack = linear_stack(model)
    if stack is None:
        raise ValueError(f"per_sample_grad_norms: {type(model).__name__} is not a supported MLP.")
    with torch.no_grad():
        logits, values = stack.forward(xb)
        pairs = stack.backward(values, torch.sigmoid(logits) - yb)
        return _per_sample_norms(pairs, [m.bias is not None for m in stack.linears])


def _per_sample_norms(pairs: list[tuple[torch.Tensor, torch.Tensor]], has_bias: list[bool]) -> torch.Tensor:
    """sqrt(Σ_layers ‖g_i‖² (‖a_i‖² + 1 if the layer has a bias)), in few tensor ops: on small
    layers each op's fixed cost outweighs its arithmetic."""
    total: torch.Tensor | None = None
    for (a, g), bias in zip(pairs, has_bias, strict=True):
        g_sq, a_sq = (g * g).sum(1), (a * a).sum(1)
        term = torch.addcmul(g_sq, g_sq, a_sq) if bias else g_sq.mul_(a_sq)
        total = term if total is None else total.add_(term)
    if total is None:  # linear_stack guarantees a Linear layer; no layers would be no norm at all
        raise ValueError("per-sample norms of a model without Linear layers")
    return total.sqrt_()
