"""The model wrapper every attack talks to: images in [0,1] pixel space in, logits out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
from torch import Tensor, nn


class PixelModel(nn.Module):
    """Wraps a classifier so that it takes images in [0,1] and owns its normalisation.

    Attacks, metrics and CAMs all see the same [0,1] pixel space; only this wrapper knows the mean and
    standard deviation the network was trained with.
    """

    mean: Tensor
    std: Tensor
    input_size: Optional[tuple[int, int]]
    num_classes: Optional[int]

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float], *,
                 channels_last: bool = True, input_size: Optional[tuple[int, int]] = None,
                 num_classes: Optional[int] = None) -> None:
        super().__init__()
        # What the network takes and answers, where known: attacks check their inputs against them.
        self.input_size = None if input_size is None else (int(input_size[0]), int(input_size[1]))
        self.num_classes = num_classes
        # NHWC convolutions: about 20% less time per forward+backward pass of the bundled CNNs on CPU (BENCHMARKS.md).
        self.channels_last = channels_last
        self.net = (net.to(memory_format=torch.channels_last) if channels_last else net).eval()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        x = (x - self.mean) / self.std
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def train(self, mode: bool = True) -> PixelModel:
        # Attacks never train: dropout and batch-norm statistics stay frozen whatever a caller does.
        return super().train(False)
