"""Transfer attacks: craft on one model (or the mean logits of several), judge the examples on another.

The thesis attacks defenses this way: examples crafted on the undefended MNIST network with confidence κ are sent
to the distilled one (Table 8), and examples crafted on an ensemble of undefended networks — the mean of their
logits — are sent to Madry's model (Table 10). The attack itself never sees the target.

* :func:`load_source` loads the crafting model(s) and refuses, in one sentence, any that takes other images or
  answers other classes than the target.
* :func:`judge` re-labels a result with the target's verdict: ``success`` becomes transfer success (the target
  classifies the example as the target class; untargeted: not as the label) and the source's white-box success is
  returned beside it.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from advlens.models import ModelUnavailable, get_spec, load_model
from attacks import AttackResult, PixelModel


class EnsembleNet(nn.Module):
    """The mean of the logits of several [0,1]-input models (each keeps its own normalisation)."""

    def __init__(self, members: Sequence[PixelModel]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([m(x) for m in self.members]).mean(0)


def parse_sources(text: str | Sequence[str]) -> list[str]:
    names = [s.strip() for s in (text.split(",") if isinstance(text, str) else text) if s and s.strip()]
    if not names:
        raise ValueError("--craft-on needs at least one model name, e.g. --craft-on mnist-cnn.")
    return list(dict.fromkeys(names))


def check_compatible(sources: Sequence[str], target: str) -> None:
    """One sentence when a source takes other inputs or answers other classes than ``target``."""
    t = get_spec(target)
    for name in sources:
        s = get_spec(name)
        if (s.channels, s.input_size) != (t.channels, t.input_size) or s.num_classes != t.num_classes:
            raise ModelUnavailable(
                f"Cannot craft on {name} for {target}: {name} takes {s.channels}×{s.input_size[0]}×{s.input_size[1]} "
                f"images in {s.num_classes} classes, {target} takes {t.channels}×{t.input_size[0]}×{t.input_size[1]} "
                f"in {t.num_classes}.")


def load_source(sources: str | Sequence[str], target: str, device: torch.device | str = "cpu") -> PixelModel:
    """The model the attack runs on: one source as it is, several as the mean of their logits."""
    names = parse_sources(sources)
    check_compatible(names, target)
    models = [load_model(n, device) for n in names]
    if len(models) == 1:
        return models[0]
    t = get_spec(target)
    return PixelModel(EnsembleNet(models), (0.0,), (1.0,), channels_last=False, input_size=t.input_size,
                      num_classes=t.num_classes).to(models[0].device)


@torch.no_grad()
def fooled(model: PixelModel, x: Tensor, labels: Tensor, targets: Tensor | None, batch: int = 256) -> Tensor:
    """(N,) bool: ``model`` classifies x as the target (untargeted: not as the label)."""
    pred = torch.cat([model(x[i:i + batch].to(model.device)).argmax(1).cpu() for i in range(0, len(x), batch)])
    return pred.ne(labels.cpu()) if targets is None else pred.eq(targets.cpu())


def judge(result: AttackResult, target: PixelModel) -> tuple[AttackResult, Tensor]:
    """(the result with ``success`` on the target, the white-box success on the source). Where the source attack
    failed, the example is the original image; it counts on the target only if it fools the target too."""
    source_success = result.success.detach().clone()
    on_target = fooled(target, result.adversarial.detach(), result.labels, result.targets).to(result.success.device)
    return dataclasses.replace(result, success=on_target), source_success


@functools.lru_cache(maxsize=4)
def cached_source(sources: tuple[str, ...], target: str, device: str) -> PixelModel:
    """:func:`load_source`, loaded once per process (the evaluation runner's workers take many chunks)."""
    return load_source(sources, target, device)


# ------------------------------------------------------------------------------------------- the κ experiment
