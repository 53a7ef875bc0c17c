"""Plotly figures of one result, a comparison, a sweep and the Teach page, built once with the display options given.

Every builder takes the knobs a caller may want (colour map, opacity, value range, height, colour-bar placement,
a frame around image panels, an outline) so no caller patches a figure after it is built. Images are (C, H, W) or
(H, W) in [0, 1] and maps (H, W), as tensors or arrays; colour scales sample the same matplotlib colormaps as the
PNGs of ``interpret.render``, so both show the same colours. Small images are drawn as pixel data without
smoothing (crisp squares), large ones as an embedded PNG.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Literal, Optional

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interpret.render import (
    CAM_CMAP,
    HEAT_CMAP,
    QUARTET_KEYS,
    SIGNED_CMAP,
    SMALL_SIDE,
    ArrayLike,
    colormap_samples,
    png_bytes,
    to_numpy,
    to_rgb,
    value_range,
)

ColorBar = Literal["right", "below", "none"]
OUTLINE_COLOUR = "#00e5ff"
FRAME_COLOUR = "#c8c8c8"


def plotly_colorscale(cmap: str, samples: int = 17) -> list[list]:
    """A matplotlib colormap as a plotly colour scale, so figures and PNGs share colours."""
    return [[float(p), "rgb({},{},{})".format(*c)] for p, c in zip(np.linspace(0, 1, samples),
                                                                  colormap_samples(cmap, samples))]


def image_trace(image: ArrayLike) -> go.Image:
    """The image as a plotly trace: pixel data without smoothing when small, an embedded PNG when large."""
    rgb = to_rgb(image)
    if max(rgb.shape[:2]) <= SMALL_SIDE:
        return go.Image(z=rgb, zsmooth=False, hoverinfo="skip")
    return go.Image(source="data:image/png;base64," + base64.b64encode(png_bytes(rgb)).decode(), hoverinfo="skip")


def colorbar_style(placement: ColorBar, title: str) -> dict:
    """A colour bar on the right, or horizontal under the image so a narrow column keeps its width for pixels."""
    if placement == "below":
        return dict(orientation="h", x=0.5, xanchor="center", y=-0.02, yanchor="top", thickness=10, len=0.9,
                    title=dict(text=title, side="bottom", font=dict(size=11)), tickfont=dict(size=10))
    return dict(title=dict(text=title, side="right"), thickness=14)


def heat_trace(values: ArrayLike, *, cmap: str, opacity: float = 1.0, unit: str = "", zmin: Optional[float] = None,
               zmax: Optional[float] = None, hide_zero: bool = False, coloraxis: Optional[str] = None,
               colorbar: ColorBar = "right", colorbar_title: Optional[str] = None) -> go.Heatmap:
    """A map (H, W) as a heat map aligned with an image trace's pixels (no smoothing); zeros transparent if asked."""
    z = to_numpy(values)
    if hide_zero:
        z = np.where(z != 0, z, np.nan)  # plotly leaves NaN cells transparent
    hover = f"x %{{x}}, y %{{y}}<br>%{{z:.4g}} {unit}<extra></extra>"
    common = dict(z=z, opacity=opacity, zsmooth=False, hovertemplate=hover)
    if coloraxis is not None:
        return go.Heatmap(**common, coloraxis=coloraxis)
    low, high = value_range(values, zmin, zmax)
    return go.Heatmap(**common, colorscale=plotly_colorscale(cmap), zmin=low, zmax=high,
                      showscale=colorbar != "none",
                      colorbar=colorbar_style(colorbar, unit if colorbar_title is None else colorbar_title))


def outline_trace(region: ArrayLike, name: str = "B_ASM") -> Optional[go.Contour]:
    """The outline of a Boolean (H, W) region, in cyan; None for an empty region."""
    z = to_numpy(region)
    if not z.any():
        return None
    return go.Contour(z=z, contours=dict(start=0.5, end=0.5, coloring="none"), showscale=False,
                      line=dict(color=OUTLINE_COLOUR, width=1.5), hoverinfo="skip", name=name)


def _pixel_axes(fig: go.Figure, panels: int) -> None:
    for k in range(1, panels + 1):
        suffix = "" if k == 1 else str(k)
        fig.layout[f"xaxis{suffix}"].update(visible=False, constrain="domain")
        fig.layout[f"yaxis{suffix}"].update(visible=False, autorange="reversed", scaleanchor=f"x{suffix}",
                                            constrain="domain")


def _frame(fig: go.Figure, height: int, width: int, panels: int) -> None:
    """A thin frame around each image panel (a signed δ is mostly white, like the page around it)."""
    for k in range(1, panels + 1):
        suffix = "" if k == 1 else str(k)
        fig.add_shape(type="rect", x0=-0.5, x1=width - 0.5, y0=-0.5, y1=height - 0.5, xref=f"x{suffix}",
                      yref=f"y{suffix}", line=dict(color=FRAME_COLOUR, width=1))


def _layout(fig: go.Figure, *, title: str, height: Optional[int], colorbar: ColorBar,
            top: Optional[int] = None) -> go.Figure:
    """Title, height, a compact font and margins: room above for a title (or ``top`` px, e.g. for subplot titles),
    below for a horizontal colour bar."""
    fig.update_layout(title=title or None, height=height, font=dict(size=12),
                      margin=dict(l=8, r=8, t=top if top is not None else 40 if title else 8,
                                  b=62 if colorbar == "below" else 8))
    return fig


# ------------------------------------------------------------------------------------------------ image panels

def overlay_figure(image: ArrayLike, heat: ArrayLike, *, title: str = "", unit: str = "", cmap: str = CAM_CMAP,
                   opacity: float = 0.5, zmin: Optional[float] = None, zmax: Optional[float] = None,
                   hide_zero: bool = False, outline: Optional[ArrayLike] = None, height: Optional[int] = None,
                   colorbar: ColorBar = "right", colorbar_title: Optional[str] = None,
                   frame: bool = False) -> go.Figure:
    """One map over its image, with adjustable opacity, a colour bar titled with the map's unit (or
    ``colorbar_title``) and, if given, the cyan outline of a Boolean region (e.g. B_ASM)."""
    traces = [image_trace(image), heat_trace(heat, cmap=cmap, opacity=opacity, unit=unit, zmin=zmin, zmax=zmax,
                                             hide_zero=hide_zero, colorbar=colorbar, colorbar_title=colorbar_title)]
    line = outline_trace(outline) if outline is not None else None
    fig = go.Figure(traces + ([line] if line is not None else []))
    _pixel_axes(fig, 1)
    if frame:
        h, w = to_numpy(heat).shape
        _frame(fig, h, w, 1)
    return _layout(fig, title=title, height=height, colorbar=colorbar)


DELTA_VIEWS: tuple[str, ...] = ("magnitude", "R", "G", "B")  # a colour δ's views; a grayscale δ is always signed
MAGNITUDE_UNIT = "Σ|δ| over R, G, B ([0, 1] scale)"
SIGNED_UNIT = "Δ intensity ([0, 1] scale)"


def delta_view(delta: ArrayLike, channel: Optional[str] = None) -> tuple[np.ndarray, bool, str]:
    """What a δ panel draws: (map (H, W), signed?, name). Grayscale: δ itself, signed. Colour: one channel signed
    ("R", "G", "B"), or by default the per-pixel magnitude Σ_c |δ_c| (``interpret.perturbation.magnitude``, the
    map of the CLI's heatmap.png), so a small or sparse colour δ shows on one readable map."""
    d = to_numpy(delta)
    if d.ndim == 2:
        d = d[None]
    if d.shape[0] == 1:
        return d[0], True, "δ"
    if channel in ("R", "G", "B") and d.shape[0] == 3:
        return d["RGB".index(channel)], True, f"δ {channel}"
    return np.abs(d).sum(0), False, "|δ|"


def perturbation_figure(delta: ArrayLike, *, title: str = "Perturbation δ", channel: Optional[str] = None,
                        limit: Optional[float] = None, cmap: str = HEAT_CMAP, block: int = 1,
                        height: Optional[int] = None, colorbar: ColorBar = "right", frame: bool = False) -> go.Figure:
    """δ (C, H, W) as one readable map (``delta_view``): a signed view on a symmetric scale ±``limit`` (white =
    unchanged, blue darker, red brighter), the magnitude of a colour δ on 0…``limit`` in ``cmap``. ``limit``
    defaults to this panel's own max; pass one to share a range across panels. ``block`` > 1 shows each
    ``block``×``block`` tile's peak (``peak_pooled``), so single changed pixels of a large image stay visible in a
    small panel."""
    values, signed, _ = delta_view(delta, channel)
    bound = float(limit) if limit else (float(np.abs(values).max()) or 1e-12)
    unit = SIGNED_UNIT if signed else MAGNITUDE_UNIT
    if block > 1:
        values = peak_pooled(values, block)
        unit = f"{'Δ intensity' if signed else 'Σ|δ| over RGB'}, peak of {block}×{block} px"  # fits a narrow panel
    fig = go.Figure(heat_trace(values, cmap=SIGNED_CMAP if signed else cmap, unit="Δ" if signed else "|δ|",
                               zmin=-bound if signed else 0.0, zmax=bound, colorbar=colorbar, colorbar_title=unit))
    _pixel_axes(fig, 1)
    if frame:
        _frame(fig, values.shape[-2], values.shape[-1], 1)
    return _layout(fig, title=title, height=height, colorbar=colorbar)


def peak_pooled(values: ArrayLike, block: int) -> np.ndarray:
    """A map (H, W) with every ``block``×``block`` tile set to its value of largest magnitude, sign kept: the
    largest change in each tile, where a mean would dilute a sparse δ. ``block`` 1 returns it as is."""
    z = to_numpy(values).astype(np.float64)
    if block <= 1:
        return z
    h, w = z.shape
    padded = np.pad(z, ((0, -h % block), (0, -w % block)))
    th, tw = padded.shape[0] // block, padded.shape[1] // block
    tiles = padded.reshape(th, block, tw, block).transpose(0, 2, 1, 3).reshape(th, tw, block * block)
    peak = np.take_along_axis(tiles, np.abs(tiles).argmax(-1)[..., None], -1)[..., 0]
    return np.repeat(np.repeat(peak, block, 0), block, 1)[:h, :w]


def pooled(values: ArrayLike, block: int) -> np.ndarray:
    """A map (H, W) averaged over ``block``×``block`` tiles and painted back at full size (edge tiles may be
    smaller): a display of a per-pixel map that stays readable on a large image. ``block`` 1 returns it as is."""
    z = to_numpy(values).astype(np.float64)
    if block <= 1:
        return z
    h, w = z.shape
    ph, pw = -h % block, -w % block
    padded = np.pad(z, ((0, ph), (0, pw)), constant_values=np.nan)
    tiles = np.nanmean(padded.reshape((h + ph) // block, block, (w + pw) // block, block), axis=(1, 3))
    return np.repeat(np.repeat(tiles, block, 0), block, 1)[:h, :w]


def display_block(side: int, cells: int = 28) -> int:
    """The tile side that shows a map of a ``side``-pixel image as about ``cells`` cells across; 1 for small
    images (MNIST stays pixel-exact)."""
    return 1 if side <= SMALL_SIDE else max(1, side // cells)


def group_grid_figure(image: ArrayLike, norms: ArrayLike, painted: ArrayLike, *, size: int, stride: int,
                      cmap: str = HEAT_CMAP, opacity: float = 0.7, zmax: Optional[float] = None,
                      title: Optional[str] = None, height: Optional[int] = None, colorbar: ColorBar = "right",
                      frame: bool = False) -> go.Figure:
    """Group ℓ2 norms ‖δ_G‖2 painted on the pixels each group covers, over the image; untouched groups clear.

    ``norms`` is the (P, Q) grid, ``painted`` its (H, W) cover. The title defaults to the count of touched groups.
    """
    grid = to_numpy(norms)
    if title is None:
        touched = int((grid > 0).sum())
        title = f"Group sparsity: {touched} of {grid.size} groups touched ({size}×{size}, stride {stride})"
    return overlay_figure(image, painted, title=title, unit="‖δ_G‖₂", cmap=cmap, opacity=opacity, zmin=0, zmax=zmax,
                          hide_zero=True, height=height, colorbar=colorbar, colorbar_title="‖δ_G‖₂ per group",
                          frame=frame)


def cam_quartet_figure(original: ArrayLike, adversarial: ArrayLike, maps: Mapping[str, ArrayLike], *,
                       label_name: str, target_name: str, unit: str = "CAM", cmap: str = CAM_CMAP,
                       opacity: float = 0.5, shared_scale: bool = True, height: Optional[int] = None) -> go.Figure:
    """Fig. 4's 2×2 grid: C(x0, t0), C(x0, t) on the original; C(x_adv, t0), C(x_adv, t) on the adversarial.

    With ``shared_scale`` all four use one colour range, so suppression of t0 and promotion of t show as a change
    in colour; otherwise each map is scaled to its own range and the colour bar shows the first map's.
    """
    titles = [f"C(x0, t0={label_name})", f"C(x0, t={target_name})",
              f"C(x_adv, t0={label_name})", f"C(x_adv, t={target_name})"]
    fig = make_subplots(rows=2, cols=2, subplot_titles=titles, horizontal_spacing=0.03, vertical_spacing=0.08)
    top = max(float(to_numpy(maps[k]).max()) for k in QUARTET_KEYS) or 1e-12
    for k, key in enumerate(QUARTET_KEYS):
        fig.add_trace(image_trace(original if key.startswith("x0") else adversarial), k // 2 + 1, k % 2 + 1)
        heat = heat_trace(maps[key], cmap=cmap, opacity=opacity, unit=unit,
                          coloraxis="coloraxis" if shared_scale else None)
        if not shared_scale:
            heat.update(showscale=k == 0)
        fig.add_trace(heat, k // 2 + 1, k % 2 + 1)
    if shared_scale:
        fig.update_layout(coloraxis=dict(colorscale=plotly_colorscale(cmap), cmin=0, cmax=top,
                                         colorbar=dict(title=dict(text=unit, side="right"), thickness=12)))
    fig.update_annotations(font_size=12)
    _pixel_axes(fig, 4)
    return _layout(fig, title="", height=height, colorbar="right", top=28)


# ------------------------------------------------------------------------------------------------ charts

def is_curve_figure(curves: Mapping[str, Mapping[float, float]], *, title: str = "Interpretability score vs ν",
                    colours: Optional[Mapping[str, str]] = None, marker: Optional[float] = None,
                    height: Optional[int] = None, legend_below: bool = False) -> go.Figure:
    """IS(ν) per attack (Fig. 3a): {name: {ν: IS}}, ν the percentile of the ASM threshold; ``marker`` draws a
    dotted line at one ν."""
    fig = go.Figure()
    for name, curve in curves.items():
        nus = sorted(curve)
        fig.add_trace(go.Scatter(x=nus, y=[curve[nu] for nu in nus], mode="lines+markers", name=name,
                                 line=dict(color=(colours or {}).get(name))))
    if marker is not None:
        fig.add_vline(x=marker, line=dict(color="#999", dash="dot"))
    fig.update_layout(xaxis_title="ν (percentile of ASM scores)", yaxis_title="IS = ‖B∘δ‖₂ / ‖δ‖₂",
                      yaxis_range=[0, 1.02])
    if legend_below:
        fig.update_layout(legend=dict(orientation="h", y=-0.25))
    return _layout(fig, title=title, height=height, colorbar="none")


def top5_figure(before: Sequence[tuple[int, float]], after: Sequence[tuple[int, float]], names: Sequence[str], *,
                label: int, target: int, colours: tuple[str, str, str], height: Optional[int] = 260) -> go.Figure:
    """Top-5 probabilities before and after, side by side; ``colours`` = (true class, target, other)."""
    true_colour, target_colour, other_colour = colours
    fig = make_subplots(rows=1, cols=2, subplot_titles=("before (x₀)", "after (x_adv)"), horizontal_spacing=0.22)
    for col, top in ((1, before), (2, after)):
        classes = [c for c, _ in top][::-1]
        probs = [p for _, p in top][::-1]
        bar_colours = [true_colour if c == label else target_colour if c == target else other_colour for c in classes]
        fig.add_trace(go.Bar(x=probs, y=[_short(names[c]) for c in classes], orientation="h", marker_color=bar_colours,
                             text=[f"{p:.0%}" if p >= 0.005 else "<1%" for p in probs], textposition="auto",
                             hovertemplate="%{y}: %{x:.2%}<extra></extra>"), 1, col)
        fig.update_xaxes(range=[0, 1], tickformat=".0%", title_text="probability", row=1, col=col,
                         tickvals=[0, 0.5, 1])
        fig.update_yaxes(type="category", row=1, col=col)
    fig.update_annotations(font_size=12)
    fig.update_layout(showlegend=False)
    return _layout(fig, title="", height=height, colorbar="none", top=28)


def _short(name: str, n: int = 16) -> str:
    return name if len(name) <= n else name[: n - 1] + "…"


def loss_figure(history: ArrayLike, *, step_starts: Sequence[int] = (), colour: str = "#444",
                height: Optional[int] = 260, queries: Optional[Sequence[int]] = None) -> go.Figure:
    """The objective per iteration, with a dotted line where each new value of c began; log scale when positive.

    ``queries`` (a black-box attack's count after each iteration) puts the queries spent on the x axis instead.
    """
    y = to_numpy(history).reshape(-1)
    by_queries = queries is not None and len(queries) == len(y)
    x = np.asarray(queries) if by_queries else np.arange(1, len(y) + 1)
    unit = "queries" if by_queries else "iteration"
    fig = go.Figure(go.Scatter(x=x, y=y, mode="lines", line=dict(color=colour, width=1.5),
                               hovertemplate=unit + " %{x}: %{y:.4g}<extra></extra>"))
    for start in step_starts[1:]:
        fig.add_vline(x=(x[start - 1] + x[start]) / 2 if by_queries and 0 < start < len(x) else start + 0.5,
                      line=dict(color="#bbb", width=1, dash="dot"))
    finite = y[np.isfinite(y)]  # a black-box image that stopped early has no value for later iterations
    positive = bool(finite.size) and bool((finite > 0).all())
    fig.update_yaxes(type="log" if positive else "linear", title_text="objective (log)" if positive else "objective",
                     dtick="D2" if positive else None, tickformat="~g")
    fig.update_xaxes(title_text=f"{unit} (dotted: new c)")
    fig.update_layout(showlegend=False)
    return _layout(fig, title="", height=height, colorbar="none")


def sweep_figure(labels: Sequence[str], series: Mapping[str, Sequence[Mapping[str, float] | None]],
                 panels: Sequence[tuple[str, str]], *, symbol: str, styles: Mapping[str, dict],
                 height: Optional[int] = 580) -> go.Figure:
    """Metrics against a swept value (Fig. 2 of EAD): one panel per (metric, title), one line per series.

    ``labels`` are the swept values as text (a categorical axis: log grids stay evenly spaced); ``series`` maps a
    name to one row of metrics per value (None where that run is missing); ``styles`` its line style.
    """
    rows = (len(panels) + 2) // 3
    fig = make_subplots(rows=rows, cols=3, subplot_titles=[t for _, t in panels], horizontal_spacing=0.08,
                        vertical_spacing=0.16)
    for name, values in series.items():
        for k, (metric, _) in enumerate(panels):
            fig.add_trace(go.Scatter(
                x=list(labels), y=[None if row is None else row[metric] for row in values], name=name,
                mode="lines+markers", line=styles.get(name), legendgroup=name, showlegend=k == 0,
                hovertemplate=f"{symbol} = %{{x}}<br>%{{y:.4g}}<extra>{name}</extra>"), k // 3 + 1, k % 3 + 1)
    fig.update_xaxes(type="category")
    fig.update_xaxes(title_text=symbol, row=rows)
    fig.update_yaxes(rangemode="tozero")
    fig.update_layout(legend=dict(orientation="h", y=-0.14, x=0.5, xanchor="center"))
    return _layout(fig, title="", height=height, colorbar="none", top=30)
