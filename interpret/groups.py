"""Group-sparsity views of any perturbation δ (C&W, EAD or StrAttack) on one shared group layout.

The layout is ``attacks.groups``'s: r × r × C windows of stride S, zero-padded at a ragged bottom/right border
so every pixel is in a group (see that module). The grid of per-group ℓ2 norms is the heat map of Fig. 2.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from attacks.groups import default_grouping, flat_group_norms, make_grouping

__all__ = ["default_grouping", "fraction_touched", "group_norms", "groups_nonzero", "groups_total"]


def group_norms(delta: Tensor, size: int, stride: int) -> Tensor:
    """(N, C, H, W) → (N, P, Q): ‖δ_{G_{p,q}}‖2 of every group, laid out as the image's grid of windows."""
    grouping = make_grouping(delta.shape, size, stride)
    return flat_group_norms(delta, grouping).view(delta.shape[0], grouping.rows, grouping.cols)


def groups_nonzero(delta: Tensor, size: int, stride: int, tol: float = 0.0) -> Tensor:
    """(N,): how many groups have ‖δ_G‖2 > ``tol`` (the group ℓ0 of δ)."""
    return (group_norms(delta, size, stride) > tol).flatten(1).sum(1)


def groups_total(shape: Sequence[int], size: int, stride: int) -> int:
    """P·Q, the number of groups of an image whose shape ends in (H, W)."""
    return make_grouping(shape, size, stride).count


def fraction_touched(delta: Tensor, size: int, stride: int, tol: float = 0.0) -> Tensor:
    """(N,): the fraction of groups that δ perturbs, in [0, 1]."""
    return groups_nonzero(delta, size, stride, tol).float() / groups_total(delta.shape, size, stride)
