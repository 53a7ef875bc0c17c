"""What the CLI and the app share besides the registry: running an attack by name, and picking the device."""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from attacks import AttackResult, Callback, PixelModel
from attacks.registry import ATTACKS, AttackEntry, get_attack

__all__ = ["ATTACKS", "AttackEntry", "default_device", "get_attack", "parse_device", "run_attack"]


def run_attack(name: str, model: PixelModel, inputs: Tensor, labels: Tensor, targets: Optional[Tensor],
               callback: Optional[Callback] = None, **params: Any) -> AttackResult:
    """Run the named attack; parameters left as None take the attack's own defaults."""
    return get_attack(name)(model, inputs, labels, targets, callback=callback,
                            **{k: v for k, v in params.items() if v is not None})


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def parse_device(name: str) -> torch.device:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``; a device this machine lacks is one sentence."""
    if name == "auto":
        return default_device()
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"Unknown device {name!r}: use auto, cpu or cuda.") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"Unsupported device {name!r}: use auto, cpu or cuda.")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("CUDA was asked for but no GPU is available here: use the cpu device.")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"There is no {name} here: this machine has {torch.cuda.device_count()} GPU(s).")
    return device
