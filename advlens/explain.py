"""Explain an attack result: perturbation views, ASM and B_ASM∘δ, the CAM quartet of Fig. 4, interpretability scores.

``interpretability_scores`` computes per-sample tensors for a whole batch; ``explain`` turns one sample of them into
JSON-ready numbers and, given a folder, PNGs. Both are what ``advlens attack --explain`` and the app call.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor

from advlens.report import grouping_of
from attacks.base import AttackResult
from interpret import render
from interpret.asm import adversarial_saliency_map
from interpret.cam import CAM_UNITS, cam_quartet, class_activation_maps, registry_options
from interpret.groups import group_norms
from interpret.perturbation import group_cover, magnitude
from interpret.scores import IS_PERCENTILES, cam_interpretability, interpretability_curve, percentile_mask

PNG_NAMES = ("heatmap.png", "groups.png", "asm.png", "asm_delta.png",
             "cam_x0_t0.png", "cam_x0_t.png", "cam_adv_t0.png", "cam_adv_t.png")


def explained_targets(model: torch.nn.Module, result: AttackResult) -> Tensor:
    """The class t the explanation is about: the attack's target, or for an untargeted attack the adversarial
    prediction (for a failed untargeted attack that is usually t0 itself, and the ASM is then empty)."""
    if result.targets is not None:
        return result.targets
    with torch.no_grad():
        return model(result.adversarial).argmax(1)


def interpretability_scores(model: torch.nn.Module, spec: object, result: AttackResult, *, nu: float = 90,
                            nus: Iterable[float] = IS_PERCENTILES, cam_method: str = "gradcam",
                            quartet: bool = False) -> dict:
    """Per-sample ASM, CAMs and IS values for every sample of ``result`` (tensors on the CPU).

    Returns {"targets": (N,), "asm": (N, C, H, W), "mask": B_ASM at ν, "is_asm": (N,) at ν, "is_curve": {ν: (N,)},
    "cams": {"x0_t0": (N, H, W), ...} (all four with ``quartet``, else only C(x0, t0)), "is_cam": (N,)}.
    IS is NaN for a sample whose δ is 0 (failed attack). The CAM-based IS uses B = top-(100−ν)% pixels of
    C(x0, t0), the true class's discriminative region on the original image (section 6).
    """
    targets = explained_targets(model, result)
    delta = result.perturbation.detach().cpu()
    asm = adversarial_saliency_map(model, result.original, result.labels, targets).cpu()
    curve = interpretability_curve(delta, asm, sorted(set(nus) | {nu}))
    options = dict(method=cam_method, **registry_options(spec, cam_method))
    if quartet:
        cams = cam_quartet(model, result.original, result.adversarial, result.labels, targets, **options)
    else:
        cams = {"x0_t0": class_activation_maps(model, result.original, result.labels, **options)}
    return {
        "targets": targets.cpu(), "asm": asm, "mask": percentile_mask(asm, nu), "is_asm": curve[nu],
        "is_curve": {k: v for k, v in curve.items() if k in set(nus)}, "cams": cams,
        "is_cam": cam_interpretability(delta, cams["x0_t0"], nu),
    }


def explain(model: torch.nn.Module, spec: object, result: AttackResult, out_dir: Optional[Path] = None,
            nu: float = 90, *, index: int = 0, cam_method: str = "gradcam", alpha: float = 0.5) -> dict:
    """JSON-ready interpretability numbers for sample ``index`` of ``result``; PNGs too if ``out_dir`` is given.

    Returns {"is_asm": IS at ν (eq. 23 with B_ASM), "is_cam": IS with the top CAM region, "is_curve": {ν: IS}
    for ν = 30..90, "explained_target": t, "cam_method", "is_nu": ν, "explain_files": [names written]}; an IS is
    None where δ = 0. Writes heatmap.png (|δ| summed over channels), groups.png (group ℓ2 norms over x0),
    asm.png (ASM(x0, t) over x0), asm_delta.png (|B_ASM∘δ| over x0) and cam_{x0,adv}_{t0,t}.png (Fig. 4, one
    colour range). ``cam_method`` is "gradcam" by default (equal to the original CAM up to scale on a GAP +
    linear head); "cam", "gradcam++" and "scorecam" also work.
    """
    sample = _select(result, index)
    scores = interpretability_scores(model, spec, sample, nu=nu, cam_method=cam_method, quartet=out_dir is not None)
    report = summarise_scores(scores, nu, cam_method)
    if out_dir is not None:
        report["explain_files"] = [p.name for p in write_pngs(Path(out_dir), sample, scores, cam_method, alpha)]
    return report


def summarise_scores(scores: dict, nu: float = 90, cam_method: str = "gradcam", index: int = 0) -> dict:
    """The JSON-ready interpretability numbers of sample ``index`` of ``interpretability_scores``'s output: what
    the report's ``explanation`` holds, in the CLI and the app alike. ``scores`` must have been computed with ν
    among its percentiles."""
    return {
        "is_asm": _json_float(scores["is_curve"][nu][index] if nu in scores["is_curve"] else scores["is_asm"][index]),
        "is_cam": _json_float(scores["is_cam"][index]),
        "is_curve": {_json_key(k): _json_float(v[index]) for k, v in scores["is_curve"].items()},
        "is_nu": nu,
        "explained_target": int(scores["targets"][index]),
        "cam_method": cam_method,
    }


def sample_views(sample: AttackResult, scores: Optional[dict] = None) -> dict:
    """The (H, W) maps both the PNGs and the app's figures draw, for the first sample of ``sample``.

    "magnitude": |δ| summed over channels; "groups": each group's ‖δ_G‖2 painted on its pixels, with "group_norms"
    its (P, Q) grid, "group_size"/"group_stride" the layout (``report.grouping_of``, the one resolver). Given the
    ``scores`` of ``interpretability_scores``, also "asm": ASM(x0, t) summed over channels, and "asm_delta":
    |B_ASM∘δ| summed over channels, B_ASM as in ``scores``.
    """
    delta = sample.perturbation.detach().cpu()[:1]
    size, stride = grouping_of(sample)
    norms = group_norms(delta, size, stride)
    views = {
        "magnitude": magnitude(delta)[0],
        "group_norms": norms[0],
        "groups": group_cover(norms, size, stride, tuple(delta.shape[-2:]))[0],
        "group_size": size, "group_stride": stride,
    }
    if scores is not None:
        views["asm"] = scores["asm"][0].sum(0)
        views["asm_delta"] = magnitude(delta * scores["mask"][:1].to(delta.dtype))[0]
    return views


def write_pngs(out_dir: Path, sample: AttackResult, scores: dict, cam_method: str,
               alpha: float = 0.5) -> list[Path]:
    """The eight PNGs of ``explain`` for the first sample of ``sample`` (``spec`` is not needed: the group layout
    comes from the result)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    x0, x_adv = sample.original[0].cpu(), sample.adversarial[0].cpu()
    views = sample_views(sample, scores)
    size, stride = views["group_size"], views["group_stride"]
    sparse = dict(cmap=render.HEAT_CMAP, alpha=0.8, vmin=0.0, hide_zero=True)
    written = [
        render.heat_png(out_dir / "heatmap.png", views["magnitude"], unit="|δ| summed over channels"),
        render.overlay_png(out_dir / "groups.png", x0, views["groups"], unit=f"‖δ_G‖2 ({size}×{size}/{stride})",
                           **sparse),
        render.overlay_png(out_dir / "asm.png", x0, views["asm"], unit="ASM(x0, t)", **sparse),
        render.overlay_png(out_dir / "asm_delta.png", x0, views["asm_delta"], unit="|B_ASM∘δ|", **sparse),
    ]
    cams = {k: v[0] for k, v in scores["cams"].items()}
    written += render.quartet_pngs(out_dir, x0, x_adv, cams, unit=CAM_UNITS[cam_method], alpha=alpha)
    return written


def _select(result: AttackResult, index: int) -> AttackResult:
    """Sample ``index`` of a batch result, as a batch of one."""
    pick = slice(index, index + 1)
    fields = {k: (v[pick] if isinstance(v, Tensor) and v.dim() and v.shape[0] == result.original.shape[0] else v)
              for k, v in result.__dict__.items() if k != "loss_history"}
    return AttackResult(**fields, loss_history=result.loss_history[:, pick])


def _json_float(value: Tensor | float) -> Optional[float]:
    value = float(value)
    return None if math.isnan(value) else round(value, 6)


def _json_key(nu: float) -> int | float:
    return int(nu) if float(nu).is_integer() else float(nu)
