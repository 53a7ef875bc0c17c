"""Regression attacks of the perturbation-analysis paper (Balda et al., Sec. 3–4) on an image-to-image network.

The attack maximises the regression loss ‖f(x+η) − y‖² s.t. ‖η‖_p ≤ ε (eq. 11), y = f(x) (the paper's
approximation; then the gradient at η = 0 vanishes and dithering is needed) or y = x (an autoencoder's truth):

- **linear-ℓp-T** (eq. 16 + Algorithm 1): T closed-form steps of ε/T on ∇‖f(x+η̃) − y‖², dithered at t = 1 (eq. 10).
- **linear-pixel-T** (multiple-subset attack, eq. 22–23): each step sets the one pixel of largest ℓ1 gradient mass
  (all its channels) to ±ε, never the same pixel twice.
- **quadratic-ℓ2** (eq. 14): η = ±ε·v_max(JᵀJ), by matrix-free power iteration v ← Jᵀ(Jv)/‖·‖ (JVP then VJP,
  J never formed); the sign with the larger true loss is kept.
- **quadratic-ℓ1** (eq. 15): the one coordinate of largest Jacobian column norm ‖J_k‖₂, ±ε — a one-pixel attack.
- **quadratic-ℓ∞** (eq. 20): the greedy sign assignment (a MaxCut heuristic), columns by decreasing norm.
- **random** baselines of the same norm: Gaussian direction (ℓ2), Bernoulli ±ε (ℓ∞), ±ε on T random pixels.

All work on batches (N, C, H, W); no box clipping (the paper's), inputs in [0,1]. PSNR is 10·log₁₀(1/MSE) in dB.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from attacks.closed_form import lp_maximiser, lp_norm, parse_p

Net = Callable[[Tensor], Tensor]
REFERENCES = ("fx", "x")


def reference(model: Net, x: Tensor, ref: str) -> Tensor:
    if ref not in REFERENCES:
        raise ValueError(f"reference must be fx (y = f(x), the paper's) or x (y = x, an autoencoder's); got {ref!r}.")
    if ref == "x":
        return x
    with torch.no_grad():
        return model(x)


def loss(model: Net, xa: Tensor, y: Tensor) -> Tensor:
    """‖f(x+η) − y‖² per row (eq. 11)."""
    return (model(xa) - y).flatten(1).square().sum(1)


def psnr(a: Tensor, b: Tensor, peak: float = 1.0) -> Tensor:
    """10·log₁₀(peak²/MSE) per row, in dB (the paper's PSNR, with the log it dropped)."""
    mse = (a - b).flatten(1).square().mean(1)
    return 10 * torch.log10(peak ** 2 / mse.clamp_min(1e-20))


def _grad(model: Net, xa: Tensor, y: Tensor) -> Tensor:
    with torch.enable_grad():
        xg = xa.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(loss(model, xg, y).sum(), xg)
    return g


def _dither(x: Tensor, radius: float, p: float, seed: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    if math.isinf(p):
        d = torch.rand(x.shape, generator=gen) * 2 - 1
    else:
        d = torch.randn(x.shape, generator=gen)
        d = d / lp_norm(d, p).clamp_min(1e-30).view(-1, *([1] * (x.dim() - 1)))
    return d.to(x.device) * radius


def linear_lp(model: Net, x: Tensor, eps: float, *, norm: str = "inf", steps: int = 1, ref: str = "fx",
              dither: float = 0.5, seed: int = 0) -> Tensor:
    """linear-ℓp-T: η ← η + argmax_{‖η*‖_p ≤ ε/T} η*ᵀ∇L(x, η̃_t), η̃₁ = η₁ + random(ε̃ = dither·ε) (eqs. 10, 16)."""
    p = parse_p(norm)
    y = reference(model, x, ref)
    eta = torch.zeros_like(x)
    for t in range(steps):
        point = eta + _dither(x, dither * eps, p, seed) if (t == 0 and dither > 0) else eta
        eta = eta + lp_maximiser(_grad(model, x + point, y), eps / steps, p)  # eq. 6 on the regression loss
    return eta


def linear_pixel(model: Net, x: Tensor, eps: float, *, steps: int = 1, ref: str = "fx", dither: float = 0.5,
                 seed: int = 0) -> Tensor:
    """linear-pixel-T: each step, the unused pixel s* = argmax_s Σ_c |∇L_{s,c}| gets ε·sign(∇L) (eq. 23)."""
    y = reference(model, x, ref)
    eta = torch.zeros_like(x)
    used = torch.zeros(x.shape[0], x.shape[-2] * x.shape[-1], dtype=torch.bool, device=x.device)
    rows = torch.arange(x.shape[0], device=x.device)
    for t in range(steps):
        point = eta + _dither(x, dither * eps, math.inf, seed) if (t == 0 and dither > 0) else eta
        g = _grad(model, x + point, y)
        mass = g.abs().sum(1).flatten(1).masked_fill(used, -1.0)
        s = mass.argmax(1)
        used[rows, s] = True
        flat = eta.flatten(2)
        flat[rows, :, s] = eps * g.flatten(2)[rows, :, s].sign()
        eta = flat.view_as(x)
    return eta


def _best_sign(model: Net, x: Tensor, y: Tensor, eta: Tensor) -> Tensor:
    """±η, whichever has the larger true loss (the quadratic form cannot tell them apart)."""
    with torch.no_grad():
        plus, minus = loss(model, x + eta, y), loss(model, x - eta, y)
    return torch.where((plus >= minus).view(-1, *([1] * (x.dim() - 1))), eta, -eta)


class Linearisation:
    """J = ∂f/∂x at x, matrix-free: ``jv(v)`` = Jv (a JVP) and ``jtu(u)`` = Jᵀu (a VJP), both by reverse mode.

    The JVP is the double-backward trick: g(u) = Jᵀu is linear in u, so ∂(g·v)/∂u = Jv. (torch.func.jvp is forward
    mode, but its first call imports sympy: ~10 s of cold start on CPU, more than a whole MNIST power iteration.)
    The batch's Jacobian is block-diagonal (the net treats samples independently): one call serves all rows.
    """

    def __init__(self, model: Net, x: Tensor) -> None:
        with torch.enable_grad():
            self.x = x.detach().requires_grad_(True)
            self.y = model(self.x)
            self.u = torch.zeros_like(self.y, requires_grad=True)
            (self.g,) = torch.autograd.grad(self.y, self.x, self.u, create_graph=True)

    def jv(self, v: Tensor) -> Tensor:
        return torch.autograd.grad(self.g, self.u, v, retain_graph=True)[0].detach()

    def jtu(self, u: Tensor) -> Tensor:
        return torch.autograd.grad(self.y, self.x, u, retain_graph=True)[0].detach()


def power_iteration(model: Net, x: Tensor, iters: int = 30, seed: int = 0, tol: float = 0.0
                    ) -> tuple[Tensor, Tensor, list[float]]:
    """Top eigenpair of JᵀJ per image by v ← Jᵀ(Jv)/‖Jᵀ(Jv)‖: one JVP and one VJP a step, J never formed.

    Returns (v with ‖v‖₂ = 1 per row, λ = ‖Jv‖² per row, the first row's λ estimate after each step).
    """
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(x.shape, generator=gen).to(x.device)
    shape = (-1, *([1] * (x.dim() - 1)))
    v = v / v.flatten(1).norm(dim=1).view(shape)
    lin = Linearisation(model, x)
    trace: list[float] = []
    lam = torch.zeros(x.shape[0], device=x.device)
    for _ in range(iters):
        jtjv = lin.jtu(lin.jv(v))
        new = jtjv.flatten(1).norm(dim=1)  # ‖JᵀJv‖ for unit v → λ_max
        v = jtjv / new.clamp_min(1e-30).view(shape)
        previous, lam = lam, new
        trace.append(float(lam[0]))
        if tol > 0 and bool(((lam - previous).abs() <= tol * lam).all()):
            break
    lam = lin.jv(v).flatten(1).square().sum(1)  # the Rayleigh quotient vᵀJᵀJv
    return v, lam, trace


def quadratic_l2(model: Net, x: Tensor, eps: float, *, iters: int = 30, ref: str = "fx", seed: int = 0) -> Tensor:
    """quadratic-ℓ2: η = ±ε·v_max(JᵀJ) (eq. 14), matrix-free."""
    v, _, _ = power_iteration(model, x, iters, seed)
    return _best_sign(model, x, reference(model, x, ref), eps * v)


def jacobian(model: Net, x: Tensor) -> Tensor:
    """The explicit per-image Jacobian (N, K, M), for small inputs only (MNIST: 784 × 784): each image repeated K
    times, one forward and one backward pass with one-hot output weights (row k of J from copy k)."""
    n, m = x.shape[0], x[0].numel()
    with torch.enable_grad():
        k = model(x[:1].detach())[0].numel()
        rep = x.detach().repeat_interleave(k, 0).requires_grad_(True)
        out = model(rep).flatten(1)
        eye = torch.eye(k, device=x.device, dtype=out.dtype).repeat(n, 1)
        (g,) = torch.autograd.grad(out, rep, eye)
    return g.view(n, k, m)


def quadratic_l1(model: Net, x: Tensor, eps: float, *, ref: str = "fx", jac: Optional[Tensor] = None) -> Tensor:
    """quadratic-ℓ1: ±ε on the coordinate k* = argmax_k ‖J_k‖₂ (eq. 15): exactly one pixel changes."""
    j = jacobian(model, x) if jac is None else jac
    k = j.norm(dim=1).argmax(1)
    eta = torch.zeros(x.shape[0], x[0].numel(), device=x.device)
    eta[torch.arange(x.shape[0]), k] = eps
    return _best_sign(model, x, reference(model, x, ref), eta.view_as(x))


def greedy_signs(j: Tensor) -> Tensor:
    """Eq. 20 on all coordinates (S = 1, Z = M): visit columns by decreasing ‖J_i‖₂, ρ₁ = +1, then
    ρ_i = sign((Σ_{earlier} ρ J)ᵀ J_i) (0 → +1). ``j``: (N, K, M); returns ρ (N, M) in {−1, +1}."""
    n, _, m = j.shape
    order = j.norm(dim=1).argsort(1, descending=True)
    rows = torch.arange(n, device=j.device)
    rho = torch.ones(n, m, device=j.device)
    u = j[rows, :, order[:, 0]].clone()
    for z in range(1, m):
        col = j[rows, :, order[:, z]]
        s = torch.sign((u * col).sum(1))
        s = torch.where(s == 0, torch.ones_like(s), s)
        rho[rows, order[:, z]] = s
        u = u + s[:, None] * col
    return rho


def quadratic_linf(model: Net, x: Tensor, eps: float, *, ref: str = "fx", jac: Optional[Tensor] = None) -> Tensor:
    """quadratic-ℓ∞: η = ±ε·ρ with ρ the greedy signs of eq. 20."""
    j = jacobian(model, x) if jac is None else jac
    return _best_sign(model, x, reference(model, x, ref), eps * greedy_signs(j).view_as(x))


def random_l2(x: Tensor, eps: float, seed: int = 0) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(x.shape, generator=gen).to(x.device)
    return eps * w / w.flatten(1).norm(dim=1).view(-1, *([1] * (x.dim() - 1)))


def random_linf(x: Tensor, eps: float, seed: int = 0) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return eps * (torch.randint(0, 2, x.shape, generator=gen).float() * 2 - 1).to(x.device)


def random_pixel(x: Tensor, eps: float, pixels: int = 1, seed: int = 0) -> Tensor:
    """±ε on ``pixels`` random pixels (all channels) of each image."""
    gen = torch.Generator().manual_seed(seed)
    n, c, h, w = x.shape
    pick = torch.rand(n, h * w, generator=gen).argsort(1)[:, :pixels]
    mask = torch.zeros(n, h * w).scatter(1, pick, 1.0).view(n, 1, h, w)
    signs = torch.randint(0, 2, x.shape, generator=gen).float() * 2 - 1
    return (eps * signs * mask).to(x.device)


# ---------------------------------------------------------------------------------------------------------------
# Fig. 4: output PSNR against input PSNR

CURVE_METHODS = {
    "2": ("rand-l2", "linear-l2-1", "linear-l2-10", "linear-l2-20", "quadratic-l2"),
    "inf": ("rand-linf", "linear-linf-1", "linear-linf-10", "linear-linf-20", "quadratic-linf"),
    "pixel": ("rand-pixel-1", "rand-pixel-10", "linear-pixel-1", "linear-pixel-10", "quadratic-l1"),
}


def perturb(method: str, model: Net, x: Tensor, eps: float, *, ref: str = "fx", seed: int = 0,
            jac: Optional[Tensor] = None, v_max: Optional[Tensor] = None) -> Tensor:
    """The η of one named method at ε (names as ``CURVE_METHODS``)."""
    if method == "rand-l2":
        return random_l2(x, eps, seed)
    if method == "rand-linf":
        return random_linf(x, eps, seed)
    if method.startswith("rand-pixel-"):
        return random_pixel(x, eps, int(method.rsplit("-", 1)[1]), seed)
    if method.startswith("linear-pixel-"):
        return linear_pixel(model, x, eps, steps=int(method.rsplit("-", 1)[1]), ref=ref, seed=seed)
    if method.startswith("linear-l"):
        _, norm, t = method.split("-")
        return linear_lp(model, x, eps, norm=norm[1:], steps=int(t), ref=ref, seed=seed)
    if method == "quadratic-l2":
        if v_max is not None:
            return _best_sign(model, x, reference(model, x, ref), eps * v_max)
        return quadratic_l2(model, x, eps, ref=ref, seed=seed)
    if method == "quadratic-l1":
        return quadratic_l1(model, x, eps, ref=ref, jac=jac)
    if method == "quadratic-linf":
        return quadratic_linf(model, x, eps, ref=ref, jac=jac)
    raise ValueError(f"Unknown regression attack {method!r}: choose from "
                     f"{', '.join(sorted({m for ms in CURVE_METHODS.values() for m in ms}))}.")


def psnr_curves(model: Net, x: Tensor, eps_grid: Sequence[float], methods: Sequence[str], *, ref: str = "fx",
                seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """For each method: mean input PSNR (x+η vs x) and mean output PSNR (f(x+η) vs y) at each ε (Fig. 4)."""
    y = reference(model, x, ref)
    need_j = any(m in ("quadratic-l1", "quadratic-linf") for m in methods)
    jac = jacobian(model, x) if need_j else None
    v_max = power_iteration(model, x, 30, seed)[0] if "quadratic-l2" in methods else None
    rho = greedy_signs(jac) if jac is not None and "quadratic-linf" in methods else None
    out: dict[str, dict[str, np.ndarray]] = {}
    for m in methods:
        pin, pout = [], []
        for eps in eps_grid:
            if m == "quadratic-linf" and rho is not None:
                eta = _best_sign(model, x, y, eps * rho.view_as(x))
            else:
                eta = perturb(m, model, x, float(eps), ref=ref, seed=seed, jac=jac, v_max=v_max)
            with torch.no_grad():
                pin.append(float(psnr(x + eta, x).mean()))
                pout.append(float(psnr(model(x + eta), y).mean()))
        out[m] = {"epsilon": np.asarray(eps_grid, dtype=float), "input_psnr": np.asarray(pin),
                  "output_psnr": np.asarray(pout)}
    return out
