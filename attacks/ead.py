"""EAD, the elastic-net attack (Chen et al. 2018), solved by projected ISTA or FISTA (Algorithm 1)."""

from __future__ import annotations

from typing import Literal, Optional

import torch
from torch import Tensor

from attacks.base import AttackResult, Callback
from attacks.contract import declare
from attacks.driver import Step, minimise_over_const
from attacks.losses import hinge_loss, logit_margin
from attacks.model import PixelModel
from attacks.params import ABORT_EARLY, BETA, SEARCH, Param

STEP_SIZE = Param("learning_rate", float, 1e-2, "α₀, the ISTA/FISTA step size, decayed as α₀√(1 − k/K) "
                  "(Algorithm 1).", label="α₀ · step size", low=1e-5, high=10.0, log=True, group="advanced",
                  aliases=("lr",))
DECISION_RULE = Param("decision_rule", str, "en", "Which successful iterate is kept: least elastic-net distortion "
                      "β‖δ‖₁ + ‖δ‖₂² (EN) or least ‖δ‖₁ (L1), Sec. 3 of EAD.", label="decision rule",
                      choices=("en", "l1"), aliases=("rule",))
OPTIMIZER = Param("optimizer", str, "fista", "FISTA (Algorithm 1, momentum k/(k+3)) or plain ISTA (eq. 8).",
                  label="optimiser", choices=("fista", "ista"), group="advanced")
SCALED_THRESHOLD = Param("scaled_threshold", bool, False, "Soft-threshold by α_k·β, the textbook proximal operator, "
                         "instead of eq. 9's β.", label="textbook threshold α·β", group="advanced")


def project_shrink(z: Tensor, x0: Tensor, beta: float | Tensor) -> Tensor:
    """S_β(z) of eq. (9): soft-threshold z − x0 by β around x0, then project onto the box [0,1]."""
    d = z - x0
    shrunk = torch.where(d > beta, (z - beta).clamp(max=1.0), (z + beta).clamp(min=0.0))
    return torch.where(d.abs() > beta, shrunk, x0)


def elastic_net(delta: Tensor, beta: float) -> tuple[Tensor, Tensor, Tensor]:
    """(‖δ‖1, ‖δ‖2², β‖δ‖1 + ‖δ‖2²) per sample."""
    flat = delta.flatten(1)
    l1 = flat.abs().sum(1)
    l2sq = flat.square().sum(1)
    return l1, l2sq, beta * l1 + l2sq


class _Fista:
    """One value of c of Algorithm 1. With ``momentum=False`` it is plain ISTA, eq. (8)."""

    def __init__(self, model: PixelModel, x0: Tensor, labels: Tensor, targets: Optional[Tensor], const: Tensor, *,
                 beta: float, kappa: float, learning_rate: float, steps: int, momentum: bool,
                 rule: str, scaled_threshold: bool) -> None:
        self.model, self.x0, self.labels, self.targets, self.const = model, x0, labels, targets, const
        self.beta, self.kappa, self.lr0, self.steps = beta, kappa, learning_rate, steps
        self.momentum, self.rule, self.scaled_threshold = momentum, rule, scaled_threshold
        self.x = x0.clone()  # x(0) = y(0) = x0, reset for every c
        self.y = x0.clone()

    def _judge(self, x: Tensor, margin: Tensor, f: Tensor) -> Step:
        l1, l2sq, en = elastic_net(x - self.x0, self.beta)
        objective = self.const * f + en  # eq. (7)
        distance = en if self.rule == "en" else l1
        losses = {"f": f, "l1": l1, "l2": l2sq.sqrt(), "objective": objective}
        return Step(candidate=x, margin=margin, objective=objective, distance=distance, losses=losses)

    def step(self, k: int) -> Step:
        lr = self.lr0 * (1 - k / self.steps) ** 0.5  # α_k: square-root decay from α0
        y = self.y.requires_grad_(True)
        margin = logit_margin(self.model(y), self.labels, self.targets)
        f = hinge_loss(margin, self.kappa)
        smooth = self.const * f + (y - self.x0).flatten(1).square().sum(1)  # g(x) = c·f(x) + ‖x − x0‖2²
        (grad,) = torch.autograd.grad(smooth.sum(), y)
        threshold = lr * self.beta if self.scaled_threshold else self.beta
        with torch.no_grad():
            if not self.momentum:
                # ISTA: y(k) is x(k), so this forward pass already judged it; x(k+1) is judged next time.
                judged = self._judge(y.detach(), margin.detach(), f.detach())
                self.y = project_shrink(y.detach() - lr * grad, self.x0, threshold)  # eq. (8)
                return judged
            x_next = project_shrink(y.detach() - lr * grad, self.x0, threshold)  # x(k+1) = S_β(y(k) − α_k∇g(y(k)))
            self.y = x_next + (k / (k + 3)) * (x_next - self.x)  # y(k+1) = x(k+1) + k/(k+3)(x(k+1) − x(k))
            self.x = x_next
            # The decision rule is over x(k), not the slack point y(k): this costs one forward pass.
            margin_x = logit_margin(self.model(x_next), self.labels, self.targets)
            return self._judge(x_next, margin_x, hinge_loss(margin_x, self.kappa))


@declare(BETA, *SEARCH[:-1], STEP_SIZE, DECISION_RULE, OPTIMIZER, SCALED_THRESHOLD, ABORT_EARLY)
def ead(
    model: PixelModel,
    inputs: Tensor,
    labels: Tensor,
    targets: Optional[Tensor] = None,
    *,
    beta: float = 1e-3,
    kappa: float = 0.0,
    initial_const: float = 1e-3,
    binary_search_steps: int = 9,
    steps: int = 1000,
    learning_rate: float = 1e-2,
    decision_rule: Literal["en", "l1"] = "en",
    optimizer: Literal["fista", "ista"] = "fista",
    scaled_threshold: bool = False,
    abort_early: bool = True,
    callback: Optional[Callback] = None,
) -> AttackResult:
    """Elastic-net attack: min c·f(x,t) + β‖x − x0‖1 + ‖x − x0‖2² over x ∈ [0,1]^p (eq. 7).

    ``targets=None`` runs the untargeted loss (eq. 6). ``decision_rule`` picks, among all successful iterates,
    the least elastic-net ("en") or least ℓ1 ("l1") distortion. ``scaled_threshold=True`` thresholds by α_k·β,
    the textbook proximal operator of α_k·β‖·‖1, instead of the paper's β.
    """
    def start(x0: Tensor, labels: Tensor, targets: Optional[Tensor], const: Tensor) -> _Fista:
        return _Fista(model, x0, labels, targets, const, beta=beta, kappa=kappa, learning_rate=learning_rate,
                      steps=steps, momentum=optimizer == "fista", rule=decision_rule, scaled_threshold=scaled_threshold)

    params = dict(beta=beta, kappa=kappa, initial_const=initial_const, binary_search_steps=binary_search_steps,
                  steps=steps, learning_rate=learning_rate, decision_rule=decision_rule, optimizer=optimizer,
                  scaled_threshold=scaled_threshold, abort_early=abort_early)
    return minimise_over_const("ead" if optimizer == "fista" else "ead-ista", model, inputs, labels, targets, start,
                               kappa=kappa, initial_const=initial_const, binary_search_steps=binary_search_steps,
                               steps=steps, abort_early=abort_early, callback=callback, params=params)
