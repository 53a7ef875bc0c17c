"""Adversarial saliency map (ASM) of StrAttack's appendix E, eq. (61), computed by autograd for a batch.

Papernot et al.'s saliency map (eq. 60) sums the gradients of every non-target logit; StrAttack keeps only the
true class t0 and the target t:

    ASM(x, t)[i] = 0                                    if ∂Z_t/∂x_i < 0 or ∂Z_t0/∂x_i > 0,
                 = (∂Z_t/∂x_i) · |∂Z_t0/∂x_i|           otherwise,

so a pixel scores high when raising it both promotes the target logit and suppresses the true one.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def logit_gradient_pair(model: nn.Module, images: Tensor, labels: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """(∂Z_t/∂x, ∂Z_t0/∂x), each (N, C, H, W), from one forward pass and two backward passes."""
    x = images.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        z_t = logits.gather(1, targets.view(-1, 1).to(logits.device)).sum()
        z_t0 = logits.gather(1, labels.view(-1, 1).to(logits.device)).sum()
        (grad_t,) = torch.autograd.grad(z_t, x, retain_graph=True)
        (grad_t0,) = torch.autograd.grad(z_t0, x)
    return grad_t, grad_t0


def saliency_from_gradients(grad_t: Tensor, grad_t0: Tensor) -> Tensor:
    """Eq. (61) given both forward derivatives: (∂Z_t/∂x)·|∂Z_t0/∂x| where ∂Z_t/∂x ≥ 0 and ∂Z_t0/∂x ≤ 0, else 0."""
    keep = (grad_t >= 0) & (grad_t0 <= 0)
    return torch.where(keep, grad_t * grad_t0.abs(), torch.zeros_like(grad_t))


def adversarial_saliency_map(model: nn.Module, images: Tensor, labels: Tensor, targets: Tensor) -> Tensor:
    """ASM(x, t) of eq. (61) for every coordinate of every image, (N, C, H, W), non-negative.

    ``model`` takes [0,1] images (a ``PixelModel``); ``labels`` are the true classes t0, ``targets`` the targets t.
    """
    if images.dim() != 4 or labels.shape != (images.shape[0],) or targets.shape != labels.shape:
        raise ValueError("Need images (N, C, H, W) with one label and one target per image.")
    grad_t, grad_t0 = logit_gradient_pair(model, images, labels, targets)
    return saliency_from_gradients(grad_t, grad_t0)
