"""Carlini–Wagner L2 and the change-of-variable (COV) elastic-net baseline: tanh space, Adam."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from attacks.base import AttackResult, Callback
from attacks.contract import declare
from attacks.driver import Step, minimise_over_const
from attacks.ead import elastic_net
from attacks.losses import hinge_loss, logit_margin
from attacks.model import PixelModel
from attacks.params import ABORT_EARLY, ADAM_RATE, BETA, SEARCH

_TANH_SCALE = 0.999999  # keeps atanh finite for pixels at exactly 0 or 1


class Adam:
    """Adam (Kingma & Ba 2015, Algorithm 1) on one tensor, with torch.optim.Adam's arithmetic.

    torch.optim's first step imports torch._dynamo, 8 s on this project's 2-core machine: every C&W run in a
    fresh process (the CLI) paid it.
    """

    def __init__(self, param: Tensor, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.param, self.lr, self.betas, self.eps, self.t = param, lr, betas, eps, 0
        self.m1 = torch.zeros_like(param)
        self.m2 = torch.zeros_like(param)

    @torch.no_grad()
    def step(self, grad: Tensor) -> None:
        b1, b2 = self.betas
        self.t += 1
        self.m1.lerp_(grad, 1 - b1)  # m ← β1·m + (1 − β1)·g
        self.m2.mul_(b2).addcmul_(grad, grad, value=1 - b2)  # v ← β2·v + (1 − β2)·g²
        denom = (self.m2.sqrt() / math.sqrt(1 - b2**self.t)).add_(self.eps)
        self.param.addcdiv_(self.m1, denom, value=-self.lr / (1 - b1**self.t))  # θ ← θ − α·m̂/(√v̂ + ε)


class _TanhAdam:
    """One value of c: x = x0 + (tanh(w0 + m) − tanh(w0))/2, so m = 0 is exactly x0 and x stays in the box."""

    def __init__(self, model: PixelModel, x0: Tensor, labels: Tensor, targets: Optional[Tensor], const: Tensor, *,
                 beta: float, kappa: float, learning_rate: float, rule: str) -> None:
        self.model, self.x0, self.labels, self.targets, self.const = model, x0, labels, targets, const
        self.beta, self.kappa, self.rule = beta, kappa, rule
        self.w0 = torch.atanh((2 * x0 - 1) * _TANH_SCALE)
        self.tanh_w0 = torch.tanh(self.w0)
        self.m = torch.zeros_like(x0, requires_grad=True)  # reset, with Adam's moments, for every c
        self.adam = Adam(self.m, learning_rate)

    def step(self, k: int) -> Step:
        x = self.x0 + (torch.tanh(self.w0 + self.m) - self.tanh_w0) / 2
        # x can leave [0,1] by rounding (≤ 5e-7); clamp its value but not its gradient, or pixels at exactly 0
        # or 1 (most of an MNIST digit) would get a zero gradient from clamp and never move.
        x = x + (x.clamp(0.0, 1.0) - x).detach()
        margin = logit_margin(self.model(x), self.labels, self.targets)
        f = hinge_loss(margin, self.kappa)
        l1, l2sq, en = elastic_net(x - self.x0, self.beta)
        objective = self.const * f + en  # C&W: c·f + ‖δ‖2² (β = 0); COV: eq. (7) through tanh
        (grad,) = torch.autograd.grad(objective.sum(), self.m)
        self.adam.step(grad)
        x, f, l2sq, en = x.detach(), f.detach(), l2sq.detach(), en.detach()
        # The iterate judged is the one this forward pass saw, before Adam moves it (as the reference does).
        distance = l2sq if self.rule == "l2" else en
        losses = {"f": f, "l1": l1.detach(), "l2": l2sq.sqrt(), "objective": objective.detach()}
        return Step(candidate=x, margin=margin.detach(), objective=objective.detach(), distance=distance, losses=losses)


def _tanh_attack(name: str, model: PixelModel, inputs: Tensor, labels: Tensor, targets: Optional[Tensor], *,
                 beta: float, rule: str, kappa: float, initial_const: float, binary_search_steps: int, steps: int,
                 learning_rate: float, abort_early: bool, callback: Optional[Callback]) -> AttackResult:
    def start(x0: Tensor, labels: Tensor, targets: Optional[Tensor], const: Tensor) -> _TanhAdam:
        return _TanhAdam(model, x0, labels, targets, const, beta=beta, kappa=kappa, learning_rate=learning_rate,
                         rule=rule)

    params = dict(beta=beta, kappa=kappa, initial_const=initial_const, binary_search_steps=binary_search_steps,
                  steps=steps, learning_rate=learning_rate, decision_rule=rule, abort_early=abort_early)
    return minimise_over_const(name, model, inputs, labels, targets, start, kappa=kappa, initial_const=initial_const,
                               binary_search_steps=binary_search_steps, steps=steps, abort_early=abort_early,
                               callback=callback, params=params)


@declare(*SEARCH[:-1], ADAM_RATE, ABORT_EARLY)
def cw_l2(model: PixelModel, inputs: Tensor, labels: Tensor, targets: Optional[Tensor] = None, *,
          kappa: float = 0.0, initial_const: float = 1e-3, binary_search_steps: int = 9, steps: int = 1000,
          learning_rate: float = 1e-2, abort_early: bool = True, callback: Optional[Callback] = None) -> AttackResult:
    """Carlini–Wagner L2: min ‖δ‖2² + c·f(x0 + δ, t) in tanh space with Adam; keeps the least-ℓ2 success."""
    return _tanh_attack("cw", model, inputs, labels, targets, beta=0.0, rule="l2", kappa=kappa,
                        initial_const=initial_const, binary_search_steps=binary_search_steps, steps=steps,
                        learning_rate=learning_rate, abort_early=abort_early, callback=callback)


@declare(BETA, *SEARCH[:-1], ADAM_RATE, ABORT_EARLY)
def cov(model: PixelModel, inputs: Tensor, labels: Tensor, targets: Optional[Tensor] = None, *,
        beta: float = 1e-3, kappa: float = 0.0, initial_const: float = 1e-3, binary_search_steps: int = 9,
        steps: int = 1000, learning_rate: float = 1e-2, abort_early: bool = True,
        callback: Optional[Callback] = None) -> AttackResult:
    """The COV baseline of Table 1: tanh + Adam on c·f + β‖δ‖1 + ‖δ‖2², EN decision rule.

    Adam's subgradient steps on ‖δ‖1 never land exactly on zero, so β barely changes the result: the reason
    EAD uses ISTA.
    """
    return _tanh_attack("cov", model, inputs, labels, targets, beta=beta, rule="en", kappa=kappa,
                        initial_const=initial_const, binary_search_steps=binary_search_steps, steps=steps,
                        learning_rate=learning_rate, abort_early=abort_early, callback=callback)
