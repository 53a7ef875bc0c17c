"""Perturbation analysis (Balda, Behboodi & Mathar 2018): the closed-form ℓp attacks on the linearised margin.

The attack linearises L(x, η) = f_k(x+η) − max_{l≠k} f_l(x+η) (eq. 2, logits; k the image's label) around a point
and solves min ηᵀ∇L s.t. ‖η‖_p ≤ ε in closed form through the dual norm q = p/(p−1) (Theorem 2, eq. 6):

- **GNM** (eq. 5–6): one step, any p ≥ 1: ℓ∞ is ε·sign (FGSM's corner), ℓ2 the normalised gradient, ℓ1 one coordinate.
- **Algorithm 1 / 1-T**: T steps of ℓp norm ε/T, each linearised at the running x+η (+ an optional random
  "dithering" offset of the linearisation point, eq. 10, at t = 1, as the paper's PGD); no projection, no box.
- **Algorithm 2**: the cheap variant that follows only the label's score, L ≈ f_k(x+η).
- **random noise**: Bernoulli ±ε (the paper's baseline; ℓp other than ∞: a random sign vector scaled to ‖η‖_p = ε).

Targeted (a target t given): the paper's Table 2 row, l fixed to the target: L = f_k − f_t (Algorithm 2: raise f_t).
With ``loss="ce"`` Algorithm 1 is FGSM (T = 1), BIM (T > 1) and, with ``dither=1``, the paper's PGD (Sec. 6.1).

**The box.** The paper has no [0,1] box: by default (``clip=False``) the perturbation is built exactly as the paper
(linearisation points x+η unclipped); the image *returned* is still the contract's pixel-box image clip(x+η), and
success is the model's verdict on it (``params["faithful_success"]`` holds the verdict on the unclipped x+η).
``clip=True`` is the labelled deviation: every iterate is clipped to [0,1]. The fooling-ratio curves of
``interpret.robustness`` judge the unclipped x+η, as the paper does.

``epsilon=None`` searches, per image, the smallest ε of Table 4's grid that succeeds (``attacks.epsilon_search``:
an iteration is one grid point); with a given ε an iteration is one linearisation step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from attacks.base import AttackResult, Callback, IterationState
from attacks.contract import declare
from attacks.driver import Run, stops
from attacks.epsilon_search import Groups, paper_grid, search
from attacks.model import PixelModel
from attacks.params import Param, with_default

P_CHOICES = ("1", "1.5", "2", "3", "4", "inf")
_TINY = 1e-30

NORM = Param("norm", str, "inf", "p of the budget ‖η‖_p ≤ ε; the step is eq. 6 with q = p/(p−1): inf = ε·sign(g) "
             "(FGSM's corner), 2 = ε·g/‖g‖₂, 1 = one coordinate (the limit q → ∞).", label="ℓp norm",
             choices=P_CHOICES)
EPSILON = Param("epsilon", float, None, "ε, the budget ‖η‖_p ≤ ε in [0,1] pixel units (eq. 5); None: per image, the "
                "smallest ε of Table 4's grid that succeeds (ℓ∞ 1e-3…1, ℓ2 and 1<p<∞ 1e-2…10, ℓ1 1…1000).",
                label="ε · budget", low=1e-6, high=1e5, log=True, group="budget", optional=True)
CLIP = Param("clip", bool, False, "Clip every iterate to the pixel box [0,1] — a deviation: the paper has no box "
             "(off: the perturbation is the paper's; only the returned image is clipped).", label="clip to [0,1]",
             group="advanced")
ITERATIONS = Param("iterations", int, 10, "T, the linearisation steps of ℓp norm ε/T each (Algorithm 1-T; T = 1 is "
                   "Algorithm 1; the paper plots T = 5, 10).", label="T · iterations", low=1, high=1000,
                   group="budget")
DITHER = Param("dither", float, 0.0, "ε̃/ε, the random offset of the first linearisation point, uniform in the "
               "ℓp ball of radius ε̃ (eq. 10; 1 = the paper's PGD, ε̃₁ = ε). It moves only where the gradient "
               "is taken, never the perturbation.", label="ε̃/ε · dithering", low=0.0, high=1.0, group="advanced")
LOSS = Param("loss", str, "margin", "L: the margin f_k − max_{l≠k} f_l of eq. 2 (Algorithm 1) or the cross-entropy "
             "(then T = 1 is FGSM, T > 1 BIM, and with dithering the paper's PGD).", label="objective L",
             choices=("margin", "ce"), group="advanced")
CLASS_RULE = Param("class_rule", str, "runner-up", "The class l of the margin at each step: the runner-up "
                   "max_{l≠k} f_l (eq. 2, one gradient) or, as the authors' code, the l minimising "
                   "(f_k − f_l) − (ε/T)‖∇f_k − ∇f_l‖_q (K gradients).", label="margin class",
                   choices=("runner-up", "linearised"), group="advanced")
SEED = Param("dither_seed", int, 0, "Seed of the dithering offset (the same draw for every image of a batch).",
             label="dithering seed", low=0, high=2**31 - 1, group="advanced")
NOISE_SEED = with_default(SEED, 0, name="noise_seed", help="Seed of the noise (the same draw for every image of a "
                          "batch).", label="noise seed")
DRAWS = Param("draws", int, 1, "Random draws per image, the first that fools kept (the paper's baseline: 1).",
              label="draws", low=1, high=1000, group="budget")
RANDOM_NORM = with_default(NORM, "inf", help="p of the noise: inf = i.i.d. ±ε (the paper's Bernoulli baseline); "
                           "other p: a random sign vector scaled to ‖η‖_p = ε.")


# ---------------------------------------------------------------------------------------------------------------
# The closed forms



OnStep = Callable[[int, Tensor, Tensor], bool]  # (t, η_t, objective per sample) → stop?

def parse_p(norm: str | float) -> float:
    """p as a float (math.inf for "inf")."""
    p = math.inf if str(norm) == "inf" else float(norm)
    if not p >= 1:
        raise ValueError(f"p must be at least 1 (or inf); got {norm!r}.")
    return p


def dual(p: float) -> float:
    """q = p/(p−1), the dual exponent: ∞ → 1, 1 → ∞."""
    if math.isinf(p):
        return 1.0
    return math.inf if p == 1 else p / (p - 1)


def lp_norm(t: Tensor, p: float) -> Tensor:
    """‖·‖_p of each row of (N, ...)."""
    flat = t.flatten(1)
    if math.isinf(p):
        return flat.abs().amax(1)
    if p == 1:
        return flat.abs().sum(1)
    if p == 2:
        return flat.norm(dim=1)
    return flat.abs().pow(p).sum(1).pow(1 / p)


def _rows(v: Tensor | float, like: Tensor) -> Tensor:
    v = torch.as_tensor(v, dtype=like.dtype, device=like.device)
    return v.reshape(-1, *([1] * (like.dim() - 1))) if v.dim() else v


def lp_maximiser(g: Tensor, eps: Tensor | float, p: float) -> Tensor:
    """argmax_{‖η‖_p ≤ ε} ηᵀg per row: ε·sign(g)⊙|g|^{q−1}/‖g‖_q^{q−1} (eq. 6 negated); a zero gradient gives η = 0."""
    e = _rows(eps, g)
    flat = g.flatten(1)
    if math.isinf(p):  # q = 1: eq. 7
        eta = flat.sign()
    elif p == 1:  # q = ∞: the single coordinate of largest |g| (limit of eq. 6)
        k = flat.abs().argmax(1, keepdim=True)
        eta = torch.zeros_like(flat).scatter(1, k, flat.gather(1, k).sign())
    else:
        q = dual(p)
        a = flat.abs()
        scale = a.amax(1, keepdim=True).clamp_min(_TINY)  # rescale first: |g|^{q−1} underflows for small g
        a = a / scale
        eta = flat.sign() * a.pow(q - 1) / a.pow(q).sum(1, keepdim=True).pow((q - 1) / q).clamp_min(_TINY)
    return eta.view_as(g) * e


def min_norm_step(g: Tensor, value: Tensor, p: float, corrected: bool = True) -> Tensor:
    """Proposition 1: the least-‖η‖_p η with value + ηᵀg ≤ 0 (eq. 8), per row.

    Corrected: η = −L·sign(g)⊙|g|^{q−1}/‖g‖_q^q, so ηᵀg = −L and ‖η‖_p = L/‖g‖_q (Theorem 1's bound, met).
    ``corrected=False`` is eq. 9 as printed (denominator ‖g‖_q^{q−1}): η = −L·u with ‖u‖_p = 1, so ηᵀg = −L‖g‖_q,
    which misses the constraint in general.
    """
    unit = lp_maximiser(g, 1.0, p)  # sign(g)⊙|g|^{q−1}/‖g‖_q^{q−1}: ‖unit‖_p = 1, unitᵀg = ‖g‖_q
    scale = value / lp_norm(g, dual(p)).clamp_min(_TINY) if corrected else value
    return -_rows(scale, g) * unit


def margin(logits: Tensor, labels: Tensor, targets: Optional[Tensor] = None) -> Tensor:
    """L(x, η) = f_k − max_{l≠k} f_l (eq. 2, positive = still the label); targeted: f_k − f_t (Table 2)."""
    own = logits.gather(1, labels[:, None]).squeeze(1)
    if targets is not None:
        return own - logits.gather(1, targets[:, None]).squeeze(1)
    return own - logits.scatter(1, labels[:, None], float("-inf")).amax(1)


def fooled(logits: Tensor, labels: Tensor, targets: Optional[Tensor] = None) -> Tensor:
    pred = logits.argmax(1)
    return pred == targets if targets is not None else pred != labels


def class_gradients(model: PixelModel, x: Tensor) -> tuple[Tensor, Tensor]:
    """Logits (N, K) and every class's input gradient (N, K, ...)."""
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        logits = model(xg)
        k = logits.shape[1]
        # K backward passes through one graph (is_grads_batched would vmap them, but its first use imports sympy:
        # seconds of cold start for no gain on CPU)
        grads = torch.stack([torch.autograd.grad(logits[:, c].sum(), xg, retain_graph=c < k - 1)[0]
                             for c in range(k)], 1)
    return logits.detach(), grads


def linearised_class(logits: Tensor, grads: Tensor, labels: Tensor, step: Tensor, q: float) -> Tensor:
    """The authors' code's class: argmin_{l≠k} (f_k − f_l) − step·‖∇f_k − ∇f_l‖_q."""
    own = logits.gather(1, labels[:, None])
    g_own = grads[torch.arange(grads.shape[0]), labels][:, None]
    diff = (g_own - grads).flatten(2)
    dn = diff.abs().sum(2) if q == 1 else (diff.abs().amax(2) if math.isinf(q) else diff.abs().pow(q).sum(2).pow(1 / q))
    score = (own - logits) - step.view(-1, 1) * dn
    return score.scatter(1, labels[:, None], float("inf")).argmin(1)


def objective(model: PixelModel, x: Tensor, labels: Tensor, targets: Optional[Tensor], loss: str,
              other: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """(logits, A) where A is what a step ascends: −L (margin; l fixed to ``other`` where given) or the CE loss."""
    logits = model(x)
    if loss == "ce":
        a = -F.cross_entropy(logits, targets, reduction="none") if targets is not None else \
            F.cross_entropy(logits, labels, reduction="none")
    elif loss == "score":  # Algorithm 2: only the label's score (targeted: raise the target's)
        a = logits.gather(1, targets[:, None]).squeeze(1) if targets is not None else \
            -logits.gather(1, labels[:, None]).squeeze(1)
    else:
        a = -margin(logits, labels, targets if targets is not None else other)
    return logits, a


def random_direction(shape: tuple[int, ...], p: float, seed: int, draw: int = 0) -> Tensor:
    """One random ‖·‖_p = 1 sign pattern (ℓ∞: i.i.d. ±1; the same for every image), from (seed, draw)."""
    gen = torch.Generator().manual_seed(seed * 1000003 + draw)
    s = torch.randint(0, 2, shape, generator=gen).float() * 2 - 1
    return s if math.isinf(p) else s / float(math.prod(shape)) ** (1 / p)


def ball_offset(shape: tuple[int, ...], p: float, seed: int) -> Tensor:
    """A draw uniform in the unit ℓ∞ cube (p = ∞) or a random point of the unit ℓp ball (direction × u^{1/D})."""
    gen = torch.Generator().manual_seed(seed)
    if math.isinf(p):
        return torch.rand(shape, generator=gen) * 2 - 1
    v = torch.randn(shape, generator=gen)
    v = v / lp_norm(v[None], p).clamp_min(_TINY)
    return v * torch.rand((), generator=gen) ** (1 / math.prod(shape))


# ---------------------------------------------------------------------------------------------------------------
# Algorithm 1 on rows (each row its own image, label, target and ε)


def linearised_steps(model: PixelModel, x0: Tensor, labels: Tensor, targets: Optional[Tensor], eps: Tensor, *,
                     p: float, steps: int, loss: str = "margin", dither: float = 0.0, seed: int = 0,
                     clip: bool = False, class_rule: str = "runner-up",
                     on_step: Optional[OnStep] = None) -> tuple[Tensor, int]:
    """Algorithm 1: η ← η + argmax_{‖η*‖_p ≤ ε/T} η*ᵀ∇A(x, η̃_t), t = 1…T; returns (η, steps run).

    ``on_step(t, η_t, A)`` is called after each step with the new η and the objective A; it returns True to stop.
    """
    eta = torch.zeros_like(x0)
    step = eps / steps
    offset = None
    if dither > 0:
        offset = (ball_offset(tuple(x0.shape[1:]), p, seed).to(x0.device) * dither)[None] * _rows(eps, x0)
    for t in range(steps):
        point = eta if (t > 0 or offset is None) else eta + offset  # eq. 10: only the linearisation point moves
        xt = x0 + point
        if clip:
            xt = xt.clamp(0.0, 1.0)
        other = None
        if loss == "margin" and class_rule == "linearised" and targets is None:
            logits, grads = class_gradients(model, xt)
            other = linearised_class(logits, grads, labels, step, dual(p))
        with torch.enable_grad():
            xg = xt.detach().requires_grad_(True)
            _, a = objective(model, xg, labels, targets, loss, other)
            (g,) = torch.autograd.grad(a.sum(), xg)
        eta = eta + lp_maximiser(g, step, p)  # eq. 6: the closed form of each linearised step
        if clip:
            eta = (x0 + eta).clamp(0.0, 1.0) - x0
        if on_step is not None and on_step(t + 1, eta, a.detach()):
            return eta, t + 1
    return eta, steps


# ---------------------------------------------------------------------------------------------------------------
# The registered attacks: one driver for a fixed ε (an iteration = a step) and the ε search (= a grid point)

PerturbFn = Callable[[Tensor, Tensor, Optional[Tensor], Tensor, Optional[OnStep]], tuple[Tensor, int]]


def grid_norm(p: float) -> str:
    return "inf" if math.isinf(p) else ("1" if p == 1 else "2")


def _judge(model: PixelModel, x0: Tensor, eta: Tensor, labels: Tensor, targets: Optional[Tensor]
           ) -> tuple[Tensor, Tensor, Tensor]:
    """(returned image clip(x0+η), success on it, the margin there)."""
    adv = (x0 + eta).clamp(0.0, 1.0)
    logits = model(adv)
    return adv, fooled(logits, labels, targets), margin(logits, labels, targets)


def run_attack(name: str, perturb: PerturbFn, model: PixelModel, inputs: Tensor, labels: Tensor,
               targets: Optional[Tensor], epsilon: Optional[float], p: float, steps: int,
               callback: Optional[Callback], params: dict) -> AttackResult:
    run = Run.start(name, model, inputs, labels, targets)
    x0, labels, targets, device = run.x0, run.labels, run.targets, run.device
    n = x0.shape[0]

    def groups(idx: Tensor, eps: Tensor) -> Groups:
        tar = None if targets is None else targets[idx]
        with torch.no_grad():
            eta, _ = perturb(x0[idx], labels[idx], tar, eps, None)
            adv, ok, m = _judge(model, x0[idx], eta, labels[idx], tar)
        best = torch.where(ok[:, None, None, None], adv, x0[idx])
        return Groups(best=best, found=ok, final=adv, loss=m, success=ok)

    faithful = None
    if epsilon is None:
        grid, resolution = paper_grid(grid_norm(p), device)
        best, found, const, history, done, stopped, eps_found = search(name, x0, grid, resolution, groups, callback)
    else:
        eps = torch.full((n,), float(epsilon), device=device)
        history = torch.zeros(steps, n, device=device)
        best, found, stopped = x0.clone(), torch.zeros(n, dtype=torch.bool, device=device), False

        def on_step(t: int, eta: Tensor, a: Tensor) -> bool:
            nonlocal best, found, stopped
            adv, ok, m = _judge(model, x0, eta, labels, targets)
            history[t - 1] = m
            best, found = adv.where(ok[:, None, None, None], x0), ok
            stopped = stops(callback, lambda: IterationState(
                attack=name, iteration=t, total_iterations=steps, binary_step=0, step=t - 1, current=adv,
                losses={"margin": m}, success=ok, best=best, best_found=ok, const=eps))
            return stopped

        with torch.no_grad():
            eta, done = perturb(x0, labels, targets, eps, on_step)
            faithful = fooled(model(x0 + eta), labels, targets)
        const = eps
        eps_found = torch.full((n,), float(epsilon), dtype=torch.float64).where(found.cpu(), math.nan)
    extra = {"epsilon_found": eps_found}
    if faithful is not None:
        extra["faithful_success"] = faithful.cpu()
    return run.result(best, found, const, history, done, stopped, {**params, **extra})


@declare(NORM, EPSILON, CLIP)
def gnm(model: PixelModel, inputs: Tensor, labels: Tensor, targets: Optional[Tensor] = None, *, norm: str = "inf",
        epsilon: Optional[float] = None, clip: bool = False, callback: Optional[Callback] = None) -> AttackResult:
    """GNM: η = −ε·sign(g)⊙|g|^{q−1}/‖g‖_q^{q−1}, g = ∇L(x, 0) of the margin (eqs. 5–6)."""
    p = parse_p(norm)

    def perturb(x0: Tensor, lab: Tensor, tar: Optional[Tensor], eps: Tensor,
                on_step: Optional[OnStep]) -> tuple[Tensor, int]:
        return linearised_steps(model, x0, lab, tar, eps, p=p, steps=1, clip=clip, on_step=on_step)

    return run_attack("gnm", perturb, model, inputs, labels, targets, epsilon, p, 1, callback,
                      dict(norm=norm, epsilon=epsilon, clip=clip))


@declare(with_default(NORM, "inf"), EPSILON, ITERATIONS, DITHER, LOSS, CLASS_RULE, CLIP, SEED)
def alg1(model: PixelModel, inputs: Tensor, labels: Tensor, targets: Optional[Tensor] = None, *, norm: str = "inf",
         epsilon: Optional[float] = None, iterations: int = 10, dither: float = 0.0, loss: str = "margin",
         class_rule: str = "runner-up", clip: bool = False, dither_seed: int = 0,
         callback: Optional[Callback] = None) -> AttackResult:
    """Algorithm 1-T: T closed-form steps of ‖·‖_p = ε/T on the re-linearised margin (eq. 10 dithering at t = 1)."""
    p = parse_p(norm)

    def perturb(x0: Tensor, lab: Tensor, tar: Optional[Tensor], eps: Tensor,
                on_step: Optional[OnStep]) -> tuple[Tensor, int]:
        return linearised_steps(model, x0, lab, tar, eps, p=p, steps=iterations, loss=loss, dither=dither,
                                seed=dither_seed, clip=clip, class_rule=class_rule, on_step=on_step)

    return run_attack("alg1", perturb, model, inputs, labels, targets, epsilon, p, iterations, callback,
                      dict(norm=norm, epsilon=epsilon, iterations=iterations, dither=dither, loss=loss,
                           class_rule=class_rule, clip=clip, dither_seed=dither_seed))


@declare(NORM, EPSILON, CLIP)
def alg2(model: PixelModel, inputs: Tensor, labels: Tensor, targets: Optional[Tensor] = None, *, norm: str = "inf",
         epsilon: Optional[float] = None, clip: bool = False, callback: Optional[Callback] = None) -> AttackResult:
    """Algorithm 2: η = −ε·sign(∇f_k(x)) — the label's score only, no max over classes (Sec. 6.1)."""
    p = parse_p(norm)

    def perturb(x0: Tensor, lab: Tensor, tar: Optional[Tensor], eps: Tensor,
                on_step: Optional[OnStep]) -> tuple[Tensor, int]:
        return linearised_steps(model, x0, lab, tar, eps, p=p, steps=1, loss="score", clip=clip, on_step=on_step)

    return run_attack("alg2", perturb, model, inputs, labels, targets, epsilon, p, 1, callback,
                      dict(norm=norm, epsilon=epsilon, clip=clip))


def random_noise_eta(x0: Tensor, eps: Tensor, p: float, seed: int, draw: int = 0) -> Tensor:
    """The random baseline: ε·s with s i.i.d. ±1 (ℓ∞, Sec. 6.1), scaled to ‖η‖_p = ε for other p."""
    return random_direction(tuple(x0.shape[1:]), p, seed, draw).to(x0.device)[None] * _rows(eps, x0)


@declare(RANDOM_NORM, EPSILON, DRAWS, CLIP, NOISE_SEED)
def random_noise(model: PixelModel, inputs: Tensor, labels: Tensor, targets: Optional[Tensor] = None, *,
                 norm: str = "inf", epsilon: Optional[float] = None, draws: int = 1, clip: bool = False,
                 noise_seed: int = 0, callback: Optional[Callback] = None) -> AttackResult:
    """Random ±ε noise (Bernoulli, the paper's baseline); with several draws the first that fools is kept."""
    p = parse_p(norm)

    def perturb(x0: Tensor, lab: Tensor, tar: Optional[Tensor], eps: Tensor,
                on_step: Optional[OnStep]) -> tuple[Tensor, int]:
        eta = torch.zeros_like(x0)
        done = torch.zeros(x0.shape[0], dtype=torch.bool, device=x0.device)
        for d in range(draws):
            trial = random_noise_eta(x0, eps, p, noise_seed, d)
            if clip:
                trial = (x0 + trial).clamp(0.0, 1.0) - x0
            eta = torch.where(done[:, None, None, None], eta, trial)
            if draws > 1:
                done = done | fooled(model((x0 + eta).clamp(0.0, 1.0)), lab, tar)
            if on_step is not None and on_step(d + 1, eta, torch.zeros_like(done, dtype=x0.dtype)):
                return eta, d + 1
        return eta, draws

    return run_attack("random-noise", perturb, model, inputs, labels, targets, epsilon, p, draws, callback,
                      dict(norm=norm, epsilon=epsilon, draws=draws, clip=clip, noise_seed=noise_seed))
