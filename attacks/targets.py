"""Target choices: the paper's best / average / worst cases need every incorrect class of an image."""

from __future__ import annotations

import torch
from torch import Tensor


def all_targets(inputs: Tensor, labels: Tensor, num_classes: int) -> tuple[Tensor, Tensor, Tensor]:
    """Repeat each image once per incorrect class, so all targets of an image run in one batch.

    Returns (images, labels, targets) with ``num_classes − 1`` rows per input image, image-major.
    """
    n = inputs.shape[0]
    classes = torch.arange(num_classes, device=labels.device).expand(n, -1)
    targets = classes[classes != labels[:, None]].view(n, num_classes - 1)
    reps = num_classes - 1
    return inputs.repeat_interleave(reps, 0), labels.repeat_interleave(reps), targets.reshape(-1)


def random_targets(labels: Tensor, num_classes: int, generator: torch.Generator | None = None) -> Tensor:
    """One uniformly random incorrect class per label (the paper's average case)."""
    offset = torch.randint(1, num_classes, labels.shape, generator=generator, device="cpu").to(labels.device)
    return (labels + offset) % num_classes
