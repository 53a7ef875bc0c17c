"""The outer loop shared by C&W, EAD and COV: binary search over c, best-so-far, early abort, callback."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Protocol

import torch
from torch import Tensor

from attacks.base import AttackResult, Callback, IterationState
from attacks.losses import is_adversarial
from attacks.model import PixelModel
from attacks.search import BestTracker, ConstSearch, abort_every


@dataclass
class Step:
    """What one optimiser iteration reports about the iterate it judged."""

    candidate: Tensor  # the iterate judged for success, in [0,1]
    margin: Tensor  # (N,) logit margin of the candidate
    objective: Tensor  # (N,) the attack's full objective at the candidate
    distance: Tensor  # (N,) what the decision rule minimises
    losses: dict[str, Tensor] = field(default_factory=dict)
    extra: dict[str, Tensor] = field(default_factory=dict)


class Optimiser(Protocol):
    def step(self, k: int) -> Step: ...


def check_inputs(model: PixelModel, inputs: Tensor, labels: Tensor, targets: Optional[Tensor]) -> None:
    if inputs.dim() != 4:
        raise ValueError(f"Inputs must be a batch of images (N, C, H, W); got shape {tuple(inputs.shape)}.")
    if inputs.numel() and (inputs.min() < 0 or inputs.max() > 1):
        raise ValueError("Inputs must be images in [0, 1] pixel space; the model wrapper owns normalisation.")
    if labels.shape != (inputs.shape[0],):
        raise ValueError(f"Need one label per image: {inputs.shape[0]} images, labels of shape {tuple(labels.shape)}.")
    if targets is not None:
        if targets.shape != labels.shape:
            raise ValueError("Need one target per image.")
        if bool((targets == labels).any()):
            raise ValueError("A target class must differ from the image's true class.")


def check_positive(**values: float) -> None:
    for name, value in values.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number; got {value!r}.")


def check_non_negative(**values: float) -> None:
    for name, value in values.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be zero or positive; got {value!r}.")


def minimise_over_const(
    name: str,
    model: PixelModel,
    inputs: Tensor,
    labels: Tensor,
    targets: Optional[Tensor],
    start: Callable[[Tensor, Tensor, Tensor, Optional[Tensor], Tensor], Optimiser],
    *,
    kappa: float,
    initial_const: float,
    binary_search_steps: int,
    steps: int,
    abort_early: bool,
    callback: Optional[Callback],
    params: dict,
) -> AttackResult:
    """Run ``start(x0, labels, targets, const)`` 's optimiser for each value of c and keep the best iterate.

    The loop never reads a tensor back to the host except for the early-abort test (ten times per value of c)
    and whatever the callback itself reads.
    """
    check_inputs(model, inputs, labels, targets)
    check_non_negative(kappa=kappa)
    check_positive(initial_const=initial_const)
    if binary_search_steps < 1 or steps < 1:
        raise ValueError("The attack needs at least one binary-search step and one iteration.")
    started = time.perf_counter()
    device = model.device
    x0 = inputs.detach().to(device, torch.float32)
    labels = labels.to(device)
    targets = None if targets is None else targets.to(device)
    n = x0.shape[0]

    search = ConstSearch(initial_const, n, device)
    best = BestTracker(x0)
    history = torch.zeros(binary_search_steps * steps, n, device=device)
    total = binary_search_steps * steps
    done = 0
    stopped = False
    check = abort_every(steps)
    for binary_step in range(binary_search_steps):
        const = search.const
        optimiser = start(x0, labels, targets, const)
        found = torch.zeros(n, dtype=torch.bool, device=device)
        previous = torch.tensor(math.inf, device=device)
        for k in range(steps):
            s = optimiser.step(k)
            success = is_adversarial(s.margin, kappa)
            found |= success
            best.update(s.candidate, s.distance, success, const)
            history[done] = s.objective.detach()
            done += 1
            if callback is not None:
                state = IterationState(
                    attack=name, iteration=done, total_iterations=total, binary_step=binary_step, step=k,
                    current=s.candidate, losses=s.losses, success=success, best=best.adversarial,
                    best_found=best.found, const=const, extra=s.extra,
                )
                if callback(state):
                    stopped = True
                    break
            if abort_early and k % check == 0:  # iterations 0, s/10, 2s/10, … as in the references
                # The batch's summed objective, as Carlini's reference, the EAD code and foolbox test it.
                objective = s.objective.detach().sum()
                if bool(objective > 0.9999 * previous):
                    break
                previous = objective
        if stopped:
            break
        search.update(found)

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return AttackResult(
        attack=name, original=x0, adversarial=best.adversarial, success=best.found, labels=labels,
        targets=targets, const=torch.where(best.found, best.const, search.const), loss_history=history[:done].cpu(),
        iterations=done, seconds=time.perf_counter() - started, device=str(device), stopped=stopped, params=params,
    )
