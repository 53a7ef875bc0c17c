"""A stored run's panels: ``interpret.plots`` builders called with the run's data and the display knobs.

Thin calls only: every figure is built once, with its options (colour map, opacity, shared value range, height,
colour bar under narrow panels, a frame), by the builder in ``interpret.plots``.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Optional, TypeVar

from ui.analysis import scores_at
from ui.colours import CLASS_COLOURS, attack_colour
from ui.state import Run

if TYPE_CHECKING:
    import plotly.graph_objects as go
    from torch import Tensor

    from interpret.render import ArrayLike

PANEL_HEIGHT = 300
MEMO_SIZE = 32  # figures kept: a page's panels under a few knob settings (an ImageNet CAM quartet is a few MB)

_memo: OrderedDict[tuple, Any] = OrderedDict()
_memo_lock = threading.Lock()
F = TypeVar("F", bound=Callable[..., Any])


def per_run(build: F) -> F:
    """Build a run's figure once per display setting: a knob change rebuilds only the panels it touches, and going
    back to a setting is instant. Keyed by the run object (and its scores, which may arrive later) and the
    arguments; an entry holds those objects, so their ids cannot be reused while it is kept. Streamlit copies a
    figure (``to_dict``) before sending it, so a kept one is never changed."""

    @functools.wraps(build)
    def cached(run: Run, *args: Any, **kwargs: Any) -> Any:
        key = (id(run), id(run.result), id(run.scores), build.__name__, args, tuple(sorted(kwargs.items())))
        with _memo_lock:
            if key in _memo:
                _memo.move_to_end(key)
                return _memo[key][-1]
        figure = build(run, *args, **kwargs)
        with _memo_lock:
            _memo[key] = (run, run.result, run.scores, figure)
            while len(_memo) > MEMO_SIZE:
                _memo.popitem(last=False)
        return figure

    return cached  # type: ignore[return-value]


def _views(run: Run) -> dict:
    from advlens.explain import sample_views

    return sample_views(run.result, run.scores)


@per_run
def delta_figure(run: Run, channel: str, *, height: int = PANEL_HEIGHT, limit: Optional[float] = None,
                 cmap: Optional[str] = None) -> go.Figure:
    """δ as one map: signed for grayscale or one colour channel, |δ| summed over channels for colour by default."""
    from interpret.plots import display_block, perturbation_figure
    from interpret.render import HEAT_CMAP

    block = display_block(max(run.delta.shape[-2:]), cells=56)  # a panel is ~170 px wide: 4×4 px tiles on 224 px
    return perturbation_figure(run.delta[0], title="", channel=channel, limit=limit, cmap=cmap or HEAT_CMAP,
                               block=block, height=height, colorbar="below", frame=True)


def delta_limit(runs: Sequence[Run], channel: str) -> float:
    """One colour range for the δ panels of several runs (Compare's shared scale): the largest value the view of
    ``channel`` takes in any of them."""
    import numpy as np

    from interpret.plots import delta_view

    return max((float(np.abs(delta_view(r.delta[0], channel)[0]).max()) for r in runs), default=0.0)


@per_run
def groups_figure(run: Run, cmap: str, opacity: float, *, height: int = PANEL_HEIGHT,
                  zmax: Optional[float] = None) -> go.Figure:
    from interpret.plots import group_grid_figure

    views = _views(run)
    return group_grid_figure(run.result.original[0], views["group_norms"], views["groups"],
                             size=views["group_size"], stride=views["group_stride"], cmap=cmap, opacity=opacity,
                             zmax=zmax, title="", height=height, colorbar="below")


def asm_block(run: Run) -> int:
    """The tile side the ASM panels average over: 1 (pixel-exact) on MNIST, 8 px on a 224-px image."""
    from interpret.plots import display_block

    return display_block(max(run.result.original.shape[-2:]))


def _b_asm_outline(run: Run, mask: Tensor) -> ArrayLike:
    """B_ASM's outline; on a large image the outline of the tiles that are at least half inside B_ASM (a
    pixel-exact outline there is a field of speckles)."""
    from interpret.plots import pooled

    region = mask[0].any(0)
    block = asm_block(run)
    return region if block == 1 else pooled(region, block) >= 0.5


@per_run
def asm_figure(run: Run, nu: float, cmap: str, opacity: float, *, height: int = PANEL_HEIGHT) -> Optional[go.Figure]:
    """ASM(x₀, t) over x₀, outlined where it is above its ν-th percentile (B_ASM); on a large image both are
    shown per tile (``asm_block``)."""
    scores = scores_at(run, nu)
    if scores is None:
        return None
    from interpret.plots import overlay_figure, pooled

    block = asm_block(run)
    unit = "ASM(x₀, t)" if block == 1 else f"mean ASM(x₀, t) per {block}×{block} px"
    return overlay_figure(run.result.original[0], pooled(_views(run)["asm"], block), unit=unit, cmap=cmap,
                          opacity=opacity, zmin=0, hide_zero=True, outline=_b_asm_outline(run, scores["mask"]),
                          height=height, colorbar="below")


@per_run
def delta_vs_asm_figure(run: Run, nu: float, cmap: str, opacity: float, *, height: int = 260,
                        zmax: Optional[float] = None) -> Optional[go.Figure]:
    """|δ| over x₀ with the outline of B_ASM at ν: how much of the perturbation sits where the ASM says it
    matters (what IS-ASM measures)."""
    scores = scores_at(run, nu)
    if scores is None:
        return None
    from interpret.plots import overlay_figure

    return overlay_figure(run.result.original[0], _views(run)["magnitude"], unit="|δ|", cmap=cmap, opacity=opacity,
                          zmin=0, zmax=zmax, hide_zero=True, outline=_b_asm_outline(run, scores["mask"]),
                          height=height, colorbar="below", colorbar_title="|δ| summed over channels ([0, 1] scale)")


@per_run
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


@per_run
def top5_figure(run: Run, *, height: int = 260) -> go.Figure:
    from interpret.plots import top5_figure as build

    r = run.report
    target = r.target if r.target is not None else r.pred_after
    return build(r.top5_before, r.top5_after, run.class_names, label=r.label, target=target, colours=CLASS_COLOURS,
                 height=height)


@per_run
def loss_figure(run: Run, *, height: int = 260) -> go.Figure:
    from interpret.plots import loss_figure as build

    return build(run.result.loss_history[:, 0], step_starts=run.trace.step_starts, colour=attack_colour(run.attack),
                 height=height, queries=run.trace.queries or None)
