"""The outer loop shared by C&W, EAD and COV: binary search over c, best-so-far, early abort, callback."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional, Protocol

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


def wants_stop(answer: object) -> bool:
    """A callback's answer: True (or a one-element true tensor) stops the attack; False or None goes on."""
    if answer is None or isinstance(answer, bool):
        return bool(answer)
    if isinstance(answer, torch.Tensor) and answer.numel() == 1:
        return bool(answer)
    raise ValueError(f"A callback must return True (stop), False or None; got {type(answer).__name__}"
                     + (f" of shape {tuple(answer.shape)}." if isinstance(answer, torch.Tensor) else "."))


def minimise_over_const(
    name: str,
    model: PixelModel,
    inputs: Tensor,
    labels: Tensor,
    targets: Optional[Tensor],
    start: Callable[[Tensor, Tensor, Optional[Tensor], Tensor], Optimiser],
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
                if wants_stop(callback(state)):
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
