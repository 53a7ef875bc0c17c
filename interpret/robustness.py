"""Robustness measures and fooling-ratio curves of the perturbation-analysis paper (Balda et al., Table 3 and Fig. 3).

Pure functions of a model and a batch of [0,1] digits: nothing here draws or prints.

- **ρ̂₂** = mean over the correctly classified of L(x,0)/‖∇L(x,0)‖_q (Sec. 2.2), L the margin f_k − max_{l≠k} f_l:
  one forward and one backward pass per image. Theorem 1: the linearised problem (3) is infeasible at ε when
  ε·‖∇L‖_q < L(x,0), so each ratio is the least ε at which a linearised attack can fool that image.
- **ρ̂₁** = mean over DeepFool's fooled images of ‖r̂(x)‖_p/‖x‖_p (DeepFool's measure, as the authors' code).
- **ε₉₉**: the smallest ε at which DeepFool fools more than 99% (fooled with ‖r̂‖_p ≤ ε, the authors' code).
- **Fooling ratio** (as [MDFF16]): the share of the correctly classified images whose prediction changes, judged on
  the unclipped x + η as the paper (``clip=True``: on clip(x + η), a labelled deviation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from attacks.closed_form import dual, linearised_steps, lp_maximiser, lp_norm, margin, parse_p, random_noise_eta
from attacks.deepfool import deepfool
from attacks.model import PixelModel

METHODS = ("FGSM", "Alg1", "Alg1-5", "Alg1-10", "Alg2", "PGD", "DeepFool", "random")
PGD_STEPS = 10  # the paper does not give PGD's T; 10, as Alg1-10, so the two differ only in loss and dithering


def method_attack(method: str, norm: str = "inf", clip: bool = False, seed: int = 0,
                  deepfool_steps: int = 50) -> tuple[str, dict[str, Any]]:
    """The registered attack and its parameters (all but ``epsilon``) that compute ``method`` as ``fooling_curves``.

    Its per-image verdict on the unclipped x + η is ``params["faithful_success"]`` (with ``clip``, the same as
    ``success``); DeepFool's ``epsilon`` is a threshold on its minimal ‖r̂‖_p, so one run per ε gives the same verdict.
    """
    common: dict[str, Any] = {"norm": norm, "clip": clip}
    table: dict[str, tuple[str, dict[str, Any]]] = {
        "FGSM": ("alg1", {"loss": "ce", "iterations": 1}),  # eq. 5 with p = ∞ on the cross-entropy (Sec. 6.1)
        "Alg1": ("gnm", {}),  # Algorithm 1 with T = 1 is GNM's closed form (eq. 6) on the margin
        "Alg1-5": ("alg1", {"iterations": 5}),
        "Alg1-10": ("alg1", {"iterations": 10}),
        "Alg2": ("alg2", {}),
        "PGD": ("alg1", {"loss": "ce", "iterations": PGD_STEPS, "dither": 1.0, "dither_seed": seed}),
        "DeepFool": ("deepfool", {"norm": norm if norm in ("2", "inf") else "inf", "steps": deepfool_steps}),
        "random": ("random-noise", {"noise_seed": seed}),
    }
    if method not in table:
        raise ValueError(f"Unknown method {method!r}: choose from {', '.join(METHODS)}.")
    attack, given = table[method]
    return attack, {**common, **given}


def predictions(model: PixelModel, x: Tensor, batch: int = 500) -> Tensor:
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch]).argmax(1) for i in range(0, x.shape[0], batch)])


def margin_and_gradient(model: PixelModel, x: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """L(x,0) = f_k − max_{l≠k} f_l and ∇L(x,0), one forward and one backward pass (eq. 2–3)."""
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        value = margin(model(xg), labels)
        (g,) = torch.autograd.grad(value.sum(), xg)
    return value.detach(), g


def rho2_terms(model: PixelModel, x: Tensor, labels: Tensor, norm: str = "inf", batch: int = 500) -> Tensor:
    """L(x,0)/‖∇L(x,0)‖_q per image (Theorem 1's least feasible ε; its mean over the correct ones is ρ̂₂)."""
    q = dual(parse_p(norm))
    out = []
    for i in range(0, x.shape[0], batch):
        value, g = margin_and_gradient(model, x[i:i + batch], labels[i:i + batch])
        out.append(value / lp_norm(g, q).clamp_min(1e-30))
    return torch.cat(out)


def theorem1_feasible(ratio: Tensor, eps: float) -> Tensor:
    """Per image: whether (3) is feasible at ε, i.e. not ε‖∇L‖_q < L(x,0) (eq. 4)."""
    return ratio <= eps


def deepfool_norms(model: PixelModel, x: Tensor, labels: Tensor, norm: str = "inf", batch: int = 250,
                   steps: int = 50, overshoot: float = 0.02) -> tuple[Tensor, Tensor]:
    """DeepFool's minimal ‖r̂‖_p per image and whether it fooled (unclipped, ≤ ``steps``), as the authors' code."""
    norms, ok = [], []
    for i in range(0, x.shape[0], batch):
        r = deepfool(model, x[i:i + batch], labels[i:i + batch], norm=norm, steps=steps, overshoot=overshoot)
        norms.append(r.params["perturbation_norm"])
        ok.append(r.params["faithful_success"])
    return torch.cat(norms), torch.cat(ok)


def eps99(norms: Tensor, ok: Tensor) -> float:
    """The smallest ε at which more than 99% of the images are fooled with ‖r̂‖ ≤ ε (inf where DeepFool can't)."""
    n = norms.shape[0]
    need = math.floor(0.99 * n) + 1
    values = norms[ok].sort().values
    return float(values[need - 1]) if values.shape[0] >= need else math.inf


@dataclass
class Robustness:
    n: int  # images given
    n_correct: int  # correctly classified: the measures are over these
    norm: str
    rho1: float
    rho2: float
    deepfool_eps99: float
    deepfool_fooled: float  # share of the correct ones DeepFool fooled within its cap
    ratios: np.ndarray  # L/‖∇L‖_q per correct image (ρ̂₂'s terms, Theorem 1's least feasible ε)
    deepfool_norms: np.ndarray  # ‖r̂‖_p per correct image

    def as_dict(self) -> dict:
        def num(v: float) -> Optional[float]:
            return None if not math.isfinite(v) else round(v, 5)

        return {"n": self.n, "n_correct": self.n_correct, "norm": self.norm, "rho1": num(self.rho1),
                "rho2": num(self.rho2), "deepfool_eps99": num(self.deepfool_eps99),
                "deepfool_fooled": round(self.deepfool_fooled, 4),
                # Theorem 1 per image: the share where its first-order least ε, L/‖∇L‖_q, is not beaten by the
                # perturbation DeepFool found (L/‖∇L‖_q ≤ ‖r̂‖); the rest is where the network's curvature helps
                "theorem1_consistent": round(float(np.mean(self.ratios <= self.deepfool_norms + 1e-9)), 4)}


def robustness(model: PixelModel, x: Tensor, labels: Tensor, norm: str = "inf") -> Robustness:
    """Table 3 on these images: ρ̂₁, ρ̂₂ and DeepFool's ε₉₉ over the correctly classified ones."""
    correct = predictions(model, x) == labels
    xc, yc = x[correct], labels[correct]
    if xc.shape[0] == 0:
        raise ValueError("None of these images is classified correctly: the measures are over correct ones.")
    ratios = rho2_terms(model, xc, yc, norm)
    norms, ok = deepfool_norms(model, xc, yc, norm)
    p = parse_p(norm)
    rel = norms[ok] / lp_norm(xc[ok], p).clamp_min(1e-30)
    return Robustness(n=x.shape[0], n_correct=int(correct.sum()), norm=norm,
                      rho1=float(rel.mean()) if rel.numel() else math.nan, rho2=float(ratios.mean()),
                      deepfool_eps99=eps99(norms, ok), deepfool_fooled=float(ok.float().mean()),
                      ratios=ratios.numpy(), deepfool_norms=norms.numpy())


# ---------------------------------------------------------------------------------------------------------------
# Fooling ratio against ε (Fig. 3)


def _grad(model: PixelModel, x: Tensor, labels: Tensor, kind: str) -> Tensor:
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        logits = model(xg)
        if kind == "ce":
            a = F.cross_entropy(logits, labels, reduction="none")
        elif kind == "score":
            a = -logits.gather(1, labels[:, None]).squeeze(1)
        else:
            a = -margin(logits, labels)
        (g,) = torch.autograd.grad(a.sum(), xg)
    return g


def _fooled(model: PixelModel, x: Tensor, eta: Tensor, labels: Tensor, clip: bool) -> Tensor:
    adv = x + eta
    with torch.no_grad():
        return model(adv.clamp(0.0, 1.0) if clip else adv).argmax(1) != labels


def one_step_directions(model: PixelModel, x: Tensor, labels: Tensor, norm: str = "inf") -> dict[str, Tensor]:
    """The unit (ε = 1) closed-form step of each one-step method: FGSM (CE), Alg1 (margin), Alg2 (label score)."""
    p = parse_p(norm)
    return {name: lp_maximiser(_grad(model, x, labels, kind), 1.0, p)
            for name, kind in (("FGSM", "ce"), ("Alg1", "margin"), ("Alg2", "score"))}


def fooling_curves(model: PixelModel, x: Tensor, labels: Tensor, eps_grid: Sequence[float], *,
                   methods: Sequence[str] = METHODS, norm: str = "inf", clip: bool = False, seed: int = 0,
                   batch: int = 500, deepfool_steps: int = 50) -> dict[str, np.ndarray]:
    """Fooling ratio (%) at each ε of ``eps_grid`` for each method, over the correctly classified images.

    One-step methods take one gradient per image whatever the grid (η = ε·d); Alg1-T and PGD run T steps per ε;
    DeepFool runs once and counts an image fooled at ε when its minimal ‖r̂‖_p ≤ ε (the authors' code). The same
    numbers through the evaluation runner: ``method_attack`` (``advlens fooling --out``).
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"Unknown method {unknown[0]!r}: choose from {', '.join(METHODS)}.")
    p = parse_p(norm)
    correct = predictions(model, x) == labels
    xc, yc = x[correct], labels[correct]
    n = xc.shape[0]
    if n == 0:
        raise ValueError("None of these images is classified correctly: fooling ratios are over correct ones.")
    grid = [float(e) for e in eps_grid]
    counts = {m: np.zeros(len(grid)) for m in methods}
    for i in range(0, n, batch):
        xb, yb = xc[i:i + batch], yc[i:i + batch]
        one = one_step_directions(model, xb, yb, norm) if any(m in ("FGSM", "Alg1", "Alg2") for m in methods) else {}
        if "DeepFool" in methods:
            r = deepfool(model, xb, yb, norm=norm if norm in ("2", "inf") else "inf", steps=deepfool_steps, clip=clip)
            df_norm, df_ok = r.params["perturbation_norm"], r.params["faithful_success"]
        for j, eps in enumerate(grid):
            e = torch.full((xb.shape[0],), eps)
            for m in methods:
                if m in one:
                    hit = _fooled(model, xb, eps * one[m], yb, clip)
                elif m in ("Alg1-5", "Alg1-10", "PGD"):
                    if eps == 0:
                        hit = torch.zeros(xb.shape[0], dtype=torch.bool)
                    else:
                        t = PGD_STEPS if m == "PGD" else int(m.split("-")[1])
                        with torch.no_grad():
                            eta, _ = linearised_steps(model, xb, yb, None, e, p=p, steps=t,
                                                      loss="ce" if m == "PGD" else "margin",
                                                      dither=1.0 if m == "PGD" else 0.0, seed=seed, clip=clip)
                        hit = _fooled(model, xb, eta, yb, clip)
                elif m == "DeepFool":
                    hit = df_ok & (df_norm <= eps + 1e-9)
                else:
                    hit = _fooled(model, xb, random_noise_eta(xb, e, p, seed), yb, clip)
                counts[m][j] += float(hit.sum())
    return {m: 100.0 * c / n for m, c in counts.items()}
