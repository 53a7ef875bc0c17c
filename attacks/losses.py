"""The logit hinge loss of C&W and EAD, and the success test that goes with it."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


def logit_margin(logits: Tensor, labels: Tensor, targets: Optional[Tensor]) -> Tensor:
    """How far each sample is past the decision boundary, in logits (positive = adversarial).

    Targeted: Z_t − max_{j≠t} Z_j.  Untargeted: max_{j≠t0} Z_j − Z_t0.
    """
    cls = labels if targets is None else targets
    own = logits.gather(1, cls[:, None]).squeeze(1)
    others = logits.scatter(1, cls[:, None], float("-inf")).amax(1)  # per-row index: no κ-indexing bug
    return own - others if targets is not None else others - own


def hinge_loss(margin: Tensor, kappa: float) -> Tensor:
    """f(x, t) = max{max_{j≠t} Z_j − Z_t, −κ} (eq. 4), or its untargeted form (eq. 6), from the margin."""
    return torch.clamp(-margin, min=-kappa)


def is_adversarial(margin: Tensor, kappa: float) -> Tensor:
    """Success consistent with κ: the hinge is at its floor −κ, and the prediction has moved."""
    return (margin >= kappa) & (margin > 0)
