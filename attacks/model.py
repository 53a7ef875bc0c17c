"""The model wrapper every attack talks to: images in [0,1] pixel space in, logits out."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn


class PixelModel(nn.Module):
    """Wraps a classifier so that it takes images in [0,1] and owns its normalisation.

    Attacks, metrics and CAMs all see the same [0,1] pixel space; only this wrapper knows the mean and
    standard deviation the network was trained with.
    """

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.net = net.eval()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.net((x - self.mean) / self.std)

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def train(self, mode: bool = True) -> "PixelModel":
        # Attacks never train: dropout and batch-norm statistics stay frozen whatever a caller does.
        return super().train(False)
