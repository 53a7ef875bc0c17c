"""The "Defenses & transfer" page's work: transfer runs over κ, the feature-squeezing detector, their figures.

The maths lives in ``advlens.crafting`` and ``interpret.squeeze``; this module only caches models and detectors
for the session and shapes the results for the page.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import plotly.graph_objects as go
import streamlit as st
import torch
from torch import Tensor

ATTACKS = (("EAD (EN)", "ead", {"decision_rule": "en"}), ("C&W (L2)", "cw", {"learning_rate": 0.1}))
DEFAULT_BUDGET = {"binary_search_steps": 3, "steps": 100, "initial_const": 1.0}


def mnist_models() -> list[str]:
    from advlens.models import REGISTRY

    return [name for name, spec in REGISTRY.items() if spec.dataset == "mnist"]


@st.cache_resource(show_spinner="Loading the model…")
def model(name: str):
    from advlens.models import load_model

    return load_model(name)


@st.cache_resource(show_spinner="Loading the crafting model…")
def source(names: tuple[str, ...], target: str):
    from advlens.crafting import load_source

    return load_source(names, target)


@st.cache_resource(show_spinner="Fitting the detector's threshold on held-out digits…")
def detector(name: str, squeezers: str):
    from advlens.defenses import mnist_detector

    return mnist_detector(model(name), squeezers)


@st.cache_data
def digits(count: int) -> tuple[Tensor, Tensor, Tensor]:
    """The first ``count`` held-out digits, their labels and a fixed random incorrect target each (seed 0)."""
    from advlens.defenses import heldout_digits
    from attacks.targets import random_targets

    x, y = heldout_digits()
    x, y = x[:count], y[:count]
    return x, y, random_targets(y, 10, torch.Generator().manual_seed(0))


@dataclass
class TransferRun:
    sources: tuple[str, ...]
    target: str
    kappas: list[float]
    x: Tensor
    labels: Tensor
    targets: Tensor
    budget: dict[str, Any]
    # (method, κ) → (adversarial examples, success on the target, success on the source)
    results: dict[tuple[str, float], tuple[Tensor, Tensor, Tensor]] = field(default_factory=dict)

    def rates(self, method: str) -> tuple[list[float], list[float]]:
        """(transfer ASR %, white-box ASR % on the source) by κ."""
        got = [self.results.get((method, k)) for k in self.kappas]
        return ([float("nan") if r is None else 100 * r[1].float().mean().item() for r in got],
                [float("nan") if r is None else 100 * r[2].float().mean().item() for r in got])


def run_transfer(sources: Sequence[str], target: str, kappas: Sequence[float], count: int, budget: dict[str, Any],
                 on_step: Optional[Callable[[int, int, str], None]] = None) -> TransferRun:
    from advlens.crafting import judge
    from attacks.registry import get_attack

    x, labels, targets = digits(count)
    run = TransferRun(tuple(sources), target, list(kappas), x, labels, targets, dict(budget))
    src, tgt = source(tuple(sources), target), model(target)
    jobs = [(label, attack, given, k) for label, attack, given in ATTACKS for k in kappas]
    for n, (label, attack, given, k) in enumerate(jobs):
        if on_step:
            on_step(n, len(jobs), f"{label}, κ = {k:g}")
        res = get_attack(attack)(src, x, labels, targets, **{**given, **budget, "kappa": float(k)})
        on_target, on_source = judge(res, tgt)
        run.results[(label, float(k))] = (res.adversarial.detach().cpu(), on_target.success.cpu(), on_source.cpu())
    return run


def transfer_figure(run: TransferRun, height: int = 380) -> go.Figure:
    fig = go.Figure()
    for (label, _, _), colour in zip(ATTACKS, ("#d62728", "#1f77b4")):
        transfer, white = run.rates(label)
        fig.add_scatter(x=run.kappas, y=transfer, mode="lines+markers", name=f"{label} on {run.target}",
                        line={"color": colour})
        fig.add_scatter(x=run.kappas, y=white, mode="lines", name=f"{label} white-box on {'+'.join(run.sources)}",
                        line={"color": colour, "dash": "dot"})
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 30, "b": 10}, yaxis={"range": [-3, 103]},
                      xaxis_title="confidence κ", yaxis_title="success rate %", legend={"font": {"size": 11}})
    return fig


def detection_figure(legit: Tensor, adversarial: Optional[Tensor], threshold: float, height: int = 300) -> go.Figure:
    fig = go.Figure()
    fig.add_scatter(x=list(range(len(legit))), y=legit.tolist(), mode="markers", name="legitimate digits")
    if adversarial is not None:
        fig.add_scatter(x=list(range(len(adversarial))), y=adversarial.tolist(), mode="markers",
                        name="adversarial examples", marker={"symbol": "x", "size": 10})
    fig.add_hline(y=threshold, line_dash="dash", annotation_text=f"threshold {threshold:.4f} (5% FPR)")
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 30, "b": 10}, xaxis_title="digit",
                      yaxis_title="detection score (max ℓ1 of softmax)", yaxis={"rangemode": "tozero"})
    return fig
