"""Feature squeezing (Xu, Evans, Qi, NDSS 2018) as a detector around any [0,1]-input model, in pure PyTorch.

A squeezer removes detail an adversarial perturbation relies on; the detection score of an input is the largest ℓ1
distance between the model's softmax on the input and on each squeezed copy; an input whose score is above a
threshold is called adversarial. The threshold is set on legitimate images at a false-positive rate (5%, as Xu et
al. and the EAD thesis): the ⌈n·(1 − fpr)⌉-th smallest of their scores (EvadeML-Zoo's rule), so at most fpr of
them lie above it.

Squeezers are named as in EvadeML-Zoo: ``bit_depth_B`` (rint(x·(2^B−1))/(2^B−1)) and ``median_filter_W_H``
(scipy's ``median_filter`` with ``mode='reflect'``: for an even window the upper median of the window that ends at
the pixel). MNIST's joint detector is ``bit_depth_1,median_filter_2_2``. An attack succeeds against the detector
only if it fools the model *and* its example is not detected (Tables 11–12 of the thesis).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Sequence
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MNIST_SQUEEZERS = ("bit_depth_1", "median_filter_2_2")
DEFAULT_FPR = 0.05


def bit_depth(x: Tensor, bits: int) -> Tensor:
    levels = 2 ** bits - 1
    return torch.round(x * levels) / levels


def median_filter(x: Tensor, width: int, height: int) -> Tensor:
    """scipy.ndimage.median_filter(x, size=(1, 1, height, width), mode='reflect') on (N, C, H, W)."""
    top, left = height // 2, width // 2
    # scipy's 'reflect' repeats the edge (d c b a | a b c d), which is torch's 'replicate' for a pad of one pixel
    # and 'reflect' shifted by one beyond; windows of up to 3 pixels only need one.
    pad = (left, width - 1 - left, top, height - 1 - top)
    if max(pad) > 1:
        padded = torch.cat([x.flip(-1)[..., -pad[0]:] if pad[0] else x[..., :0], x,
                            x.flip(-1)[..., :pad[1]] if pad[1] else x[..., :0]], dim=-1)
        padded = torch.cat([padded.flip(-2)[..., -pad[2]:, :] if pad[2] else padded[..., :0, :], padded,
                            padded.flip(-2)[..., :pad[3], :] if pad[3] else padded[..., :0, :]], dim=-2)
    else:
        padded = F.pad(x, pad, mode="replicate")
    n, c, h, w = x.shape
    windows = F.unfold(padded.reshape(n * c, 1, *padded.shape[-2:]), (height, width))  # (N·C, H·W window, L)
    k = windows.shape[1]
    return windows.sort(dim=1).values[:, k // 2].reshape(n, c, h, w)


_NAMES = {
    re.compile(r"^bit_depth_(\d+)$"): lambda m: (lambda x: bit_depth(x, int(m.group(1)))),
    re.compile(r"^median_filter_(\d+)_(\d+)$"): lambda m: (lambda x: median_filter(x, int(m.group(1)), int(m.group(2)))),
}


def squeezer(name: str) -> Callable[[Tensor], Tensor]:
    for pattern, make in _NAMES.items():
        match = pattern.match(name.strip())
        if match and all(int(g) >= 1 for g in match.groups()):
            return make(match)
    raise ValueError(f"Unknown squeezer {name!r}: use bit_depth_B (B ≥ 1) or median_filter_W_H, "
                     "e.g. bit_depth_1,median_filter_2_2.")


def parse_squeezers(text: str | Sequence[str]) -> tuple[str, ...]:
    names = tuple(s.strip() for s in (text.split(",") if isinstance(text, str) else text) if s and s.strip())
    if not names:
        raise ValueError("Name at least one squeezer, e.g. bit_depth_1,median_filter_2_2.")
    for n in names:
        squeezer(n)
    return names


class FeatureSqueezing:
    """The joint detector: ``score``, ``fit`` (threshold at a false-positive rate) and ``detect``."""

    def __init__(self, model: nn.Module, squeezers: str | Sequence[str] = MNIST_SQUEEZERS,
                 threshold: Optional[float] = None) -> None:
        self.model = model
        self.names = parse_squeezers(squeezers)
        self.squeezers = [squeezer(n) for n in self.names]
        self.threshold = threshold
        self.fpr: Optional[float] = None
        self.fit_size: Optional[int] = None

    @torch.no_grad()
    def squeezed(self, x: Tensor) -> dict[str, Tensor]:
        return {n: s(x) for n, s in zip(self.names, self.squeezers)}

    @torch.no_grad()
    def distances(self, x: Tensor, batch: int = 256) -> Tensor:
        """(N, S): the ℓ1 distance between the softmax on x and on each squeezed x."""
        out = []
        device = next(iter(self.model.buffers()), x).device
        for xb in x.split(batch):
            xb = xb.to(device)
            p = self.model(xb).softmax(1)
            out.append(torch.stack([(self.model(s(xb)).softmax(1) - p).abs().sum(1) for s in self.squeezers], 1).cpu())
        return torch.cat(out)

    def score(self, x: Tensor) -> Tensor:
        """(N,): the largest ℓ1 distance over the squeezers."""
        return self.distances(x).max(1).values

    def fit(self, legit: Tensor, fpr: float = DEFAULT_FPR) -> float:
        """Set the threshold so that at most ``fpr`` of the legitimate images ``legit`` score above it."""
        if not 0 <= fpr < 1:
            raise ValueError(f"The false-positive rate must be in [0, 1); got {fpr}.")
        scores = self.score(legit).sort().values
        k = min(len(scores), max(1, math.ceil(len(scores) * (1 - fpr))))
        self.threshold, self.fpr, self.fit_size = float(scores[k - 1]), fpr, len(scores)
        return self.threshold

    def detect(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(detected (N,) bool, score (N,))."""
        if self.threshold is None:
            raise ValueError("The detector has no threshold yet: fit it on legitimate images first.")
        s = self.score(x)
        return s > self.threshold, s

    def describe(self) -> dict[str, Any]:
        return {"squeezers": list(self.names), "threshold": self.threshold, "fpr": self.fpr, "fit_size": self.fit_size}


def judge(result: Any, detector: FeatureSqueezing) -> tuple[Any, list[dict[str, Any]]]:
    """The result with ``success`` = fooled the model and not detected, and each sample's detection facts."""
    detected, score = detector.detect(result.adversarial.detach())
    fooled = result.success.detach().cpu()
    facts = [{"score": float(s), "threshold": detector.threshold, "detected": bool(d), "fooled": bool(f),
              "squeezers": list(detector.names)} for s, d, f in zip(score, detected, fooled)]
    ok = (fooled & ~detected).to(result.success.device)
    return dataclasses.replace(result, success=ok), facts
