"""The interpretability score of StrAttack eq. (23) and the Boolean maps it is measured against.

IS(δ) = ‖B ∘ δ‖2 / ‖δ‖2: the share of the perturbation's ℓ2 energy that falls inside the region B. B is either
B_ASM (the coordinates whose ASM exceeds its ν-th percentile, section 6) or the top-ν region of a CAM.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

IS_PERCENTILES: tuple[int, ...] = (30, 40, 50, 60, 70, 80, 90)  # the ν axis of Fig. 3(a)


def percentile_threshold(scores: Tensor, nu: float, nonzero_only: bool = True) -> Tensor:
    """Per-sample ν-th percentile of ``scores`` (N, ...) → (N,), linear interpolation as numpy's default.

    With ``nonzero_only`` the percentile is taken over the non-zero scores of each sample (as the public GSE
    code does): eq. (61) zeroes most coordinates, and a percentile over all of them would sit at 0 for small ν.
    A sample with no non-zero score gets threshold +inf (an empty region).
    """
    if not 0 <= nu <= 100:
        raise ValueError(f"ν is a percentile in [0, 100]; got {nu!r}.")
    flat = scores.detach().flatten(1).double()
    out = torch.empty(flat.shape[0], dtype=torch.float64, device=flat.device)
    for n, row in enumerate(flat):
        values = row[row != 0] if nonzero_only else row
        out[n] = torch.quantile(values, nu / 100.0) if values.numel() else torch.inf
    return out


def percentile_mask(scores: Tensor, nu: float, nonzero_only: bool = True) -> Tensor:
    """Boolean map B (same shape as ``scores``): B[i] = 1 where scores[i] > its sample's ν-th percentile."""
    threshold = percentile_threshold(scores, nu, nonzero_only).view(-1, *([1] * (scores.dim() - 1)))
    return scores.detach().double() > threshold


def interpretability_score(delta: Tensor, mask: Tensor) -> Tensor:
    """IS(δ) = ‖B∘δ‖2 / ‖δ‖2 per sample (N,), eq. (23); NaN where δ = 0 (the attack failed).

    ``mask`` broadcasts against ``delta`` (N, C, H, W): a per-coordinate B_ASM, or a per-pixel (N, 1, H, W) or
    (N, H, W) region that applies to all channels.
    """
    if mask.dim() == delta.dim() - 1:
        mask = mask.unsqueeze(1)  # a per-pixel region covers every channel
    d = delta.detach().double()
    inside = (d * mask.to(d.dtype)).flatten(1).norm(dim=1)
    total = d.flatten(1).norm(dim=1)
    return torch.where(total > 0, inside / total.clamp_min(torch.finfo(d.dtype).tiny), torch.nan)


def asm_interpretability(delta: Tensor, asm: Tensor, nu: float = 90, nonzero_only: bool = True) -> Tensor:
    """ASM-based IS at threshold ν (N,): B_ASM = ASM > ν-th percentile (section 6), then eq. (23)."""
    return interpretability_score(delta, percentile_mask(asm, nu, nonzero_only))


def cam_interpretability(delta: Tensor, cam: Tensor, nu: float = 90) -> Tensor:
    """CAM-based IS (N,): eq. (23) with B = the top-(100−ν)% pixels of a CAM (N, H, W), e.g. C(x0, t0)."""
    return interpretability_score(delta, percentile_mask(cam, nu, nonzero_only=False))


def interpretability_curve(delta: Tensor, scores: Tensor, nus: Iterable[float] = IS_PERCENTILES,
                           nonzero_only: bool = True) -> dict[float, Tensor]:
    """IS versus ν (Fig. 3a): {ν: IS per sample (N,)} for B = scores > ν-th percentile."""
    return {nu: interpretability_score(delta, percentile_mask(scores, nu, nonzero_only)) for nu in nus}


def nan_mean(values: Tensor) -> float:
    """Mean over the finite entries (failed attacks give NaN); NaN if there are none."""
    finite = values[torch.isfinite(values)]
    return finite.double().mean().item() if finite.numel() else float("nan")
