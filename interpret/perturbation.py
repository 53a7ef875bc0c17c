"""Views of a perturbation δ = x_adv − x0 that figures draw: signed, magnitude, amplified, group grid.

Group norms themselves come from ``interpret.groups`` (StrAttack's layout); this module only paints them.

Every function takes a batch ``delta`` of shape (N, C, H, W) and returns a tensor; none draws anything.
"""

from __future__ import annotations

import torch
from torch import Tensor


def signed_limit(delta: Tensor) -> Tensor:
    """Per-sample max |δ| (N,): the symmetric colour range ±limit that keeps zero at the centre of the scale."""
    return delta.detach().flatten(1).abs().amax(1)


def magnitude(delta: Tensor) -> Tensor:
    """|δ| summed over channels, (N, H, W): where the attack moved pixels and by how much (ℓ1 per pixel)."""
    return delta.detach().abs().sum(1)


def amplified(delta: Tensor) -> Tensor:
    """δ rescaled into a viewable image, (N, C, H, W) in [0, 1]: 0.5 + δ / (2·max|δ|); grey where δ = 0.

    Zero maps to mid-grey, the largest change of either sign to black or white, per sample.
    """
    limit = signed_limit(delta).clamp_min(torch.finfo(delta.dtype).tiny).view(-1, 1, 1, 1)
    return (0.5 + delta.detach() / (2 * limit)).clamp(0, 1)


def group_cover(norms: Tensor, size: int, stride: int, input_size: tuple[int, int]) -> Tensor:
    """Paint each group's norm back onto the pixels it covers, (N, H, W) (max over overlapping groups)."""
    n, gh, gw = norms.shape
    h, w = input_size
    painted = norms.new_zeros(n, h, w)
    for i in range(gh):
        for j in range(gw):
            y, x = i * stride, j * stride
            cell = painted[:, y:y + size, x:x + size]
            painted[:, y:y + size, x:x + size] = torch.maximum(cell, norms[:, i, j].view(-1, 1, 1))
    return painted


def active_groups(norms: Tensor, tol: float = 0.0) -> Tensor:
    """Boolean (N, gh, gw): groups the attack touched (‖δ_G‖2 > tol), the group-sparsity pattern."""
    return norms > tol
