"""Per-sample binary search over the constant c, and bookkeeping of the best result across all c."""

from __future__ import annotations

import math

import torch
from torch import Tensor

UPPER_INIT = 1e10


class ConstSearch:
    """Vectorised binary search over c, one c per sample (Carlini–Wagner's schedule).

    Multiply c by 10 until the first success, then bisect between the largest failing and the smallest
    succeeding value.
    """

    def __init__(self, initial_const: float, n: int, device: torch.device) -> None:
        self.const = torch.full((n,), float(initial_const), device=device)
        self.lower = torch.zeros(n, device=device)
        self.upper = torch.full((n,), UPPER_INIT, device=device)

    def update(self, succeeded: Tensor) -> None:
        self.upper = torch.where(succeeded, torch.minimum(self.upper, self.const), self.upper)
        self.lower = torch.where(succeeded, self.lower, torch.maximum(self.lower, self.const))
        bounded = self.upper < UPPER_INIT / 10
        self.const = torch.where(bounded, (self.lower + self.upper) / 2, self.const * 10)


class BestTracker:
    """The least-distorted successful iterate per sample, over every iteration and every c."""

    def __init__(self, original: Tensor) -> None:
        n = original.shape[0]
        self.adversarial = original.clone()
        self.distance = torch.full((n,), math.inf, device=original.device)
        self.const = torch.zeros(n, device=original.device)

    def update(self, candidate: Tensor, distance: Tensor, success: Tensor, const: Tensor) -> None:
        better = success & (distance < self.distance)
        self.distance = torch.where(better, distance, self.distance)
        self.const = torch.where(better, const, self.const)
        self.adversarial = torch.where(better[:, None, None, None], candidate, self.adversarial)

    @property
    def found(self) -> Tensor:
        return torch.isfinite(self.distance)


def abort_every(steps: int) -> int:
    """Check for a stalled loss ten times per binary-search step (never every 0 iterations)."""
    return max(1, math.ceil(steps / 10))
