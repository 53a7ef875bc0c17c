"""The one entry point the CLI and the app share: run an attack by name, and report on its result."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from torch import Tensor

import attacks
from attacks import AttackResult, Callback, PixelModel
from interpret.metrics import distortion


@dataclass(frozen=True)
class AttackInfo:
    name: str
    title: str
    run: Callable[..., AttackResult]
    fixed: dict  # arguments this entry pins (EAD's optimiser)
    params: tuple[str, ...]  # the keyword arguments a user may set


_COMMON = ("kappa", "initial_const", "binary_search_steps", "steps", "abort_early")


def _strattack(*args: Any, **kwargs: Any) -> AttackResult:
    from attacks.strattack import strattack

    return strattack(*args, **kwargs)


ATTACKS: dict[str, AttackInfo] = {
    a.name: a
    for a in (
        AttackInfo("cw", "C&W L2", attacks.cw_l2, {}, _COMMON + ("learning_rate",)),
        AttackInfo("ead", "EAD (FISTA)", attacks.ead, {"optimizer": "fista"},
                   _COMMON + ("beta", "learning_rate", "decision_rule", "scaled_threshold")),
        AttackInfo("ead-ista", "EAD (ISTA)", attacks.ead, {"optimizer": "ista"},
                   _COMMON + ("beta", "learning_rate", "decision_rule", "scaled_threshold")),
        AttackInfo("cov", "COV (tanh + Adam on the elastic net)", attacks.cov, {}, _COMMON + ("beta", "learning_rate")),
        AttackInfo("strattack", "StrAttack (ADMM, group sparse)", _strattack, {},
                   _COMMON + ("group_size", "stride", "epsilon", "rho", "alpha", "tau", "gamma", "refine",
                              "refine_percentile", "refine_search_steps", "refine_steps")),
    )
}


def get_attack(name: str) -> AttackInfo:
    try:
        return ATTACKS[name]
    except KeyError:
        raise ValueError(f"Unknown attack {name!r}: choose one of {', '.join(ATTACKS)}.") from None


def run_attack(name: str, model: PixelModel, inputs: Tensor, labels: Tensor, targets: Optional[Tensor],
               callback: Optional[Callback] = None, **params: Any) -> AttackResult:
    """Run the named attack; parameters left as None take the attack's own defaults."""
    info = get_attack(name)
    unknown = set(params) - set(info.params)
    if unknown:
        raise ValueError(f"{info.title} does not take {', '.join(sorted(unknown))}.")
    kwargs = {k: v for k, v in params.items() if v is not None}
    return info.run(model, inputs, labels, targets, callback=callback, **info.fixed, **kwargs)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def parse_device(name: str) -> torch.device:
    if name == "auto":
        return default_device()
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"Unknown device {name!r}: use auto, cpu or cuda.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA was asked for but no GPU is available here: use --device cpu.")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"Unsupported device {name!r}: use auto, cpu or cuda.")
    return device


@torch.no_grad()
def top_classes(model: PixelModel, x: Tensor, k: int = 5) -> list[list[tuple[int, float]]]:
    """Top-k (class, probability) per image."""
    probs = model(x.to(model.device)).softmax(1)
    p, i = probs.topk(min(k, probs.shape[1]), dim=1)
    return [list(zip(ii.tolist(), pp.tolist())) for ii, pp in zip(i.cpu(), p.cpu())]


def summary(result: AttackResult, model: PixelModel, index: int = 0) -> dict[str, Any]:
    """JSON-ready facts about sample ``index`` of a result: predictions, success, distortions, cost."""
    before = top_classes(model, result.original[index:index + 1])[0]
    after = top_classes(model, result.adversarial[index:index + 1])[0]
    d = {k: v[index].item() for k, v in distortion(result.perturbation[index:index + 1]).items()}
    return {
        "attack": result.attack,
        "success": bool(result.success[index]),
        "label": int(result.labels[index]),
        "target": None if result.targets is None else int(result.targets[index]),
        "pred_before": before[0][0],
        "pred_after": after[0][0],
        "top5_before": before,
        "top5_after": after,
        "l0": int(d["l0"]),
        "l0_coords": int(d["l0_coords"]),
        "l1": d["l1"],
        "l2": d["l2"],
        "linf": d["linf"],
        "c": result.const[index].item(),
        "iterations": result.iterations,
        "seconds": result.seconds,
        "device": result.device,
        "stopped": result.stopped,
        "params": {k: _json_value(v, index) for k, v in result.params.items()},
    }


def _json_value(value: Any, index: int) -> Any:
    """Parameters as JSON: a per-sample tensor (StrAttack's ``refined``) becomes this sample's value."""
    if isinstance(value, Tensor):
        return value.reshape(-1)[index].item() if value.numel() > 1 else value.item()
    return value
