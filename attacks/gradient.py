"""The gradient baselines of the EAD paper's Table 2 and the thesis's Tables 6, 8, 10: FGM, I-FGM and PGD in ℓ1, ℓ2, ℓ∞.

**Steps.** g = ∇ₓA(x) of the adversarial objective A, which every step ascends: targeted, A = −J(x, t) (descend
the target's cross-entropy, as the papers); untargeted, A = J(x, t₀); or, with ``loss="margin"``, the logit
margin of eq. 4 (positive = adversarial). The unit step d has ‖d‖_p = 1: sign(g) for ℓ∞ (eq. 1 of EAD) and
g/‖g‖_q for q = 2, 1 (eq. 2). The ℓ1 step is the *dense* g/‖g‖₁ of the EAD paper and foolbox's
L1FastGradientAttack (ART ≤ 1.17 too) — not ART ≥ 1.18's single-coordinate step nor SLIDE's sparse one.

- **FGM** (Goodfellow et al.): x = clip₀¹(x₀ + ε·d(x₀)).
- **I-FGM** (Kurakin et al., as the EAD paper runs it): T steps of ε/T (T = 10), each followed by the projection
  onto the ε-ball (ℓ∞: clip; ℓ2: rescale when outside, the exact projection; ℓ1: rescale when outside, as
  cleverhans/foolbox/the EAD code) and onto the box. With T steps of ε/T the ball never binds (triangle
  inequality; the box clip only shrinks each |δᵢ|). ``sphere=True`` instead rescales η to ‖η‖ = ε after every
  step, as the EAD authors' ifgm.py does (the 2017 cleverhans clip_eta), then clips to the box.
- **PGD** (Madry et al.): start uniform in the ε-ball, T steps of α = ``rel_stepsize``·ε (Madry's MNIST: 40 steps,
  α = 0.01 at ε = 0.3), each projected onto the ball and the box; restarts keep the least distorted success.
  ℓ2 and ℓ∞ only: a dense g/‖g‖₁ step projected onto the ℓ1 ball is nobody's PGD (the ℓ1 PGD that works is
  SLIDE, a sparse step with the exact ℓ1-ball projection: another attack). The random start depends on
  (seed, restart) only — the same draw for every image — so a result does not depend on its batch mates.

Each iterate after a step is judged by the model: success is "classified as the target" (untargeted: "not as
the label"). An attack returns its latest adversarial iterate, which is the final x_T wherever x_T is adversarial
(the papers' output); the original where no iterate was.

**The ε search** (``epsilon=None``): each image gets the smallest ε of Table 4's grid at which the attack succeeds
— ℓ∞ k·10⁻³, ℓ2 k·10⁻², ℓ1 k·1, k = 1…1000, in [0,1] pixel units (the EAD code's images span [−0.5, 0.5], a
range of 1, so its ε are already these units). Success is not monotone in ε (I-FGM, and FGM through the box clip),
so no coarse-to-fine search can be exact: a success on a coarse grid says nothing about the finer points below
it. The exact answer is the dense scan's — try the grid in ascending order, drop an image at its first success
— and :func:`attacks.epsilon_search.search` runs that scan vectorised: each batched pass holds (image, ε) rows
for a chunk of consecutive grid points of every image still searching, so many ε share one forward/backward
pass. Each row computes exactly what a separate run at its ε computes (the first gradient, at x₀, is shared by
every ε of an image, which saves one pass in T), so the result is the dense scan's; tests/test_gradient.py checks
it against a naive scan on real digits.

**Iterations and the callback.** With a given ε an iteration is one step (FGM has one); in the ε search it is
one grid point tried, in ascending order, and a stop keeps the result as of that ε. ``result.const`` holds the ε
of each sample (the found one; the last tried where none succeeded) and ``params["epsilon_found"]`` the found ε
per sample (NaN where none). The loop never reads the device back per iteration; the ε search reads back once
per chunk to drop the images that have succeeded.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from attacks.base import AttackResult, Callback, IterationState
from attacks.contract import declare
from attacks.driver import stops
from attacks.epsilon_search import Groups, paper_grid, search
from attacks.losses import is_adversarial, logit_margin
from attacks.model import PixelModel
from attacks.params import Param, with_default

Norm = Literal["1", "2", "inf"]
_TINY = torch.finfo(torch.float32).tiny

NORM = Param("norm", str, "inf", "p of the step and the budget ‖δ‖_p ≤ ε: inf = sign(g) (eq. 1 of EAD); 2 = g/‖g‖₂ "
             "and 1 = the dense g/‖g‖₁ (eq. 2; the EAD paper's and foolbox's ℓ1, not ART ≥ 1.18's one coordinate).",
             label="ℓp norm", choices=("1", "2", "inf"))
EPSILON = Param("epsilon", float, None, "ε, the distortion ‖δ‖_p ≤ ε in [0,1] pixel units (eqs. 1–2 of EAD); None: "
                "per image, the smallest ε of Table 4's grid (ℓ∞ 1e-3…1, ℓ2 1e-2…10, ℓ1 1…1000) that succeeds.",
                label="ε · budget", low=1e-6, high=1e5, log=True, group="budget", optional=True)
LOSS = Param("loss", str, "ce", "The loss the steps follow: cross-entropy J (targeted: descend J(x, t); untargeted: "
             "ascend J(x, t₀)), as the papers, or the logit margin Z_t − max_{j≠t} Z_j of eq. 4.",
             label="loss", choices=("ce", "margin"), group="advanced")
IFGM_STEPS = Param("steps", int, 10, "T, the FGM iterations of ε/T each (Kurakin et al.; the EAD paper uses 10).",
                   label="T · iterations", low=1, high=1000, group="budget")
SPHERE = Param("sphere", bool, False, "Rescale ℓ1/ℓ2 η to ‖η‖ = ε after every step, as the EAD authors' ifgm.py does, "
               "instead of projecting onto the ε-ball (ℓ∞: the same clip).", label="EAD code's sphere rescale",
               group="advanced")
PGD_NORM = with_default(NORM, "inf", choices=("2", "inf"),
                        help="p of the step and the ball ‖δ‖_p ≤ ε: inf = sign(g), 2 = g/‖g‖₂ (Madry et al.). "
                             "No ℓ1: a dense ℓ1 step projected onto the ℓ1 ball is not a working PGD.")
PGD_EPSILON = with_default(EPSILON, 0.3, help="ε, the radius of the ball ‖δ‖_p ≤ ε in [0,1] pixel units (Madry's "
                           "MNIST: 0.3 in ℓ∞); None: per image, the smallest ε of Table 4's grid that succeeds.")
PGD_STEPS = Param("steps", int, 40, "T, the projected gradient steps (Madry's MNIST: 40).", label="T · iterations",
                  low=1, high=10000, log=True, group="budget")
REL_STEPSIZE = Param("rel_stepsize", float, 1 / 30, "α/ε, the step length as a fraction of ε (Madry's MNIST: "
                     "α = 0.01 at ε = 0.3, 1/30; the thesis's Table 9 uses 2ε/40, 0.05).", label="α/ε · step",
                     low=1e-4, high=10.0, log=True, group="budget")
RESTARTS = Param("restarts", int, 1, "Random starts per image; the least distorted success is kept.",
                 label="restarts", low=1, high=100, group="budget")
RANDOM_START = Param("random_start", bool, True, "Start uniformly inside the ε-ball (Madry et al.); off: start at x₀.",
                     label="random start", group="advanced")
START_SEED = Param("start_seed", int, 0, "Seed of the random starts (the same draw for every image of a batch).",
                   label="random-start seed", low=0, high=2**31 - 1, group="advanced")


def size(delta: Tensor, norm: str) -> Tensor:
    """‖δ‖_p of each row."""
    flat = delta.flatten(1)
    if norm == "inf":
        return flat.abs().amax(1)
    return flat.abs().sum(1) if norm == "1" else flat.norm(dim=1)


def unit_step(grad: Tensor, norm: str) -> Tensor:
    """The steepest-ascent direction with ‖d‖_p = 1: sign(g) (eq. 1 of EAD) or g/‖g‖_q, q = 1, 2 (eq. 2)."""
    if norm == "inf":
        return grad.sign()
    return grad / size(grad, norm).clamp_min(_TINY).view(-1, 1, 1, 1)


def project(delta: Tensor, eps: Tensor, norm: str, sphere: bool = False) -> Tensor:
    """δ onto the ε-ball of each row (ε of shape (R,)): clip for ℓ∞, rescale when outside for ℓ2/ℓ1; ``sphere``
    rescales to ‖δ‖ = ε (the EAD code's I-FGM)."""
    e = eps.view(-1, 1, 1, 1)
    if norm == "inf":
        return torch.maximum(torch.minimum(delta, e), -e)
    factor = e / size(delta, norm).clamp_min(_TINY).view(-1, 1, 1, 1)
    return delta * (factor if sphere else factor.clamp(max=1.0))


def objective(logits: Tensor, labels: Tensor, targets: Optional[Tensor], loss: str) -> Tensor:
    """A, the adversarial objective each step ascends (per row)."""
    if loss == "margin":
        return logit_margin(logits, labels, targets)
    if targets is not None:
        return -F.cross_entropy(logits, targets, reduction="none")
    return F.cross_entropy(logits, labels, reduction="none")


@dataclass
class Rows:
    """What a run of the iterative method leaves on each of its rows."""

    best: Tensor  # latest adversarial iterate, x₀ where none
    found: Tensor  # (R,) bool
    final: Tensor  # x_T
    loss: Tensor  # (R,) −A at the last iterate judged
    success: Tensor  # (R,) bool: the last iterate judged is adversarial


StepHook = Callable[[int, Rows], bool]  # (iteration k ≥ 1, rows after judging x_k) → stop?


def run_rows(model: PixelModel, x0: Tensor, labels: Tensor, targets: Optional[Tensor], eps: Tensor, *, norm: str,
             steps: int, alpha: Tensor, loss: str, first: Optional[Tensor] = None, start: Optional[Tensor] = None,
             sphere: bool = False, on_step: Optional[StepHook] = None) -> tuple[Rows, int]:
    """T projected steps of length ``alpha`` on R rows, each row its own image, class and ε (all shaped (R, …)).

    ``first``: the unit step at x₀ when it is known already (the ε search shares it); ``start``: PGD's offset of
    x(0) from x₀. Returns the rows and the number of iterations run (fewer where ``on_step`` asked to stop).
    """
    x = x0 if start is None else (x0 + start).clamp(0.0, 1.0)
    none = torch.zeros(x0.shape[0], dtype=torch.bool, device=x0.device)
    rows = Rows(best=x0.clone(), found=none, final=x, loss=torch.zeros(x0.shape[0], device=x0.device), success=none)
    a = alpha.view(-1, 1, 1, 1)
    for k in range(steps + 1):
        grad: Optional[Tensor] = None
        if k < steps and not (k == 0 and first is not None):
            with torch.enable_grad():
                xg = x.detach().requires_grad_(True)
                logits = model(xg)
                value = objective(logits, labels, targets, loss)
                (grad,) = torch.autograd.grad(value.sum(), xg)
            logits, value = logits.detach(), value.detach()
        elif k > 0:
            with torch.no_grad():
                logits = model(x)
                value = objective(logits, labels, targets, loss)
        if k > 0:  # judge x_k, the iterate this pass saw
            success = is_adversarial(logit_margin(logits, labels, targets), 0.0)
            rows = Rows(best=torch.where(success[:, None, None, None], x, rows.best), found=rows.found | success,
                        final=x, loss=-value, success=success)
            if on_step is not None and on_step(k, rows):
                return rows, k
        if k == steps:
            break
        d = first if grad is None else unit_step(grad, norm)
        assert d is not None
        # x(k+1) = Π_[0,1](x₀ + Π_ε(x(k) + α·d − x₀)): eq. 1 (ℓ∞) / eq. 2 (ℓ1, ℓ2) of EAD, iterated with the ε-ball
        x = (x0 + project(x.detach() + a * d - x0, eps, norm, sphere)).clamp(0.0, 1.0)
    return rows, steps


def pick(rows: Rows, x0: Tensor, restarts: int, norm: str) -> Groups:
    """Per group of ``restarts`` consecutive rows: the least distorted success, the lowest-loss final iterate."""
    if restarts == 1:
        return Groups(rows.best, rows.found, rows.final, rows.loss, rows.success)
    g = rows.found.shape[0] // restarts
    shape = rows.best.shape[1:]
    found = rows.found.view(g, restarts)
    dist = torch.where(rows.found, size(rows.best - x0, norm), math.inf).view(g, restarts)
    which = torch.arange(g, device=x0.device)
    lowest = rows.loss.view(g, restarts).argmin(1)
    return Groups(best=rows.best.view(g, restarts, *shape)[which, dist.argmin(1)], found=found.any(1),
                  final=rows.final.view(g, restarts, *shape)[which, lowest],
                  loss=rows.loss.view(g, restarts)[which, lowest],
                  success=rows.success.view(g, restarts)[which, lowest])


def ball_draws(shape: tuple[int, ...], norm: str, restarts: int, seed: int) -> Tensor:
    """One draw per restart, uniform in the unit ball (ℓ∞: the cube; ℓ2: Gaussian direction, radius u^{1/D})."""
    generator = torch.Generator().manual_seed(seed)
    if norm == "inf":
        return torch.rand((restarts, *shape), generator=generator) * 2 - 1
    v = torch.randn((restarts, *shape), generator=generator)
    v = v / v.flatten(1).norm(dim=1).clamp_min(_TINY).view(-1, 1, 1, 1)
    radius = torch.rand(restarts, generator=generator) ** (1 / math.prod(shape))
    return v * radius.view(-1, 1, 1, 1)


@dataclass
class Method:
    """One configured attack, as :func:`attack` runs it on rows of (image, ε, restart)."""

    name: str
    norm: str
    steps: int
    step: Callable[[Tensor], Tensor]  # ε → α of each row
    loss: str
    shared_first: bool = False  # the first step is at x₀ for every ε: compute it once per image
    noise: Optional[Tensor] = None  # (restarts, C, H, W) unit-ball starts, on the device
    sphere: bool = False

    @property
    def restarts(self) -> int:
        return 1 if self.noise is None else self.noise.shape[0]

    def run(self, model: PixelModel, x0: Tensor, labels: Tensor, targets: Optional[Tensor], eps: Tensor,
            first: Optional[Tensor], on_step: Optional[StepHook] = None) -> tuple[Rows, int]:
        """Rows are (group, restart), restart fastest; x0, labels, targets, eps and first are per group."""
        r = self.restarts
        x0r, labr, epsr = x0.repeat_interleave(r, 0), labels.repeat_interleave(r), eps.repeat_interleave(r)
        tarr = None if targets is None else targets.repeat_interleave(r)
        start = None if self.noise is None else self.noise.repeat(x0.shape[0], 1, 1, 1) * epsr.view(-1, 1, 1, 1)
        first = None if first is None else first.repeat_interleave(r, 0)
        return run_rows(model, x0r, labr, tarr, epsr, norm=self.norm, steps=self.steps, alpha=self.step(epsr),
                        loss=self.loss, first=first, start=start, sphere=self.sphere, on_step=on_step)


def attack(method: Method, model: PixelModel, inputs: Tensor, labels: Tensor, targets: Optional[Tensor],
           epsilon: Optional[float], callback: Optional[Callback], params: dict) -> AttackResult:
    """Run ``method`` at a given ε, or search Table 4's grid for each image's smallest successful ε."""
    started = time.perf_counter()
    device = model.device
    x0 = inputs.detach().to(device, torch.float32)
    labels = labels.to(device)
    targets = None if targets is None else targets.to(device)
    first = None
    if method.shared_first:
        with torch.enable_grad():
            xg = x0.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(objective(model(xg), labels, targets, method.loss).sum(), xg)
        first = unit_step(grad, method.norm)

    def run_groups(idx: Tensor, eps: Tensor) -> Groups:
        """The attack on images ``idx`` at ε ``eps`` (both per group)."""
        tar = None if targets is None else targets[idx]
        rows, _ = method.run(model, x0[idx], labels[idx], tar, eps, None if first is None else first[idx])
        return pick(rows, x0[idx].repeat_interleave(method.restarts, 0), method.restarts, method.norm)

    if epsilon is None:
        grid, resolution = paper_grid(method.norm, device)
        out = search(method.name, x0, grid, resolution, run_groups, callback, restarts=method.restarts)
        best, found, const, history, done, stopped, eps_found = out
    else:
        best, found, const, history, done, stopped, eps_found = _fixed(method, model, x0, labels, targets, epsilon,
                                                                       first, callback)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    history_cpu = history[:done].cpu()  # the first read-back of a run without a callback (none on the meta device)
    return AttackResult(
        attack=method.name, original=x0, adversarial=best, success=found, labels=labels, targets=targets,
        const=const, loss_history=history_cpu, iterations=done, seconds=time.perf_counter() - started,
        device=str(device), stopped=stopped, params={**params, "epsilon_found": eps_found},
    )


def _fixed(method: Method, model: PixelModel, x0: Tensor, labels: Tensor, targets: Optional[Tensor], epsilon: float,
           first: Optional[Tensor], callback: Optional[Callback]
           ) -> tuple[Tensor, Tensor, Tensor, Tensor, int, bool, Tensor]:
    n, r = x0.shape[0], method.restarts
    eps = torch.full((n,), float(epsilon), device=x0.device)
    history = torch.zeros(method.steps, n, device=x0.device)
    x0r = x0.repeat_interleave(r, 0)
    stopped = False

    def on_step(k: int, rows: Rows) -> bool:
        nonlocal stopped
        history[k - 1] = rows.loss.view(n, r).amin(1)

        def state() -> IterationState:
            g = pick(rows, x0r, r, method.norm)
            return IterationState(
                attack=method.name, iteration=k, total_iterations=method.steps, binary_step=0, step=k - 1,
                current=g.final, losses={"loss": g.loss}, success=g.success, best=g.best, best_found=g.found,
                const=eps)

        stopped = stops(callback, state)
        return stopped

    with torch.no_grad():
        rows, done = method.run(model, x0, labels, targets, eps, first, on_step)
    g = pick(rows, x0r, r, method.norm)
    eps_found = torch.full((n,), float(epsilon), dtype=torch.float64).where(g.found.cpu(), math.nan)
    return g.best, g.found, eps, history, done, stopped, eps_found


@declare(NORM, EPSILON, LOSS)
def fgm(model: PixelModel, inputs: Tensor, labels: Tensor, targets: Optional[Tensor] = None, *, norm: Norm = "inf",
        epsilon: Optional[float] = None, loss: str = "ce", callback: Optional[Callback] = None) -> AttackResult:
    """FGM: x = clip(x₀ + ε·d(∇A(x₀))) — eqs. 1–2 of EAD; ``epsilon=None`` searches Table 4's grid per image."""
    method = Method("fgm", norm, 1, lambda eps: eps, loss, shared_first=True)
    return attack(method, model, inputs, labels, targets, epsilon, callback,
                  dict(norm=norm, epsilon=epsilon, loss=loss))


@declare(NORM, EPSILON, IFGM_STEPS, LOSS, SPHERE)
def ifgm(model: PixelModel, inputs: Tensor, labels: Tensor, targets: Optional[Tensor] = None, *, norm: Norm = "inf",
         epsilon: Optional[float] = None, steps: int = 10, loss: str = "ce", sphere: bool = False,
         callback: Optional[Callback] = None) -> AttackResult:
    """I-FGM: T FGM steps of ε/T, each projected onto the ε-ball and the box; ``epsilon=None`` searches per image."""
    method = Method("ifgm", norm, steps, lambda eps: eps / steps, loss, shared_first=True, sphere=sphere)
    return attack(method, model, inputs, labels, targets, epsilon, callback,
                  dict(norm=norm, epsilon=epsilon, steps=steps, loss=loss, sphere=sphere))


@declare(PGD_NORM, PGD_EPSILON, PGD_STEPS, REL_STEPSIZE, RESTARTS, RANDOM_START, LOSS, START_SEED)
def pgd(model: PixelModel, inputs: Tensor, labels: Tensor, targets: Optional[Tensor] = None, *,
        norm: Literal["2", "inf"] = "inf", epsilon: Optional[float] = 0.3, steps: int = 40,
        rel_stepsize: float = 1 / 30, restarts: int = 1, random_start: bool = True, loss: str = "ce",
        start_seed: int = 0, callback: Optional[Callback] = None) -> AttackResult:
    """PGD (Madry et al.): x ← Π_{B_ε(x₀) ∩ [0,1]}(x + α·d(∇A(x))) from a random start in the ball, best of restarts."""
    noise = None
    if random_start:
        noise = ball_draws(tuple(inputs.shape[1:]), norm, restarts, start_seed).to(model.device)
    elif restarts > 1:
        raise ValueError("restarts > 1 needs random_start=True: every restart from x₀ is the same run.")
    method = Method("pgd", norm, steps, lambda eps: eps * rel_stepsize, loss, noise=noise)
    return attack(method, model, inputs, labels, targets, epsilon, callback,
                  dict(norm=norm, epsilon=epsilon, steps=steps, rel_stepsize=rel_stepsize, restarts=restarts,
                       random_start=random_start, loss=loss, start_seed=start_seed))

