"""StrAttack (Xu et al., ICLR 2019): group-sparse adversarial perturbations by linearised ADMM.

Problem (2) with D(δ) = ‖δ‖2² and f of eq. (3):

    minimise_δ  c·f(x0 + δ, t) + γ‖δ‖2² + τ Σ_{p,q} ‖δ_{G_{p,q}}‖2   s.t.  x0 + δ ∈ [0,1]^n,  ‖δ‖∞ ≤ ε,

split as problem (4) (non-overlapping groups, S ≥ r) or problem (16) (overlapping groups, S < r, one copy y_i
per group) and solved by ADMM with closed-form steps (10)–(12), (15) / (17)–(18) and dual updates (9). A second
stage (Proposition 3) refines the result under its fixed σ-sparse support, problem (20).

The constant c is searched per sample with the engine's shared schedule (``attacks.search.ConstSearch``):
×10 until the first success, then bisection. The original code multiplies by 5 on failure instead: ×10 reaches a
succeeding c in fewer steps and leaves a wider bracket for the bisection to narrow.

Each iteration makes two passes through the model: forward and backward at x0 + z^k, the linearisation point of
the z-step, and a forward pass without gradient at the sparse iterate δ̂, the point judged for success and kept as
best-so-far. z^k is dense, so the second pass is what lets every iteration's group-sparse iterate be judged.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Optional

import torch
from torch import Tensor

from attacks.base import AttackResult, Callback, IterationState
from attacks.contract import declare
from attacks.driver import Step, minimise_over_const
from attacks.groups import (
    SMALL_IMAGE,
    Grouping,
    block_shrink,
    column_norms,
    coverage,
    default_grouping,
    fold_groups,
    make_grouping,
    unfold_groups,
)
from attacks.losses import hinge_loss, logit_margin
from attacks.model import PixelModel
from attacks.params import ABORT_EARLY, BINARY_SEARCH_STEPS, INITIAL_CONST, KAPPA, STEPS, Param, with_default

PARAMS = (
    KAPPA,
    with_default(INITIAL_CONST, None, optional=True, help="c₀, the first weight of f; None: 0.5 up to 32 px, 2.5 "
                 "above (Appendix F)."),
    with_default(BINARY_SEARCH_STEPS, 8),
    STEPS,
    Param("group_size", int, None, "r, the side of the r×r groups G_{p,q} (Sec. 2); None: 2 up to 32 px, 13 above.",
          label="r · group size (px)", low=1, high=64, group="structure", optional=True),
    Param("stride", int, None, "S, the stride of the group grid; S < r overlaps (Proposition 2); None: S = r.",
          label="S · group stride (px)", low=1, high=64, group="structure", optional=True),
    Param("epsilon", float, 1.0, "ε, the ℓ∞ bound ‖δ‖∞ ≤ ε of problem (2); 1 leaves it unbounded.",
          label="ε · ℓ∞ bound", low=1e-3, high=1.0),
    Param("rho", float, 1.0, "ρ, the ADMM penalty of the augmented Lagrangian (eq. 8).", label="ρ · ADMM penalty",
          low=1e-3, high=1e3, log=True, group="advanced"),
    Param("alpha", float, 5.0, "α, the linearisation weight η_k = α√k of the z-step (eq. 14).",
          label="α · η_k = α√k", low=1e-3, high=1e3, log=True, group="advanced"),
    Param("tau", float, 2.0, "τ, the weight of the group penalty Σ‖δ_G‖₂ (problem 2).",
          label="τ · group-sparsity weight", low=0.0, high=100.0),
    Param("gamma", float, 1.0, "γ, the weight of ‖δ‖₂² (problem 2).", label="γ · ℓ2 weight", low=0.0, high=100.0),
    Param("refine", bool, True, "Refine on the σ-sparse support of the first result (Proposition 3, problem 20).",
          label="refine (Prop. 3)", group="budget"),
    Param("refine_percentile", float, 3.0, "σ's percentile of the non-zero |δ*_i| that the refine stage drops "
          "(eq. 19).", label="refine percentile σ", low=0.0, high=99.0, group="advanced"),
    Param("refine_search_steps", int, 8, "Binary-search steps over c in the refine stage.",
          label="refine binary steps", low=1, high=20, group="advanced"),
    Param("refine_steps", int, 400, "Iterations per value of c in the refine stage.", label="refine iterations",
          low=1, high=10000, log=True, group="advanced"),
    ABORT_EARLY,
)

_QUANTILE_LIMIT = 2**24  # torch.quantile's largest input

# ----------------------------------------------------------------------------------------------------------
# Closed-form ADMM steps. Each solves its own subproblem exactly; the tests check them against direct
# numerical minimisation.


def box_bounds(x0: Tensor, epsilon: float) -> tuple[Tensor, Tensor]:
    """The feasible set of h(w) in eq. (5), coordinate-wise: max{−x0, −ε} ≤ w ≤ min{1 − x0, ε}."""
    return (-x0).clamp(min=-epsilon), (1 - x0).clamp(max=epsilon)


def delta_step(a: Tensor, rho: float, gamma: float) -> Tensor:
    """argmin_δ γ‖δ‖2² + ρ/2‖δ − a‖2², a = z − u/ρ: δ = ρ/(ρ + 2γ)·a (eq. 10)."""
    return a * (rho / (rho + 2 * gamma))


def w_step(b: Tensor, lower: Tensor, upper: Tensor) -> Tensor:
    """argmin_w h(w) + ρ/2‖w − b‖2², b = z − s/ρ: b clipped to the box (eq. 11)."""
    return torch.clamp(b, lower, upper)


def y_step(c: Tensor, grouping: Grouping, threshold: float) -> Tensor:
    """argmin_y τ Σ_i ‖y_{D_i}‖2 + ρ/2‖y − c‖2² for non-overlapping groups, threshold = τ/ρ (eq. 12).

    Pixels in no group (gaps when S > r) are unpenalised: y = c there.
    """
    y = fold_groups(block_shrink(unfold_groups(c, grouping), threshold), grouping)
    if grouping.stride > grouping.size:
        y = torch.where(coverage(grouping, c.shape[1], c.device, c.dtype) > 0, y, c)
    return y


def y_copies_step(c_columns: Tensor, threshold: float) -> Tensor:
    """[y_i]_{D_i} = (1 − τ/(ρ‖[c_i]_{D_i}‖2))₊ [c_i]_{D_i} for every copy i (eq. 17), columns (N, C·r·r, P·Q).

    Off its group a copy is y_i = c_i (the rest of eq. 17) and is never stored: there c'_i = y_i + v_i/ρ = z^k
    whatever v_i, so it enters the z-step only as (P·Q − m)·z^k, m the number of groups covering a pixel. Eq. (18)
    is thus the z-step of copies restricted to their own groups with a Bregman weight η_k + (P·Q − m)ρ instead
    of η_k: z takes smaller steps the more groups the image has.
    """
    return block_shrink(c_columns, threshold)


def z_step(z: Tensor, targets: Tensor, count: int, grad: Tensor, eta: float, rho: float) -> Tensor:
    """argmin_z ∇f(z^k + x0)ᵀ(z − z^k) + η/2‖z − z^k‖2² + ρ/2 Σ_j ‖z − t_j‖2² over ``count`` points t_j summing to
    ``targets``: z = (η z^k + ρ Σ_j t_j − ∇f) / (η + count·ρ).

    Eq. (15) with t = a', b', c' (count 3); eq. (18) with a', b', c'_1 … c'_PQ (count 2 + P·Q); eq. (22) with a'.
    """
    return (targets * rho).add_(z, alpha=eta).sub_(grad).div_(eta + count * rho)


def refine_delta_step(a: Tensor, rho: float, gamma: float, lower: Tensor, upper: Tensor, support: Tensor) -> Tensor:
    """argmin γ‖δ‖2² + ρ/2‖δ − a‖2² over the box with δ = 0 off the support: ρ/(ρ + 2γ)·a clipped (eq. 21)."""
    return torch.where(support, w_step(delta_step(a, rho, gamma), lower, upper), 0.0)


def refine_z_step(z: Tensor, a_prime: Tensor, grad: Tensor, eta: float, rho: float, support: Tensor) -> Tensor:
    """z = (η z^k + ρa' − ∇f(z^k + x0)) / (η + ρ) on the support, 0 off it (eq. 22)."""
    return torch.where(support, z_step(z, a_prime, 1, grad, eta, rho), 0.0)


def sparse_support(delta: Tensor, percentile: float) -> Tensor:
    """The complement of S_σ in eq. (19): |δ*_i| > σ, σ the ``percentile``-th percentile of δ*'s non-zero |δ*_i|.

    σ is taken per sample. A sample with δ* = 0 has an empty support.
    """
    magnitude = delta.abs().flatten(1)
    nonzero = torch.where(magnitude > 0, magnitude, torch.nan)
    rows = max(1, _QUANTILE_LIMIT // max(1, nonzero.shape[1]))
    sigma = torch.cat([torch.nanquantile(chunk, percentile / 100.0, dim=1, keepdim=True)
                       for chunk in nonzero.split(rows)])
    return (magnitude > sigma).view_as(delta)  # NaN σ (no non-zero entry) compares False


# ----------------------------------------------------------------------------------------------------------
# One value of c.


def _eta(alpha: float, k: int) -> float:
    """η_k = α√k, k counted from 1 within the current value of c (Sec. 3, below eq. 14)."""
    return alpha * math.sqrt(k + 1)


class _Judge:
    """Margin, loss terms and group map of the sparse iterate δ̂ that the best-so-far rule sees."""

    def __init__(self, model: PixelModel, x0: Tensor, labels: Tensor, targets: Optional[Tensor], const: Tensor,
                 grouping: Grouping, *, kappa: float, gamma: float, tau: float) -> None:
        self.model, self.x0, self.labels, self.targets, self.const = model, x0, labels, targets, const
        self.grouping, self.kappa, self.gamma, self.tau = grouping, kappa, gamma, tau

    def gradient(self, z: Tensor) -> Tensor:
        """∇_z c·f(x0 + z, t), each sample scaled by its own c."""
        x = (self.x0 + z).requires_grad_(True)
        margin = logit_margin(self.model(x), self.labels, self.targets)
        (grad,) = torch.autograd.grad((self.const * hinge_loss(margin, self.kappa)).sum(), x)
        return grad

    def __call__(self, delta: Tensor, extra: dict[str, Tensor]) -> Step:
        candidate = self.x0 + delta
        with torch.no_grad():
            margin = logit_margin(self.model(candidate), self.labels, self.targets)
        f = hinge_loss(margin, self.kappa)
        l2sq = delta.flatten(1).square().sum(1)
        norms = column_norms(unfold_groups(delta, self.grouping))
        groups = norms.sum(1)
        objective = self.const * f + self.gamma * l2sq + self.tau * groups  # problem (2) at δ̂
        grid = norms.view(-1, self.grouping.rows, self.grouping.cols)
        extra.update(delta=delta, group_norms=grid, active_groups=grid > 0)
        losses = {"f": f, "l2": l2sq.sqrt(), "groups": groups, "objective": objective}
        return Step(candidate=candidate, margin=margin, objective=objective, distance=l2sq, losses=losses,
                    extra=extra)


class _Admm:
    """Problem (4) for S ≥ r (Proposition 1) or problem (16) for S < r (Proposition 2), at one value of c.

    Every ADMM variable starts at zero for each value of c. The multipliers are kept scaled, as u/ρ, s/ρ, v/ρ,
    which turns a = z − u/ρ, a' = δ + u/ρ and u ← u + ρ(δ − z) into plain sums. The iterate judged is
    δ̂ = y^{k+1} (for overlapping groups, the average of the copies over the groups covering each pixel) clipped
    to the box: exactly zero wherever y is, and feasible.
    """

    def __init__(self, judge: _Judge, lower: Tensor, upper: Tensor, *, rho: float, alpha: float, tau: float,
                 gamma: float) -> None:
        self.judge, self.lower, self.upper = judge, lower, upper
        self.rho, self.alpha, self.threshold, self.gamma = rho, alpha, tau / rho, gamma
        x0, grouping = judge.x0, judge.grouping
        self.grouping = grouping
        self.z = torch.zeros_like(x0)
        self.u = torch.zeros_like(x0)  # u/ρ, multiplier of δ = z
        self.s = torch.zeros_like(x0)  # s/ρ, multiplier of w = z
        if grouping.overlapping:
            self.v = x0.new_zeros(x0.shape[0], x0.shape[1] * grouping.size**2, grouping.count)  # v_i/ρ on D_i
            self.cover = coverage(grouping, x0.shape[1], x0.device, x0.dtype)  # m
            self.off_group = grouping.count - self.cover  # copies that do not cover a pixel
        else:
            self.v = torch.zeros_like(x0)  # v/ρ, multiplier of y = z

    def step(self, k: int) -> Step:
        z, u, s, v, grouping = self.z, self.u, self.s, self.v, self.grouping
        grad = self.judge.gradient(z)
        eta = _eta(self.alpha, k)
        with torch.no_grad():
            delta = delta_step(z - u, self.rho, self.gamma)  # eq. (10)
            w = w_step(z - s, self.lower, self.upper)  # eq. (11)
            targets = torch.add(delta, u).add_(w).add_(s)  # a' + b'
            if grouping.overlapping:
                y = y_copies_step(unfold_groups(z, grouping).sub_(v), self.threshold)  # eq. (17)
                sparse = fold_groups(y, grouping)
                # Σ_i c'_i = (P·Q − m) z^k + fold(y_i + v_i/ρ), see y_copies_step.
                targets.addcmul_(self.off_group, z).add_(sparse).add_(fold_groups(v, grouping))
                z_next = z_step(z, targets, 2 + grouping.count, grad, eta, self.rho)  # eq. (18)
                v.add_(y).sub_(unfold_groups(z_next, grouping))  # eq. (9), every copy
                sparse.div_(self.cover)
            else:
                y = y_step(z - v, grouping, self.threshold)  # eq. (12)
                z_next = z_step(z, targets.add_(y).add_(v), 3, grad, eta, self.rho)  # eq. (15)
                v.add_(y).sub_(z_next)  # eq. (9)
                sparse = y
            u.add_(delta).sub_(z_next)  # eq. (9)
            s.add_(w).sub_(z_next)  # eq. (9)
            self.z = z_next
            return self.judge(sparse.clamp_(self.lower, self.upper), {})


class _Refine:
    """Problem (20) under a fixed support (Proposition 3), at one value of c, started from δ* (z^0 = δ*).

    The multiplier is kept scaled, as u/ρ.
    """

    def __init__(self, judge: _Judge, lower: Tensor, upper: Tensor, support: Tensor, start: Tensor, *,
                 rho: float, alpha: float, gamma: float) -> None:
        self.judge, self.lower, self.upper, self.support = judge, lower, upper, support
        self.rho, self.alpha, self.gamma = rho, alpha, gamma
        self.z = torch.where(support, start, 0.0)
        self.u = torch.zeros_like(start)

    def step(self, k: int) -> Step:
        z, u = self.z, self.u
        grad = self.judge.gradient(z)
        with torch.no_grad():
            delta = refine_delta_step(z - u, self.rho, self.gamma, self.lower, self.upper, self.support)  # eq. (21)
            self.z = refine_z_step(z, delta + u, grad, _eta(self.alpha, k), self.rho, self.support)  # eq. (22)
            u.add_(delta).sub_(self.z)  # eq. (53)
            return self.judge(delta, {"support": self.support})


# ----------------------------------------------------------------------------------------------------------
# The attack.


def _relay(callback: Optional[Callback], *, iteration_offset: int, step_offset: int, total: int,
           const_scale: Optional[Tensor] = None, earlier: Optional[AttackResult] = None) -> Optional[Callback]:
    """Show the callback one run over both stages: continuous counters, the real c, the best over both stages."""
    if callback is None:
        return None

    def relay(state: IterationState) -> Optional[bool]:
        const = state.const if const_scale is None else state.const * const_scale
        best, found = state.best, state.best_found
        if earlier is not None:
            best = torch.where(found[:, None, None, None], best, earlier.adversarial)
            found = found | earlier.success
        return callback(replace(state, iteration=state.iteration + iteration_offset, total_iterations=total,
                                binary_step=state.binary_step + step_offset, const=const, best=best,
                                best_found=found))

    return relay


@declare(*PARAMS)
def strattack(
    model: PixelModel,
    inputs: Tensor,
    labels: Tensor,
    targets: Optional[Tensor] = None,
    *,
    kappa: float = 0.0,
    initial_const: Optional[float] = None,
    binary_search_steps: int = 8,
    steps: int = 1000,
    group_size: Optional[int] = None,
    stride: Optional[int] = None,
    epsilon: float = 1.0,
    rho: float = 1.0,
    alpha: float = 5.0,
    tau: float = 2.0,
    gamma: float = 1.0,
    refine: bool = True,
    refine_percentile: float = 3.0,
    refine_search_steps: int = 8,
    refine_steps: int = 400,
    abort_early: bool = True,
    callback: Optional[Callback] = None,
) -> AttackResult:
    """Structured attack: min c·f(x0 + δ, t) + γ‖δ‖2² + τ Σ‖δ_G‖2 s.t. x0 + δ ∈ [0,1], ‖δ‖∞ ≤ ε (problem 2).

    Defaults follow Appendix F: ρ = 1, η_1 = ``alpha`` = 5 (η_k = α√k), τ = 2, γ = 1, c = 0.5 and 2 × 2 groups of
    stride 2 for images up to 32 px, c = 2.5 and 13 × 13 groups of stride 13 above. ``stride`` defaults to
    ``group_size`` (non-overlapping groups); ``stride < group_size`` gives overlapping groups (Proposition 2).
    ``epsilon`` = 1 leaves ℓ∞ unbounded (the paper states no default; the original code uses 0.5).
    ``binary_search_steps`` × ``steps`` is the budget of the ADMM stage (the original's 8 and 1000). Early abort
    ends a value of c when the batch's summed objective at δ̂ has not fallen by 0.01% over a tenth of its
    iterations, a run where no group has switched on yet included.

    With ``refine`` (Proposition 3), the best δ* of each sample is hard-thresholded at σ, the
    ``refine_percentile``-th percentile of its own non-zero |δ*_i| (eq. 19), and problem (20) is solved by ADMM
    on that fixed support, from δ*, for ``refine_search_steps`` × ``refine_steps`` iterations. Each sample's
    search over c starts at the c its δ* was found with (the original restarts every sample at c = 5). The
    refined result replaces δ* only where it is adversarial; it is exactly zero off the support.

    The callback sees δ̂ (``extra["delta"]``), the per-group ℓ2 norms and active groups as (N, P, Q) grids
    (``extra["group_norms"]``, ``extra["active_groups"]``), during refinement the support (``extra["support"]``),
    and the loss terms f, ‖δ̂‖2, Σ‖δ̂_G‖2 and the objective. ``params["refined"]`` (N,) says which samples
    took the refined result.
    """
    height, width = inputs.shape[-2:]
    small = max(height, width) <= SMALL_IMAGE
    if group_size is None:
        group_size = default_grouping((height, width))[0]
    stride = group_size if stride is None else stride
    for name, value in (("group_size", group_size), ("stride", stride)):
        if value > max(height, width):
            raise ValueError(f"{name} must be at most the image's side ({max(height, width)} px); got {value}.")
    if stride > group_size:  # gaps between groups: their pixels would be neither penalised nor counted as groups
        raise ValueError(f"stride must be at most group_size ({group_size} px), so that the groups cover every pixel; "
                         f"got {stride}.")
    grouping = make_grouping(inputs.shape, group_size, stride)
    if initial_const is None:
        initial_const = 0.5 if small else 2.5
    started = time.perf_counter()
    x0 = inputs.detach().to(model.device, torch.float32)
    lower, upper = box_bounds(x0, epsilon)
    total = binary_search_steps * steps + (refine_search_steps * refine_steps if refine else 0)
    params = dict(kappa=kappa, initial_const=initial_const, binary_search_steps=binary_search_steps, steps=steps,
                  group_size=grouping.size, stride=grouping.stride, epsilon=epsilon, rho=rho, alpha=alpha, tau=tau,
                  gamma=gamma, refine=refine, refine_percentile=refine_percentile,
                  refine_search_steps=refine_search_steps, refine_steps=refine_steps, abort_early=abort_early)

    def judge(x0: Tensor, labels: Tensor, targets: Optional[Tensor], const: Tensor) -> _Judge:
        return _Judge(model, x0, labels, targets, const, grouping, kappa=kappa, gamma=gamma, tau=tau)

    def start_admm(x0: Tensor, labels: Tensor, targets: Optional[Tensor], const: Tensor) -> _Admm:
        return _Admm(judge(x0, labels, targets, const), lower, upper, rho=rho, alpha=alpha, tau=tau, gamma=gamma)

    first = minimise_over_const(
        "strattack", model, inputs, labels, targets, start_admm, kappa=kappa, initial_const=initial_const,
        binary_search_steps=binary_search_steps, steps=steps, abort_early=abort_early,
        callback=_relay(callback, iteration_offset=0, step_offset=0, total=total), params=params)
    if not refine or first.stopped:
        return replace(first, seconds=time.perf_counter() - started,
                       params={**params, "refined": torch.zeros_like(first.success).cpu()})

    base = first.const  # per sample: the c each δ* was found with; the refine search scales it
    delta_star = first.adversarial - first.original
    support = sparse_support(delta_star, refine_percentile) & first.success[:, None, None, None]

    def start_refine(x0: Tensor, labels: Tensor, targets: Optional[Tensor], multiple: Tensor) -> _Refine:
        return _Refine(judge(x0, labels, targets, multiple * base), lower, upper, support, delta_star, rho=rho,
                       alpha=alpha, gamma=gamma)

    second = minimise_over_const(
        "strattack-refine", model, x0, first.labels, first.targets, start_refine, kappa=kappa, initial_const=1.0,
        binary_search_steps=refine_search_steps, steps=refine_steps, abort_early=abort_early,
        callback=_relay(callback, iteration_offset=first.iterations, step_offset=binary_search_steps, total=total,
                        const_scale=base, earlier=first),
        params=params)
    refined = second.success
    return AttackResult(
        attack="strattack", original=first.original,
        adversarial=torch.where(refined[:, None, None, None], second.adversarial, first.adversarial),
        success=first.success | refined, labels=first.labels, targets=first.targets,
        const=torch.where(refined, second.const * base, first.const),
        loss_history=torch.cat([first.loss_history, second.loss_history]),
        iterations=first.iterations + second.iterations, seconds=time.perf_counter() - started,
        device=first.device, stopped=second.stopped, params={**params, "refined": refined.cpu()})
