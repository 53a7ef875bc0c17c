"""Teach's two-pixel elastic-net problem: EAD's objective on a linear two-class "network" over two pixels.

The model says class 0 at x0 = (0.35, 0.30); class 1 wins past the line 6·x1 + 3·x2 = 4. The targeted attack
(t = 1) minimises eq. 7 of EAD,

    c·f(x) + β‖x − x0‖₁ + ‖x − x0‖₂²,    f(x) = max(Z0(x) − Z1(x), −κ) = max(4 − 6·x1 − 3·x2, −κ),

over the plane. ``optimiser_path`` records the iterates of the real ISTA, FISTA and COV code (the registry's
attacks, one value of c, no early abort) on this model; ``minimiser`` solves the problem in closed form, so the
paths can be checked against the answer. ``shrink`` and ``elastic_net_terms`` give the worked examples.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from attacks.ead import elastic_net, project_shrink
from attacks.losses import hinge_loss, logit_margin
from attacks.model import PixelModel
from attacks.registry import get_attack

X0 = (0.35, 0.30)
KAPPA = 0.5
WEIGHTS = (6.0, 3.0)  # class 1's logit is 6·x1 + 3·x2 − 4; class 0's is 0
BIAS = -4.0
OPTIMISERS: tuple[tuple[str, str], ...] = (("ead-ista", "ISTA"), ("ead", "FISTA"), ("cov", "COV (tanh + Adam)"))


def toy_model() -> PixelModel:
    """The two-pixel, two-class linear 'network' as a model the attacks take: images (N, 1, 1, 2)."""
    linear = nn.Linear(2, 2)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[0.0, 0.0], list(WEIGHTS)]))
        linear.bias.copy_(torch.tensor([0.0, BIAS]))
    return PixelModel(nn.Sequential(nn.Flatten(), linear), (0.0,), (1.0,))


def boundary_x2(x1: np.ndarray) -> np.ndarray:
    """x2 on the decision boundary Z0 = Z1, for each x1."""
    return (-BIAS - WEIGHTS[0] * np.asarray(x1)) / WEIGHTS[1]


def objective(points: torch.Tensor, beta: float, c: float) -> torch.Tensor:
    """c·f(x) + β‖x − x0‖₁ + ‖x − x0‖₂² at points (M, 2), from the loss functions the attacks use."""
    x = points.reshape(-1, 1, 1, 2).float()
    n = x.shape[0]
    with torch.no_grad():
        margin = logit_margin(toy_model()(x), torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.long))
    _, _, en = elastic_net(x - torch.tensor(X0).view(1, 1, 1, 2), beta)
    return c * hinge_loss(margin, KAPPA) + en


def objective_grid(beta: float, c: float, lo: tuple[float, float], hi: tuple[float, float],
                   n: int = 121) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x1 values, x2 values, objective (n, n) with rows along x2) on a grid over the box [lo, hi]."""
    xs, ys = torch.linspace(lo[0], hi[0], n), torch.linspace(lo[1], hi[1], n)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    values = objective(torch.stack([gx.flatten(), gy.flatten()], 1), beta, c)
    return xs.numpy(), ys.numpy(), values.view(n, n).numpy()


def minimiser(beta: float, c: float) -> np.ndarray:
    """The exact minimiser x* of the objective (inside the pixel box, which holds for Teach's settings).

    With a = (6, 3) and d = x − x0, each coordinate of the elastic-net proximal problem is d_i = max(λ·a_i − β, 0)/2
    for a multiplier λ ≥ 0. If the hinge stays active at its unconstrained optimum (λ = c), that is x*; otherwise
    x* lies on the kink 4 − a·x = −κ, where λ ∈ [0, c] is found by bisection so that a·d reaches it.
    """
    a = np.array(WEIGHTS)
    x0 = np.array(X0)

    def d(lam: float) -> np.ndarray:
        return np.maximum(lam * a - beta, 0.0) / 2

    needed = -BIAS + KAPPA - a @ x0  # a·d at which the margin reaches −κ
    if a @ d(c) <= needed:
        return x0 + d(c)
    low, high = 0.0, c
    for _ in range(200):
        mid = (low + high) / 2
        low, high = (mid, high) if a @ d(mid) < needed else (low, mid)
    return x0 + d(high)


def optimiser_path(name: str, beta: float, c: float, steps: int, learning_rate: float) -> np.ndarray:
    """The iterates x⁽⁰⁾ = x0, x⁽¹⁾, …, x⁽ˢᵗᵉᵖˢ⁾ of a registered attack on the toy problem, (steps + 1, 2).

    ISTA and FISTA use the textbook threshold α_k·β (their proximal operator), so that they minimise this
    objective; COV runs Adam on it with the ℓ1 term as a subgradient.
    """
    entry = get_attack(name)
    seen: list[torch.Tensor] = []
    x0 = torch.tensor(X0).view(1, 1, 1, 2)
    extra = {"scaled_threshold": True} if any(p.name == "scaled_threshold" for p in entry.params) else {}
    entry(toy_model(), x0, torch.tensor([0]), torch.tensor([1]),
          callback=lambda s: seen.append(s.current[0, 0, 0].detach().clone()),
          beta=beta, kappa=KAPPA, initial_const=c, binary_search_steps=1, steps=steps,
          learning_rate=learning_rate, abort_early=False, **extra)
    return torch.stack([x0[0, 0, 0]] + seen).double().numpy()


def optimiser_paths(beta: float, c: float, steps: int, learning_rate: float) -> dict[str, np.ndarray]:
    """``optimiser_path`` of ISTA, FISTA and COV, by registry name."""
    return {name: optimiser_path(name, beta, c, steps, learning_rate) for name, _ in OPTIMISERS}


def shrink(z: float, x0: float, threshold: float) -> float:
    """S_β(z) of eq. 9 for one pixel: z − x0 soft-thresholded by ``threshold`` around x0, clipped to [0, 1]."""
    return float(project_shrink(torch.tensor([z]), torch.tensor([x0]), threshold)[0])


def shrink_curve(x0: float, threshold: float, points: int = 401) -> tuple[np.ndarray, np.ndarray]:
    """(z, S_β(z)) for z over [0, 1]: the soft-threshold operator around x0."""
    z = torch.linspace(0, 1, points)
    return z.numpy(), project_shrink(z, torch.full_like(z, x0), threshold).numpy()


def elastic_net_terms(delta: tuple[float, ...], beta: float) -> dict[str, float]:
    """‖δ‖₀, ‖δ‖₁, ‖δ‖₂² and β‖δ‖₁ + ‖δ‖₂² of one perturbation."""
    d = torch.tensor([delta], dtype=torch.float64)
    l1, l2sq, en = elastic_net(d, beta)
    return {"l0": int((d != 0).sum()), "l1": float(l1[0]), "l2sq": float(l2sq[0]), "en": float(en[0])}
