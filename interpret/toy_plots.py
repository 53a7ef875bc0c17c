"""Plotly figures of the Teach page: the soft-threshold operator, optimiser paths over the toy problem's contours
(``interpret.toy``), and the three optimisers' objective and ℓ1 per iteration on a real image."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Optional

import numpy as np
import plotly.graph_objects as go

from interpret.toy import X0, boundary_x2

FONT = dict(size=15)  # readable on a projector


def shrink_figure(z_grid: np.ndarray, shrunk: np.ndarray, *, x0: float, threshold: float, z: float,
                  z_shrunk: float, height: int = 420) -> go.Figure:
    """S_β(z) against z with the dead zone |z − x0| ≤ β shaded and one worked example marked."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=z_grid, y=z_grid, mode="lines", name="no shrinkage (z)",
                             line=dict(color="#bbb", dash="dot")))
    fig.add_trace(go.Scatter(x=z_grid, y=shrunk, mode="lines", name="S_β(z), clipped to [0, 1]",
                             line=dict(color="#d62728", width=3)))
    fig.add_vrect(x0=max(0, x0 - threshold), x1=min(1, x0 + threshold), fillcolor="#d62728", opacity=0.08,
                  line_width=0, annotation_text="dead zone: δ = 0", annotation_position="top left")
    fig.add_trace(go.Scatter(x=[z], y=[z_shrunk], mode="markers+text", name="worked example",
                             marker=dict(size=12, color="#1f77b4"), text=[f"  {z:.2f} → {z_shrunk:.3f}"],
                             textposition="middle right"))
    fig.update_layout(height=height, xaxis_title="candidate pixel z (intensity)", yaxis_title="pixel after the step",
                      legend=dict(orientation="h", y=-0.2), margin=dict(l=8, r=8, t=8, b=8), font=FONT)
    fig.update_xaxes(range=[0, 1], constrain="domain")
    fig.update_yaxes(range=[0, 1], scaleanchor="x", constrain="domain")
    return fig


def contour_traces(gx: np.ndarray, gy: np.ndarray, z: np.ndarray, levels: int = 16) -> list[go.Scatter]:
    """The objective's level sets as line traces, one per level (darker = lower), at evenly spaced quantiles of z.

    Not ``go.Contour``: plotly.js drops contour and heatmap traces from the plot when a frame animates the other
    traces (▶ Play, the iteration slider), even traces the frames do not name.
    """
    import contourpy

    generator = contourpy.contour_generator(gx, gy, z, line_type="ChunkCombinedNan")
    values = np.unique(np.quantile(z, np.linspace(0.02, 0.98, levels)))
    traces = []
    for k, value in enumerate(values):
        points = generator.lines(value)[0][0]
        if points is None:
            continue
        grey = int(40 + 160 * k / max(len(values) - 1, 1))
        traces.append(go.Scatter(x=points[:, 0], y=points[:, 1], mode="lines", showlegend=False,
                                 line=dict(color=f"rgb({grey},{grey},{grey})", width=0.9), name=f"objective {value:.4f}",
                                 hovertemplate="objective %{meta:.4f}<extra></extra>", meta=float(value)))
    return traces


def paths_figure(grid: tuple[np.ndarray, np.ndarray, np.ndarray], paths: Mapping[str, np.ndarray],
                 titles: Mapping[str, str], colours: Mapping[str, str], *, lo: tuple[float, float],
                 hi: tuple[float, float], optimum: Optional[np.ndarray] = None, height: int = 620) -> go.Figure:
    """Optimiser paths (name → (k, 2) iterates) over the objective's contours, with the decision boundary, x0,
    the minimiser if given, and a Play button / slider that draws the paths step by step."""
    gx, gy, obj = grid
    fig = go.Figure()
    for trace in contour_traces(gx, gy, obj):
        fig.add_trace(trace)
    line_x = np.array([lo[0], hi[0]])
    fig.add_trace(go.Scatter(x=line_x, y=boundary_x2(line_x), mode="lines", name="decision boundary",
                             line=dict(color="#2e7d32", dash="dash")))
    fig.add_trace(go.Scatter(x=[X0[0]], y=[X0[1]], mode="markers+text", text=["x₀"], textposition="bottom left",
                             marker=dict(size=12, color="black"), name="x₀"))
    if optimum is not None:
        fig.add_trace(go.Scatter(x=[optimum[0]], y=[optimum[1]], mode="markers", name="minimiser x*",
                                 marker=dict(size=14, color="rgba(0,0,0,0)", line=dict(color="black", width=2))))
    first = len(fig.data)
    for name, p in paths.items():
        fig.add_trace(go.Scatter(x=p[:, 0], y=p[:, 1], mode="lines+markers", name=titles[name],
                                 line=dict(color=colours[name], width=2), marker=dict(size=5)))
    n = max(len(p) for p in paths.values())
    fig.frames = [go.Frame(name=str(k), traces=list(range(first, first + len(paths))),
                           data=[go.Scatter(x=p[: k + 1, 0], y=p[: k + 1, 1]) for p in paths.values()])
                  for k in range(n)]
    still = dict(mode="immediate", frame=dict(duration=0, redraw=False), transition=dict(duration=0))
    fig.update_layout(
        height=height, font=FONT, margin=dict(l=8, r=8, t=8, b=110),
        legend=dict(orientation="h", y=1.02, x=0, yanchor="bottom"),
        xaxis=dict(title="pixel x₁", range=[lo[0], hi[0]], constrain="domain"),
        yaxis=dict(title="pixel x₂", range=[lo[1], hi[1]], scaleanchor="x", constrain="domain"),
        updatemenus=[dict(type="buttons", direction="left", x=0, y=-0.13, xanchor="left", yanchor="top",
                          showactive=False, buttons=[
                              dict(label="▶ Play", method="animate",
                                   args=[None, dict(frame=dict(duration=120, redraw=False), fromcurrent=False,
                                                    transition=dict(duration=0))]),
                              dict(label="Pause", method="animate", args=[[None], still])])],
        sliders=[dict(active=n - 1, x=0.2, y=-0.1, len=0.8,
                      currentvalue=dict(prefix="iteration k = ", xanchor="right", font=dict(size=13)),
                      steps=[dict(label=str(k), method="animate", args=[[str(k)], still]) for k in range(n)])],
    )
    return fig


def curves_figure(curves: Mapping[str, Mapping[str, np.ndarray]], titles: Mapping[str, str],
                  colours: Mapping[str, str], *, height: int = 480) -> go.Figure:
    """Objective (solid, log scale) and ‖δ‖₁ (dotted, right axis) per iteration for each optimiser:
    {name: {"objective": (k,), "l1": (k,)}}."""
    fig = go.Figure()
    for name, cur in curves.items():
        title = titles[name]
        k = np.arange(1, len(cur["objective"]) + 1)
        fig.add_trace(go.Scatter(x=k, y=cur["objective"], name=title, mode="lines", legendgroup=name,
                                 line=dict(color=colours[name], width=2.5),
                                 hovertemplate="k = %{x}: objective %{y:.4g}<extra>" + title + "</extra>"))
        fig.add_trace(go.Scatter(x=k, y=cur["l1"], name=f"{title} ‖δ‖₁", mode="lines", yaxis="y2",
                                 legendgroup=name, showlegend=False,
                                 line=dict(color=colours[name], width=1.5, dash="dot"),
                                 hovertemplate="k = %{x}: ‖δ‖₁ %{y:.4g}<extra>" + title + "</extra>"))
    fig.update_layout(height=height, font=FONT, margin=dict(l=8, r=8, t=8, b=8),
                      legend=dict(orientation="h", y=-0.16), xaxis_title="iteration k",
                      yaxis=dict(title="objective (solid, log scale)", type="log", dtick="D2", tickformat="~g"),
                      yaxis2=dict(title="‖δ‖₁ on the [0, 1] scale (dotted)", overlaying="y", side="right",
                                  showgrid=False, tickmode="auto", nticks=6, rangemode="tozero"))
    return fig
