"""DeepFool (Moosavi-Dezfooli et al. 2016) in ℓ2 and ℓ∞, as the perturbation-analysis paper frames it (Sec. 6.1).

Each iteration linearises every class at the current point x_t and takes Proposition 1's minimum-norm step
(corrected, ``attacks.closed_form.min_norm_step``) towards the class with the nearest linearised boundary,
l̂ = argmin_{l≠k} |f_k − f_l| / ‖∇f_k − ∇f_l‖_q (targeted: l̂ = t). All K class gradients come from one batched
backward pass. Overshoot: "per-step" multiplies each step by 1 + overshoot (the authors' code and torchattacks:
it compounds), "total" evaluates x₀ + (1 + overshoot)·r (LTS4 and foolbox). A sample stops moving once its point
is fooled; the loop ends at ``steps`` (the paper: 50) or when every sample is fooled, which it checks every 6
iterations (the only read-backs). No box (the paper's), unless ``clip``; the returned image is clip(x₀ + η),
judged by the model (``params["faithful_success"]``: the verdict on the unclipped point). ``result.const`` holds
‖η‖_p of each sample: DeepFool's minimal perturbation, from which ρ̂₁ is computed.

``epsilon`` (optional, default None = the minimal-perturbation attack above): a budget. DeepFool runs exactly as
without it and a sample counts as a success only when it is fooled with ‖r̂‖_p ≤ ε — the authors' code's "DeepFool's
fooling ratio at ε", a threshold on minimal norms, not a clipped or early-stopped run; the others return the original.
"""

from __future__ import annotations

import math
import time
from typing import Optional

import torch
from torch import Tensor

from attacks.base import AttackResult, Callback, IterationState
from attacks.closed_form import CLIP, class_gradients, dual, fooled, lp_norm, margin, min_norm_step, parse_p
from attacks.contract import declare
from attacks.driver import wants_stop
from attacks.model import PixelModel
from attacks.params import Param

DF_NORM = Param("norm", str, "inf", "p of the minimal perturbation: inf (the paper's Table 3 and Fig. 3, dual ‖·‖₁, "
                "sign steps) or 2 (DeepFool's original).", label="ℓp norm", choices=("2", "inf"))
OVERSHOOT = Param("overshoot", float, 0.02, "The overshoot that pushes the point past the linearised boundary "
                  "(DeepFool's 0.02).", label="overshoot", low=0.0, high=10.0, group="advanced")
OVERSHOOT_MODE = Param("overshoot_mode", str, "per-step", "per-step: each step × (1 + overshoot), as the authors' "
                       "code (compounds); total: x₀ + (1 + overshoot)·r, as LTS4 and foolbox.",
                       label="overshoot applied", choices=("per-step", "total"), group="advanced")
DF_STEPS = Param("steps", int, 50, "The iteration cap (the paper: 50, from DeepFool).", label="iteration cap",
                 low=1, high=1000, group="budget")
DF_EPSILON = Param("epsilon", float, None, "ε, a budget on ‖r̂‖_p: a success must be fooled with DeepFool's minimal "
                   "perturbation of norm ≤ ε (the fooling ratio at ε of the authors' code); None: no budget.",
                   label="ε · budget", low=1e-6, high=1e5, log=True, group="budget", optional=True)
CHECK_EVERY = 6  # iterations between the read-backs that drop fooled samples and end the loop when none is left


@declare(DF_NORM, OVERSHOOT, OVERSHOOT_MODE, DF_STEPS, DF_EPSILON, CLIP)
def deepfool(model: PixelModel, inputs: Tensor, labels: Tensor, targets: Optional[Tensor] = None, *,
             norm: str = "inf", overshoot: float = 0.02, overshoot_mode: str = "per-step", steps: int = 50,
             epsilon: Optional[float] = None, clip: bool = False, callback: Optional[Callback] = None) -> AttackResult:
    """DeepFool: r ← r + Prop. 1's step to the nearest linearised boundary, until the label changes (≤ steps)."""
    started = time.perf_counter()
    device = model.device
    p = parse_p(norm)
    q = dual(p)
    x0 = inputs.detach().to(device, torch.float32)
    labels = labels.to(device)
    targets = None if targets is None else targets.to(device)
    n = x0.shape[0]
    r = torch.zeros_like(x0)
    scale = 1.0 + overshoot if overshoot_mode == "total" else 1.0
    best, found = x0.clone(), torch.zeros(n, dtype=torch.bool, device=device)
    faithful = torch.zeros(n, dtype=torch.bool, device=device)
    history = torch.zeros(steps, n, device=device)
    done, stopped = 0, False
    # The rows still computed: every CHECK_EVERY iterations (the read-back) the fooled ones are dropped.
    work = torch.arange(n, device=device)
    active = torch.ones(n, dtype=torch.bool, device=device)
    for t in range(steps + 1):
        xw, lw = x0[work], labels[work]
        tw = None if targets is None else targets[work]
        point = xw + scale * r[work]
        if clip:
            point = point.clamp(0.0, 1.0)
        if t < steps:
            logits, grads = class_gradients(model, point)
        else:
            with torch.no_grad():
                logits = model(point)
        if t > 0:  # judge x_t, the point this pass saw
            now = fooled(logits, lw, tw)
            faithful[work] = now
            adv = point.clamp(0.0, 1.0)
            with torch.no_grad():
                judged = logits if clip else model(adv)
            ok = fooled(judged, lw, tw)
            best[work] = torch.where(ok[:, None, None, None], adv, best[work])
            found[work] = found[work] | ok
            if t > 1:
                history[t - 1] = history[t - 2]
            history[t - 1, work] = margin(judged, lw, tw)
            done = t
            if callback is not None:
                state = IterationState(attack="deepfool", iteration=t, total_iterations=steps, binary_step=0,
                                       step=t - 1, current=best, losses={"margin": history[t - 1]}, success=found,
                                       best=best, best_found=found, const=lp_norm(best - x0, p))
                if wants_stop(callback(state)):
                    stopped = True
                    break
            if t % CHECK_EVERY == 0:  # the one read-back in CHECK_EVERY: drop the fooled rows, stop when none is left
                keep = active[work] & ~now
                if not bool(keep.any()):
                    break
                work, logits = work[keep], logits[keep]
                if t < steps:  # at t = steps there is no gradient pass and nothing after it
                    grads = grads[keep]
        if t == steps:
            break
        lw = labels[work]
        tw = None if targets is None else targets[work]
        rows = torch.arange(work.shape[0], device=device)
        still = active[work] & ~fooled(logits, lw, tw)
        active[work] = still
        with torch.no_grad():
            f = logits - logits[rows, lw][:, None]  # f_l − f_k: negative while the label wins
            w = grads - grads[rows, lw][:, None]  # ∇f_l − ∇f_k
            wn = w.flatten(2).norm(p=q, dim=2) if not math.isinf(q) else w.flatten(2).abs().amax(2)
            if tw is None:
                dist = (f.abs() / (wn + 1e-8)).scatter(1, lw[:, None], math.inf)
                lhat = dist.argmin(1)
            else:
                lhat = tw
            # Prop. 1 (corrected) on L = f_k − f_l̂, ∇L = −w_l̂; +1e-4 so a point on the boundary still crosses it
            step = min_norm_step(-w[rows, lhat], f[rows, lhat].abs() + 1e-4, p)
            if overshoot_mode == "per-step":
                step = step * (1.0 + overshoot)
            r[work] = r[work] + torch.where(still[:, None, None, None], step, torch.zeros_like(step))
    norms = lp_norm(scale * r, p)
    if epsilon is not None:  # the budget: fooled with ‖r̂‖_p ≤ ε (the tolerance of interpret.robustness's threshold)
        within = norms <= epsilon + 1e-9
        found, faithful = found & within, faithful & within
        best = torch.where(found[:, None, None, None], best, x0)
    history_cpu = history[:done].cpu()
    return AttackResult(attack="deepfool", original=x0, adversarial=best, success=found, labels=labels,
                        targets=targets, const=lp_norm(best - x0, p), loss_history=history_cpu, iterations=done,
                        seconds=time.perf_counter() - started, device=str(device), stopped=stopped,
                        params=dict(norm=norm, overshoot=overshoot, overshoot_mode=overshoot_mode, steps=steps,
                                    epsilon=epsilon, clip=clip, faithful_success=faithful.cpu(),
                                    perturbation_norm=norms.cpu()))
