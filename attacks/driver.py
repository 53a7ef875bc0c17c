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


@dataclass
class Run:
    """One attack call: its batch on the model's device and its clock."""

    name: str
    device: torch.device
    started: float
    x0: Tensor
    labels: Tensor
    targets: Optional[Tensor]

    @classmethod
    def start(cls, name: str, model: PixelModel, inputs: Tensor, labels: Tensor, targets: Optional[Tensor]) -> Run:
        started, device = time.perf_counter(), model.device
        return cls(name, device, started, inputs.detach().to(device, torch.float32), labels.to(device),
                   None if targets is None else targets.to(device))

    def result(self, adversarial: Tensor, success: Tensor, const: Tensor, history: Tensor, iterations: int,
               stopped: bool, params: dict) -> AttackResult:
        """The run's result: waits for the device once (``seconds`` is then the run's), history to the host."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return AttackResult(
            attack=self.name, original=self.x0, adversarial=adversarial, success=success, labels=self.labels,
            targets=self.targets, const=const, loss_history=history[:iterations].cpu(), iterations=iterations,
            seconds=time.perf_counter() - self.started, device=str(self.device), stopped=stopped, params=params,
        )


def stops(callback: Optional[Callback], state: Callable[[], IterationState]) -> bool:
    """Show ``callback`` the iteration's ``state()``; True when it asks to stop. Without a callback the state is
    never built, so an attack run without one reads nothing back from the device per iteration."""
    return callback is not None and wants_stop(callback(state()))


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
    run = Run.start(name, model, inputs, labels, targets)
    x0, labels, targets, device = run.x0, run.labels, run.targets, run.device
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
            if stops(callback, lambda: IterationState(
                    attack=name, iteration=done, total_iterations=total, binary_step=binary_step, step=k,
                    current=s.candidate, losses=s.losses, success=success, best=best.adversarial,
                    best_found=best.found, const=const, extra=s.extra)):
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

    return run.result(best.adversarial, best.found, torch.where(best.found, best.const, const), history, done,
                      stopped, params)
