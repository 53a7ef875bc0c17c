"""Cached computations of the Perturbation page (Balda et al.): models, digits, curves and regression triplets.

Everything heavy is cached per argument set; the page's ε slider only ever runs one forward pass per one-step
method (their unit directions are cached), so it redraws as it moves.
"""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

CLASSIFIERS = ("mnist-fc", "mnist-lenet5", "mnist-cnn")
EPS_MAX = {"mnist-fc": 0.1, "mnist-lenet5": 0.2, "mnist-cnn": 0.3}  # Fig. 3's axes (the C&W net: its ε₉₉)
LIVE = ("FGSM", "Alg1", "Alg2", "random")  # one forward pass each at the slider's ε
REGRESSION = {
    "quadratic-linf": ("inf", "rand-linf"), "quadratic-l2": ("2", "rand-l2"), "quadratic-l1": ("1", "rand-pixel-1"),
    "linear-linf-20": ("inf", "rand-linf"), "linear-pixel-10": ("inf", "rand-pixel-10"),
}


@st.cache_resource(show_spinner=False)
def classifier(name: str):
    from advlens.models import load_model

    return load_model(name)


@st.cache_resource(show_spinner=False)
def autoencoder():
    from advlens.models import load_regressor

    return load_regressor("mnist-ae")


@st.cache_resource(show_spinner=False)
def digits(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    from advlens.perturbation_cli import load_digits

    return load_digits(list(range(n)))


@st.cache_data(show_spinner="Fooling-ratio curves…", max_entries=16)
def curves(model_name: str, n: int, methods: tuple[str, ...], points: int = 11) -> tuple[list[float], dict]:
    from interpret.robustness import fooling_curves

    x, y = digits(n)
    grid = [float(e) for e in np.linspace(0, EPS_MAX[model_name], points)]
    return grid, fooling_curves(classifier(model_name), x, y, grid, methods=methods)


@st.cache_resource(show_spinner=False, max_entries=8)
def directions(model_name: str, n: int) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """The correctly classified digits and each one-step method's unit step (ε = 1)."""
    from interpret.robustness import one_step_directions, predictions

    x, y = digits(n)
    model = classifier(model_name)
    ok = predictions(model, x) == y
    xc, yc = x[ok], y[ok]
    dirs = one_step_directions(model, xc, yc)
    dirs["random"] = torch.randint(0, 2, xc.shape[1:], generator=torch.Generator().manual_seed(0)).float()[None] * 2 - 1
    return xc, yc, dirs


def live_ratios(model_name: str, n: int, eps: float) -> dict[str, float]:
    """Fooling ratio (%) of the one-step methods at ε: one forward pass each."""
    xc, yc, dirs = directions(model_name, n)
    model = classifier(model_name)
    out = {}
    with torch.no_grad():
        for name in LIVE:
            out[name] = 100.0 * float((model(xc + eps * dirs[name]).argmax(1) != yc).float().mean())
    return out


@st.cache_data(show_spinner="ρ̂₂ per digit…", max_entries=8)
def rho2(n: int) -> dict[str, np.ndarray]:
    from interpret.robustness import predictions, rho2_terms

    x, y = digits(n)
    out = {}
    for name in ("mnist-fc", "mnist-lenet5"):
        model = classifier(name)
        ok = predictions(model, x) == y
        out[name] = rho2_terms(model, x[ok], y[ok]).numpy()
    return out


@st.cache_data(show_spinner="DeepFool per digit…", max_entries=8)
def theorem1(n: int) -> dict[str, dict]:
    """Per network, over its correctly classified digits that DeepFool fools (ℓ∞, ≤ 50 iterations): Theorem 1's
    least ε L/‖∇L‖₁ and DeepFool's ‖r̂‖∞; ``unfooled`` counts the correct digits left out."""
    from interpret.robustness import deepfool_norms, predictions, rho2_terms

    x, y = digits(n)
    out = {}
    for name in ("mnist-fc", "mnist-lenet5"):
        model = classifier(name)
        ok = predictions(model, x) == y
        bound = rho2_terms(model, x[ok], y[ok])
        norms, fooled = deepfool_norms(model, x[ok], y[ok])
        out[name] = {"bound": bound[fooled].numpy(), "deepfool": norms[fooled].numpy(),
                     "unfooled": int((~fooled).sum())}
    return out


@st.cache_data(show_spinner="Attacking the autoencoder…", max_entries=32)
def triplet(method: str, index: int, eps: float, reference: str) -> dict[str, np.ndarray]:
    from attacks import regression as R

    x, _ = digits(max(index + 1, 20))
    x = x[index:index + 1]
    model = autoencoder()
    eta = R.perturb(method, model, x, eps, ref=reference)
    norm, rand_name = REGRESSION[method]
    # the random counterpart at the same input norm (pixel attacks: the same number of pixels at ±ε)
    rand = R.perturb(rand_name, model, x, eps)
    if rand_name == "rand-l2":
        rand = R.random_l2(x, float(eta.flatten().norm()))
    with torch.no_grad():
        rows = [x, x + eta, x + rand]
        outs = [model(r) for r in rows]
        y = model(x) if reference == "fx" else x
        psnr_in = [float(R.psnr(r, x)) for r in rows]
        psnr_out = [float(R.psnr(o, y)) for o in outs]
    return {"inputs": np.stack([r[0, 0].numpy() for r in rows]), "outputs": np.stack([o[0, 0].numpy() for o in outs]),
            "marked": (eta[0, 0] != 0).numpy(), "psnr_in": np.array(psnr_in), "psnr_out": np.array(psnr_out)}


@st.cache_data(show_spinner="PSNR curves over 20 digits…", max_entries=8)
def psnr_curves(family: str, reference: str) -> dict:
    from advlens.perturbation_cli import DEFAULT_REGRESS_GRIDS, parse_grid
    from attacks.regression import CURVE_METHODS
    from attacks.regression import psnr_curves as curves_of

    x, _ = digits(20)
    return curves_of(autoencoder(), x, parse_grid(DEFAULT_REGRESS_GRIDS[family]), CURVE_METHODS[family],
                     ref=reference)
