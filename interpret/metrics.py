"""Distortion metrics and the papers' evaluation protocol (best / average / worst case, success rate)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

METRICS = ("l0", "l0_coords", "l1", "l2", "linf")


def distortion(delta: Tensor, tol: float = 0.0) -> dict[str, Tensor]:
    """Per-sample ℓ0 (changed pixels, and changed coordinates), ℓ1, ℓ2 and ℓ∞ of δ (N, C, H, W).

    A pixel counts as changed when any of its channels moved by more than ``tol``.
    """
    changed = delta.abs() > tol
    flat = delta.flatten(1)
    return {
        "l0": changed.any(1).flatten(1).sum(1),
        "l0_coords": changed.flatten(1).sum(1),
        "l1": flat.abs().sum(1),
        "l2": flat.square().sum(1).sqrt(),
        "linf": flat.abs().amax(1) if flat.shape[1] else flat.new_zeros(flat.shape[0]),
    }


def success_rate(success: Tensor) -> float:
    """Attack success rate in percent."""
    return 100.0 * success.double().mean().item() if success.numel() else 0.0


def mean_over_success(values: Tensor, success: Tensor) -> float:
    """Distortions are averaged over successful examples only (the papers' convention); NaN if none."""
    return values[success].double().mean().item() if bool(success.any()) else float("nan")


def summarise(delta: Tensor, success: Tensor) -> dict[str, float]:
    """Success rate and mean distortions over the successful samples of one batch."""
    d = distortion(delta)
    return {"asr": success_rate(success), **{k: mean_over_success(v, success) for k, v in d.items()}}


def case_summary(delta: Tensor, success: Tensor, per_image: int, by: str = "l2",
                 average_pick: Optional[Tensor] = None) -> dict[str, dict[str, float]]:
    """The best, average and worst case over all incorrect targets of each image.

    ``delta``/``success`` hold ``per_image`` consecutive rows per image (as ``attacks.all_targets`` makes).
    Best case: the least distorted target by ``by`` (a success if any target succeeds). Worst case: the most
    distorted target (a failure if any target fails). Average case: the target ``average_pick[i]`` (row offset
    within image i), a random incorrect class; by default the first.
    """
    return cases_from_distortions(distortion(delta), success, per_image, by, average_pick)


def cases_from_distortions(distortions: dict[str, Tensor], success: Tensor, per_image: int, by: str = "l2",
                           average_pick: Optional[Tensor] = None) -> dict[str, dict[str, float]]:
    """:func:`case_summary` from per-row distortions already computed (the evaluation store keeps them). Other
    per-row values given beside the metrics (an evaluation's queries) are averaged over the same successes."""
    if by not in METRICS:
        raise ValueError(f"by must be one of {METRICS}; got {by!r}.")
    d = {k: distortions[k].double().view(-1, per_image) for k in dict.fromkeys((*METRICS, *distortions))}
    ok = success.bool().view(-1, per_image)
    key = d[by]
    images = torch.arange(ok.shape[0])
    best = torch.where(ok, key, torch.inf).argmin(1)
    worst = torch.where(ok, key, -torch.inf).argmax(1)
    pick = average_pick if average_pick is not None else torch.zeros(ok.shape[0], dtype=torch.long)
    cases = {
        "best": (best, ok.any(1)),
        "average": (pick, ok[images, pick]),
        "worst": (worst, ok.all(1)),
    }
    out: dict[str, dict[str, float]] = {}
    for case, (row, case_ok) in cases.items():
        out[case] = {"asr": success_rate(case_ok)}
        out[case].update({k: mean_over_success(v[images, row], case_ok) for k, v in d.items()})
    return out
