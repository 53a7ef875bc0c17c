"""Defenses around a model, the advlens side: feature squeezing's threshold fitted on the bundled held-out digits.

The detector itself is ``interpret.squeeze`` (pure torch); the defended networks are registry models trained by
``advlens.train_defenses``; transfer is ``advlens.crafting`` (the κ experiment ``advlens.transfer``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from advlens.images import MNIST_HELDOUT, ImageError
from interpret.squeeze import DEFAULT_FPR, MNIST_SQUEEZERS, FeatureSqueezing


def heldout_digits() -> tuple[Tensor, Tensor]:
    """The 1,000 held-out MNIST digits (the gallery, mnist:0–999) as (N, 1, 28, 28) floats in [0,1] and labels."""
    if not MNIST_HELDOUT.exists():
        raise ImageError(f"The MNIST gallery is missing: run `python -m advlens.train_mnist` to create {MNIST_HELDOUT}.")
    with np.load(MNIST_HELDOUT) as npz:
        images, labels = npz["images"], npz["labels"]
    return torch.from_numpy(images).float().div(255).unsqueeze(1), torch.from_numpy(labels).long()


def mnist_detector(model: nn.Module, squeezers: str | Sequence[str] = MNIST_SQUEEZERS, fpr: float = DEFAULT_FPR,
                   fit_on: slice = slice(500, 1000)) -> FeatureSqueezing:
    """The detector with its threshold fitted on held-out digits ``fit_on`` (by default the second half of the
    1,000: the gallery's first digits, mnist:0–499, stay for attacks and for checking the false-positive rate)."""
    x, _ = heldout_digits()
    det = FeatureSqueezing(model, squeezers)
    det.fit(x[fit_on], fpr)
    return det
