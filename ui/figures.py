"""A stored run's panels: ``interpret.plots`` builders called with the run's data and the display knobs.

Thin calls only: every figure is built once, with its options (colour map, opacity, shared value range, height,
colour bar under narrow panels, a frame), by the builder in ``interpret.plots``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ui.analysis import scores_at
from ui.colours import CLASS_COLOURS, attack_colour
from ui.state import Run

if TYPE_CHECKING:
    import plotly.graph_objects as go

PANEL_HEIGHT = 300


def _views(run: Run) -> dict:
    from advlens.explain import sample_views

    return sample_views(run.result, run.scores)


def delta_figure(run: Run, channel: str, *, height: int = PANEL_HEIGHT, limit: Optional[float] = None) -> go.Figure:
    from interpret.plots import perturbation_figure

    return perturbation_figure(run.delta[0], title="", channel=channel, limit=limit, height=height,
                               colorbar="below", frame=True)


def groups_figure(run: Run, cmap: str, opacity: float, *, height: int = PANEL_HEIGHT,
                  zmax: Optional[float] = None) -> go.Figure:
    from interpret.plots import group_grid_figure

    views = _views(run)
    return group_grid_figure(run.result.original[0], views["group_norms"], views["groups"],
                             size=views["group_size"], stride=views["group_stride"], cmap=cmap, opacity=opacity,
                             zmax=zmax, title="", height=height, colorbar="below")


def asm_figure(run: Run, nu: float, cmap: str, opacity: float, *, height: int = PANEL_HEIGHT) -> Optional[go.Figure]:
    """ASM(x₀, t) over x₀, outlined where it is above its ν-th percentile (B_ASM)."""
    scores = scores_at(run, nu)
    if scores is None:
        return None
    from interpret.plots import overlay_figure

    return overlay_figure(run.result.original[0], _views(run)["asm"], unit="ASM(x₀, t)", cmap=cmap, opacity=opacity,
                          zmin=0, hide_zero=True, outline=scores["mask"][0].any(0), height=height, colorbar="below")


def delta_vs_asm_figure(run: Run, nu: float, cmap: str, opacity: float, *, height: int = 260,
                        zmax: Optional[float] = None) -> Optional[go.Figure]:
    """|δ| over x₀ with the outline of B_ASM at ν: how much of the perturbation sits where the ASM says it
    matters (what IS-ASM measures)."""
    scores = scores_at(run, nu)
    if scores is None:
        return None
    from interpret.plots import overlay_figure

    return overlay_figure(run.result.original[0], _views(run)["magnitude"], unit="|δ|", cmap=cmap, opacity=opacity,
                          zmin=0, zmax=zmax, hide_zero=True, outline=scores["mask"][0].any(0), height=height,
                          colorbar="below", colorbar_title="|δ| summed over channels ([0, 1] scale)")


def cam_figure(run: Run, opacity: float, cmap: str, *, height: int = 420) -> Optional[go.Figure]:
    from interpret.render import QUARTET_KEYS

    if run.scores is None or not set(QUARTET_KEYS) <= set(run.scores["cams"]):
        return None
    from interpret.cam import CAM_UNITS
    from interpret.plots import cam_quartet_figure
    from ui.analysis import CAM_METHOD

    names, target = run.class_names, run.explained_target
    assert target is not None
    return cam_quartet_figure(run.result.original[0], run.result.adversarial[0],
                              {k: v[0] for k, v in run.scores["cams"].items()}, label_name=names[run.report.label],
                              target_name=names[target], unit=CAM_UNITS[CAM_METHOD], cmap=cmap, opacity=opacity,
                              height=height)


def top5_figure(run: Run, *, height: int = 260) -> go.Figure:
    from interpret.plots import top5_figure as build

    r = run.report
    target = r.target if r.target is not None else r.pred_after
    return build(r.top5_before, r.top5_after, run.class_names, label=r.label, target=target, colours=CLASS_COLOURS,
                 height=height)


def loss_figure(run: Run, *, height: int = 260) -> go.Figure:
    from interpret.plots import loss_figure as build

    return build(run.result.loss_history[:, 0], step_starts=run.trace.step_starts, colour=attack_colour(run.attack),
                 height=height, queries=run.trace.queries or None)
