"""Sliding r×r×C groups over a batch of images (Sec. 2 of Xu et al.), on the device with F.unfold / F.fold.

A mask of size r × r (all C channels) slides with stride S; each position is one group G_{p,q}. Groups overlap
when S < r, tile the image when S = r and leave gaps (pixels in no group) when S > r.

Layout: ``unfold_groups`` turns (N, C, H, W) into columns (N, C·r·r, P·Q), one column per group, groups in
row-major order (p down the image, q across), so ``.view(N, P, Q)`` of any per-group quantity is the grid of
Fig. 2.

Ragged border: when S does not divide H − r (or W − r), the paper's P = (H − r)/S + 1 windows would stop short
of the bottom (right) border and leave the last pixels in no group, free of the group penalty. Instead the
image is zero-padded at the bottom and right so that one more row (column) of windows covers them:
P = ⌈(H − r)/S⌉ + 1, and a border group holds fewer real pixels (the padding is always zero, so it adds nothing
to a norm). An image smaller than the window is one group. With S > r the pixels between windows stay in no
group (``coverage`` is 0 there).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

SMALL_IMAGE = 32  # the paper's MNIST/CIFAR settings apply up to this side length, ImageNet's above it


def _windows(length: int, size: int, stride: int) -> int:
    return max(math.ceil((length - size) / stride), 0) + 1


@dataclass(frozen=True)
class Grouping:
    """Where the groups of an H × W image lie for mask size r and stride S."""

    size: int
    stride: int
    height: int
    width: int

    def __post_init__(self) -> None:
        for name in ("size", "stride", "height", "width"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Group {name} must be a positive integer; got {value!r}.")

    @property
    def rows(self) -> int:
        """P, windows down the image."""
        return _windows(self.height, self.size, self.stride)

    @property
    def cols(self) -> int:
        """Q, windows across the image."""
        return _windows(self.width, self.size, self.stride)

    @property
    def count(self) -> int:
        """P·Q, the number of groups."""
        return self.rows * self.cols

    @property
    def padding(self) -> tuple[int, int]:
        """Zero rows added at the bottom, zero columns at the right, so the windows reach the border."""
        return ((self.rows - 1) * self.stride + self.size - self.height,
                (self.cols - 1) * self.stride + self.size - self.width)

    @property
    def overlapping(self) -> bool:
        return self.stride < self.size


def make_grouping(shape: Sequence[int], size: int, stride: int) -> Grouping:
    """The grouping of images whose shape ends in (H, W): (H, W), (C, H, W) or (N, C, H, W)."""
    if len(shape) < 2:
        raise ValueError(f"Need an image shape ending in (H, W); got {tuple(shape)}.")
    return Grouping(size, stride, int(shape[-2]), int(shape[-1]))


def default_grouping(input_size: int | Sequence[int]) -> tuple[int, int]:
    """(size, stride) of Appendix F: 2 × 2 stride 2 for images up to 32 px (MNIST, CIFAR), 13 × 13 stride 13 above."""
    side = max(input_size) if isinstance(input_size, Sequence) else int(input_size)
    return (2, 2) if side <= SMALL_IMAGE else (13, 13)


def unfold_groups(x: Tensor, grouping: Grouping) -> Tensor:
    """(N, C, H, W) → (N, C·r·r, P·Q): column l holds the pixels of group l."""
    bottom, right = grouping.padding
    if bottom or right:
        x = F.pad(x, (0, right, 0, bottom))
    return F.unfold(x, grouping.size, stride=grouping.stride)


def fold_groups(columns: Tensor, grouping: Grouping) -> Tensor:
    """(N, C·r·r, P·Q) → (N, C, H, W): each pixel gets the sum of its entries over the groups that cover it."""
    bottom, right = grouping.padding
    size = (grouping.height + bottom, grouping.width + right)
    out = F.fold(columns, size, grouping.size, stride=grouping.stride)
    return out[..., : grouping.height, : grouping.width] if bottom or right else out


def coverage(grouping: Grouping, channels: int, device: torch.device | str = "cpu",
             dtype: torch.dtype = torch.float32) -> Tensor:
    """(1, C, H, W): how many groups cover each pixel (1 everywhere for a tiling, 0 in the gaps when S > r)."""
    ones = torch.ones(1, channels * grouping.size**2, grouping.count, device=device, dtype=dtype)
    return fold_groups(ones, grouping)


def column_norms(columns: Tensor) -> Tensor:
    """(N, K, L) → (N, L): the ℓ2 norm of each group."""
    return columns.square().sum(1).sqrt()  # ~10× faster on CPU than linalg.vector_norm over dim 1


def flat_group_norms(x: Tensor, grouping: Grouping) -> Tensor:
    """(N, C, H, W) → (N, P·Q): ‖x_{G_{p,q}}‖2 for every group, the terms of g in eq. (1)."""
    return column_norms(unfold_groups(x, grouping))


def block_shrink(columns: Tensor, threshold: float) -> Tensor:
    """Block soft-thresholding of every column: (1 − threshold/‖col‖2)₊ · col, the prox of threshold·‖·‖2."""
    if threshold == 0:
        return columns.clone()
    norms = column_norms(columns).unsqueeze(1)
    # A zero column gives 1 − ∞ → clamped to 0, never 0/0.
    return columns * (1 - threshold / norms).clamp_(min=0)
