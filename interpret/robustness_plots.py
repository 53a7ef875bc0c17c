"""Figures of the robustness measures (Balda et al., Sec. 2.2): Theorem 1's bound against DeepFool's perturbations."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go

from interpret.dual_norm import FONT

NORM_NAMES = {"inf": ("ℓ∞", "₁"), "2": ("ℓ2", "₂"), "1": ("ℓ1", "∞")}  # (p of the perturbation, its dual q)


def theorem1_figure(points: Mapping[str, tuple[np.ndarray, np.ndarray]], norm: str = "inf",
                    height: int = 380) -> go.Figure:
    """Per digit, Theorem 1's least feasible ε, L(x,0)/‖∇L(x,0)‖_q (x), against the ‖r̂‖_p of the perturbation
    DeepFool found (y), one trace per network, with the diagonal. On or above it: consistent with the first-order
    bound; below: the network's curvature let DeepFool cross the boundary with less than the bound."""
    p_name, q_name = NORM_NAMES.get(norm, (f"ℓ{norm}", "_q"))
    fig = go.Figure()
    top = 0.0
    for name, (bound, achieved) in points.items():
        bound, achieved = np.asarray(bound, dtype=float), np.asarray(achieved, dtype=float)
        above = float(np.mean(achieved >= bound - 1e-9)) if bound.size else float("nan")
        top = max(top, float(bound.max(initial=0.0)), float(achieved.max(initial=0.0)))
        fig.add_trace(go.Scatter(
            x=bound, y=achieved, mode="markers", marker=dict(size=7, opacity=0.7),
            name=f"{name} ({100 * above:.0f}% on or above)",
            hovertemplate=f"bound %{{x:.4f}}<br>DeepFool ‖r̂‖ %{{y:.4f}}<extra>{name}</extra>"))
    top = 1.05 * top or 1.0
    fig.add_trace(go.Scatter(x=[0.0, top], y=[0.0, top], mode="lines", name="‖r̂‖ = bound",
                             line=dict(dash="dash", color="grey"), hoverinfo="skip"))
    fig.update_layout(height=height, font=FONT, margin=dict(l=8, r=8, t=8, b=8),
                      xaxis_title=f"Theorem 1's least ε: L(x,0) / ‖∇L(x,0)‖{q_name}",
                      yaxis_title=f"DeepFool's {p_name} norm ‖r̂‖", legend=dict(orientation="h", y=-0.22))
    fig.update_xaxes(range=[0.0, top])
    fig.update_yaxes(range=[0.0, top], scaleanchor="x")
    return fig
