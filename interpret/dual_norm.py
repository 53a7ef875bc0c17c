"""Figures of the perturbation-analysis page (Balda et al.): pure functions from arrays to Plotly figures.

- the dual-norm picture: a gradient g and the ℓp balls with eq. 6's maximiser for each p;
- fooling ratio against ε (Fig. 3), with the slider's ε marked;
- the per-image histogram of ρ̂₂'s terms L(x,0)/‖∇L‖_q (Theorem 1's least feasible ε);
- output PSNR against input PSNR (Fig. 4) and the autoencoder triplets (Fig. 2) with the attacked pixels marked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Optional

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

FONT = dict(size=14)
P_VALUES = (1.0, 1.5, 2.0, 4.0, math.inf)
COLOURS = {1.0: "#d62728", 1.5: "#ff7f0e", 2.0: "#2ca02c", 4.0: "#1f77b4", math.inf: "#9467bd"}


def p_label(p: float) -> str:
    return "ℓ∞" if math.isinf(p) else f"ℓ{p:g}"


def ball_boundary(p: float, eps: float = 1.0, points: int = 721) -> np.ndarray:
    """(points, 2): the sphere ‖η‖_p = ε in two dimensions."""
    t = np.linspace(0, 2 * np.pi, points)
    c, s = np.cos(t), np.sin(t)
    if math.isinf(p):
        r = 1 / np.maximum(np.abs(c), np.abs(s))
    else:
        r = 1 / (np.abs(c) ** p + np.abs(s) ** p) ** (1 / p)
    return eps * np.stack([r * c, r * s], 1)


def maximiser(g: Sequence[float] | np.ndarray, p: float, eps: float = 1.0) -> np.ndarray:
    """argmax_{‖η‖_p ≤ ε} ηᵀg in closed form (eq. 6 negated; p = 1: the coordinate of largest |g_i|)."""
    v = np.asarray(g, dtype=float)
    if not np.any(v):
        return np.zeros_like(v)
    if math.isinf(p):
        return eps * np.sign(v)
    if p == 1:
        eta = np.zeros_like(v)
        k = int(np.argmax(np.abs(v)))
        eta[k] = eps * np.sign(v[k])
        return eta
    q = p / (p - 1)
    return eps * np.sign(v) * np.abs(v) ** (q - 1) / np.sum(np.abs(v) ** q) ** ((q - 1) / q)


def dual_norm_figure(g: Sequence[float], ps: Sequence[float] = P_VALUES, eps: float = 1.0,
                     height: int = 520) -> go.Figure:
    """The ℓp balls of radius ε, the gradient g and each ball's maximiser of ηᵀg, with ηᵀg = ε‖g‖_q in the legend."""
    v = np.asarray(g, dtype=float)
    fig = go.Figure()
    for p in ps:
        b = ball_boundary(p, eps)
        eta = maximiser(v, p, eps)
        value = float(eta @ v)
        colour = COLOURS.get(p, "#555")
        fig.add_trace(go.Scatter(x=b[:, 0], y=b[:, 1], mode="lines", line=dict(color=colour, width=1.5),
                                 name=f"{p_label(p)} ball", legendgroup=str(p)))
        fig.add_trace(go.Scatter(x=[0, eta[0]], y=[0, eta[1]], mode="lines+markers", legendgroup=str(p),
                                 line=dict(color=colour, width=3), marker=dict(size=[0, 11], color=colour),
                                 name=f"η* for {p_label(p)}: ηᵀg = {value:.3f}"))
    scale = 1.25 * eps / max(float(np.linalg.norm(v)), 1e-12)
    fig.add_annotation(x=v[0] * scale, y=v[1] * scale, ax=0, ay=0, xref="x", yref="y", axref="x", ayref="y",
                       showarrow=True, arrowhead=3, arrowwidth=2.5, arrowcolor="#111", text="g", font=dict(size=16))
    lim = 1.45 * eps
    fig.update_layout(height=height, margin=dict(l=8, r=8, t=8, b=8), font=FONT, legend=dict(font=dict(size=12)),
                      xaxis_title="η₁", yaxis_title="η₂")
    fig.update_xaxes(range=[-lim, lim], zeroline=True, constrain="domain")
    fig.update_yaxes(range=[-lim, lim], zeroline=True, scaleanchor="x", constrain="domain")
    return fig


def fooling_figure(eps: Sequence[float], curves: Mapping[str, Sequence[float]], marked: Optional[float] = None,
                   title: str = "", height: int = 440) -> go.Figure:
    """Fooling ratio (%) against ε, one line per method (Fig. 3); ``marked``: the slider's ε."""
    fig = go.Figure()
    for name, ys in curves.items():
        fig.add_trace(go.Scatter(x=list(eps), y=list(ys), mode="lines+markers", name=name))
    if marked is not None:
        fig.add_vline(x=marked, line_dash="dot", line_color="#444", annotation_text=f"ε = {marked:.3f}")
    fig.update_layout(height=height, title=title or None, xaxis_title="ε (ℓ∞, pixel units)",
                      yaxis_title="fooling ratio (%)", yaxis_range=[0, 101], margin=dict(l=8, r=8, t=30, b=8),
                      font=FONT)
    return fig


def rho2_histogram(ratios: Mapping[str, np.ndarray], height: int = 380) -> go.Figure:
    """Per-image L(x,0)/‖∇L(x,0)‖₁ for each model, with each model's mean (its ρ̂₂) as a dashed line."""
    fig = go.Figure()
    for name, r in ratios.items():
        fig.add_trace(go.Histogram(x=np.asarray(r), name=f"{name} (ρ̂₂ = {float(np.mean(r)):.4f})", opacity=0.6,
                                   nbinsx=40))
        fig.add_vline(x=float(np.mean(r)), line_dash="dash")
    fig.update_layout(barmode="overlay", height=height, xaxis_title="L(x,0) / ‖∇L(x,0)‖₁ (least ε of Theorem 1)",
                      yaxis_title="digits", margin=dict(l=8, r=8, t=8, b=8), font=FONT)
    return fig


def psnr_figure(curves: Mapping[str, Mapping[str, np.ndarray]], height: int = 420) -> go.Figure:
    """Mean output PSNR against mean input PSNR per method (Fig. 4)."""
    fig = go.Figure()
    for name, c in curves.items():
        fig.add_trace(go.Scatter(x=c["input_psnr"], y=c["output_psnr"], mode="lines+markers", name=name))
    fig.update_layout(height=height, xaxis_title="input PSNR (dB)", yaxis_title="output PSNR (dB)",
                      margin=dict(l=8, r=8, t=8, b=8), font=FONT)
    fig.update_xaxes(autorange="reversed")
    return fig


def triplet_figure(inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray], rows: Sequence[str],
                   marked: Optional[np.ndarray] = None, height: int = 560) -> go.Figure:
    """Fig. 2: rows (original / adversarial / random) × columns (input, output), grey images in [0,1];
    ``marked`` (H, W) bool: the attacked pixels, circled on the adversarial input."""
    fig = make_subplots(rows=len(rows), cols=2, subplot_titles=[t for r in rows for t in (f"{r}: input",
                                                                                           f"{r}: output")],
                        horizontal_spacing=0.04, vertical_spacing=0.06)
    for i, (xi, yi) in enumerate(zip(inputs, outputs)):
        for j, img in enumerate((xi, yi)):
            fig.add_trace(go.Heatmap(z=np.clip(np.asarray(img), 0, 1)[::-1], colorscale="gray", zmin=0, zmax=1,
                                     showscale=False), row=i + 1, col=j + 1)
    if marked is not None and marked.any() and marked.sum() <= 60:
        ys, xs = np.nonzero(np.asarray(marked)[::-1])
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", marker=dict(symbol="circle-open", size=12,
                                                                         color="#d62728", line=dict(width=2)),
                                 showlegend=False), row=2, col=1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x")
    fig.update_layout(height=height, margin=dict(l=4, r=4, t=30, b=4), font=dict(size=12))
    return fig
