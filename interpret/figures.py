"""Figure builders shared by the Streamlit app and the CLI: RGB arrays and PNG files, and plotly figures.

Inputs are one sample at a time: an image (C, H, W) or (H, W) in [0, 1], and maps (H, W), as tensors or arrays.
PNGs are drawn with numpy + PIL and matplotlib's colormaps (no kaleido); plotly figures use colour scales sampled
from the same colormaps, so both show the same colours. Small images (MNIST) are enlarged by pixel repetition and
drawn without smoothing, so every pixel stays a crisp square.
"""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw, ImageFont
from plotly.subplots import make_subplots
from torch import Tensor

ArrayLike = Union[Tensor, np.ndarray]

HEAT_CMAP = "inferno"  # magnitudes: |δ|, group norms, ASM
CAM_CMAP = "jet"  # class activation maps, as in the CAM papers
SIGNED_CMAP = "RdBu_r"  # signed δ: blue negative, white zero, red positive
SMALL_SIDE = 64  # images up to this side are drawn pixel-exact (plotly z data, nearest-neighbour PNGs)
PNG_MIN_SIDE = 280  # PNGs of smaller images are enlarged by an integer factor to at least this side
QUARTET_KEYS: tuple[str, ...] = ("x0_t0", "x0_t", "adv_t0", "adv_t")


# ----------------------------------------------------------------------------------------------- arrays

def to_numpy(x: ArrayLike) -> np.ndarray:
    """A float64 numpy copy of a tensor or array (detached, on the CPU)."""
    if isinstance(x, Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def image_hwc(image: ArrayLike) -> np.ndarray:
    """An image (C, H, W) with C ∈ {1, 3}, or (H, W), in [0, 1] → float (H, W, 3) in [0, 1] (grey repeated)."""
    arr = to_numpy(image)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] not in (1, 3):
        raise ValueError(f"Need an image (C, H, W) with 1 or 3 channels, or (H, W); got shape {arr.shape}.")
    rgb = np.repeat(arr, 3, 0) if arr.shape[0] == 1 else arr
    return rgb.transpose(1, 2, 0).clip(0, 1)


def value_range(values: ArrayLike, vmin: Optional[float] = None, vmax: Optional[float] = None) -> tuple[float, float]:
    """(vmin, vmax), each defaulting to the map's min / max over finite values; never an empty range."""
    arr = to_numpy(values)
    finite = arr[np.isfinite(arr)]
    low = float(vmin) if vmin is not None else (float(finite.min()) if finite.size else 0.0)
    high = float(vmax) if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    return (low, high) if high > low else (low, low + 1e-12)


def colormap_rgb(values: ArrayLike, cmap: str = HEAT_CMAP, vmin: Optional[float] = None,
                 vmax: Optional[float] = None) -> np.ndarray:
    """A map (H, W) coloured by a matplotlib colormap: float (H, W, 3) in [0, 1]."""
    import matplotlib

    low, high = value_range(values, vmin, vmax)
    scaled = np.nan_to_num((to_numpy(values) - low) / (high - low), nan=0.0).clip(0, 1)
    return matplotlib.colormaps[cmap](scaled)[..., :3]


def overlay_rgb(image: ArrayLike, heat: ArrayLike, *, alpha: float = 0.5, cmap: str = CAM_CMAP,
                vmin: Optional[float] = None, vmax: Optional[float] = None, hide_zero: bool = False) -> np.ndarray:
    """A heat map blended over an image: uint8 (H, W, 3) = (1 − a)·image + a·colour.

    ``hide_zero`` leaves the image untouched where the map is 0 (sparse maps such as B∘δ). Unlike
    pytorch-grad-cam's ``show_cam_on_image`` it takes any value range (scaled by vmin/vmax) and RGB throughout.
    """
    base = image_hwc(image)
    values = to_numpy(heat)
    if values.shape != base.shape[:2]:
        raise ValueError(f"Heat map of shape {values.shape} does not match image of size {base.shape[:2]}.")
    weight = np.full(values.shape, float(alpha))
    if hide_zero:
        weight[~(values != 0)] = 0.0
    colour = colormap_rgb(values, cmap, vmin, vmax)
    return to_uint8((1 - weight[..., None]) * base + weight[..., None] * colour)


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    return (np.asarray(rgb, dtype=np.float64).clip(0, 1) * 255 + 0.5).astype(np.uint8)


def enlarge(rgb: np.ndarray, min_side: int = PNG_MIN_SIDE) -> np.ndarray:
    """Nearest-neighbour enlargement by the smallest integer factor reaching ``min_side`` (crisp pixels)."""
    factor = max(1, math.ceil(min_side / min(rgb.shape[:2])))
    return rgb.repeat(factor, 0).repeat(factor, 1) if factor > 1 else rgb


def with_colorbar(rgb: np.ndarray, *, cmap: str, vmin: float, vmax: float, unit: str = "") -> np.ndarray:
    """Append a vertical colour bar (labelled with vmax, vmin and the unit) to the right of an uint8 image."""
    height = rgb.shape[0]
    ramp = np.linspace(1, 0, height)[:, None].repeat(14, 1)
    bar = to_uint8(colormap_rgb(ramp, cmap, 0.0, 1.0))
    panel = Image.new("RGB", (rgb.shape[1] + 96, height), "white")
    panel.paste(Image.fromarray(rgb), (0, 0))
    panel.paste(Image.fromarray(bar), (rgb.shape[1] + 6, 0))
    draw, font = ImageDraw.Draw(panel), _label_font()
    x = rgb.shape[1] + 24
    draw.text((x, 0), f"{vmax:.3g}", fill="black", font=font)
    draw.text((x, height - 12), f"{vmin:.3g}", fill="black", font=font)
    for k, line in enumerate(_wrap(unit, 11)[:4]):
        draw.text((x, height // 2 - 12 + 12 * k), line, fill="black", font=font)
    return np.asarray(panel)


def _label_font() -> ImageFont.ImageFont:
    """DejaVu Sans from matplotlib (it has δ, ‖, ∘, ×), else PIL's default font."""
    try:
        import matplotlib

        return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), 11)
    except (ImportError, OSError):
        return ImageFont.load_default()


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ([line] if line else [])


def save_png(path: Union[str, Path], rgb: np.ndarray) -> Path:
    """Write an uint8 (H, W, 3) array as a PNG; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(rgb)).save(path)
    return path


def heat_png(path: Union[str, Path], values: ArrayLike, *, cmap: str = HEAT_CMAP, unit: str = "",
             vmin: Optional[float] = None, vmax: Optional[float] = None) -> Path:
    """A map (H, W) alone, coloured, enlarged if small, with a colour bar."""
    low, high = value_range(values, vmin, vmax)
    rgb = enlarge(to_uint8(colormap_rgb(values, cmap, low, high)))
    return save_png(path, with_colorbar(rgb, cmap=cmap, vmin=low, vmax=high, unit=unit))


def overlay_png(path: Union[str, Path], image: ArrayLike, heat: ArrayLike, *, cmap: str = CAM_CMAP,
                alpha: float = 0.5, unit: str = "", vmin: Optional[float] = None, vmax: Optional[float] = None,
                hide_zero: bool = False) -> Path:
    """A map over an image (``overlay_rgb``), enlarged if small, with a colour bar."""
    low, high = value_range(heat, vmin, vmax)
    rgb = enlarge(overlay_rgb(image, heat, alpha=alpha, cmap=cmap, vmin=low, vmax=high, hide_zero=hide_zero))
    return save_png(path, with_colorbar(rgb, cmap=cmap, vmin=low, vmax=high, unit=unit))


# ----------------------------------------------------------------------------------------------- plotly

def plotly_colorscale(cmap: str, samples: int = 17) -> list[list]:
    """A matplotlib colormap as a plotly colour scale, so figures and PNGs share colours."""
    import matplotlib

    colours = matplotlib.colormaps[cmap](np.linspace(0, 1, samples))[:, :3]
    return [[float(p), "rgb({},{},{})".format(*to_uint8(c))] for p, c in zip(np.linspace(0, 1, samples), colours)]


def image_trace(image: ArrayLike) -> go.Image:
    """The image as a plotly trace: pixel data without smoothing when small, an embedded PNG when large."""
    rgb = to_uint8(image_hwc(image))
    if max(rgb.shape[:2]) <= SMALL_SIDE:
        return go.Image(z=rgb, zsmooth=False, hoverinfo="skip")
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return go.Image(source="data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode(), hoverinfo="skip")


def heat_trace(values: ArrayLike, *, cmap: str, opacity: float = 1.0, unit: str = "", zmin: Optional[float] = None,
               zmax: Optional[float] = None, hide_zero: bool = False,
               coloraxis: Optional[str] = None) -> go.Heatmap:
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
                      colorbar=dict(title=dict(text=unit, side="right"), thickness=14))


def _pixel_axes(fig: go.Figure, rows: int, cols: int) -> None:
    for k in range(1, rows * cols + 1):
        suffix = "" if k == 1 else str(k)
        fig.layout[f"xaxis{suffix}"].update(visible=False, constrain="domain")
        fig.layout[f"yaxis{suffix}"].update(visible=False, autorange="reversed", scaleanchor=f"x{suffix}",
                                            constrain="domain")


def overlay_figure(image: ArrayLike, heat: ArrayLike, *, title: str = "", unit: str = "", cmap: str = CAM_CMAP,
                   opacity: float = 0.5, zmin: Optional[float] = None, zmax: Optional[float] = None,
                   hide_zero: bool = False) -> go.Figure:
    """One map over its image with adjustable opacity and a colour bar titled with the map's unit."""
    fig = go.Figure([image_trace(image), heat_trace(heat, cmap=cmap, opacity=opacity, unit=unit, zmin=zmin,
                                                    zmax=zmax, hide_zero=hide_zero)])
    fig.update_layout(title=title, margin=dict(l=10, r=10, t=40 if title else 10, b=10))
    _pixel_axes(fig, 1, 1)
    return fig


def perturbation_figure(delta: ArrayLike, *, title: str = "Signed perturbation δ") -> go.Figure:
    """Signed δ (C, H, W) per channel on one symmetric colour scale (white = unchanged)."""
    d = to_numpy(delta)
    if d.ndim == 2:
        d = d[None]
    names = ["δ"] if d.shape[0] == 1 else [f"δ {c}" for c in ("R", "G", "B")[: d.shape[0]]]
    limit = float(np.abs(d).max()) or 1e-12
    fig = make_subplots(rows=1, cols=d.shape[0], subplot_titles=names, horizontal_spacing=0.02)
    for c in range(d.shape[0]):
        fig.add_trace(heat_trace(d[c], cmap=SIGNED_CMAP, unit="Δ intensity", coloraxis="coloraxis"), 1, c + 1)
    fig.update_layout(title=title, coloraxis=dict(colorscale=plotly_colorscale(SIGNED_CMAP), cmin=-limit, cmax=limit,
                                                  colorbar=dict(title=dict(text="Δ intensity ([0,1] scale)"))),
                      margin=dict(l=10, r=10, t=60, b=10))
    _pixel_axes(fig, 1, d.shape[0])
    return fig


def group_grid_figure(image: ArrayLike, norms: ArrayLike, painted: ArrayLike, *, size: int, stride: int,
                      opacity: float = 0.7) -> go.Figure:
    """Group ℓ2 norms ‖δ_G‖2 (painted on the pixels each group covers) over the image; untouched groups clear.

    ``norms`` is the (P, Q) grid (for the count in the title), ``painted`` its (H, W) cover.
    """
    grid = to_numpy(norms)
    touched = int((grid > 0).sum())
    title = f"Group sparsity: {touched} of {grid.size} groups touched ({size}×{size}, stride {stride})"
    return overlay_figure(image, painted, title=title, unit="‖δ_G‖₂", cmap=HEAT_CMAP, opacity=opacity, zmin=0,
                          hide_zero=True)


def cam_quartet_figure(original: ArrayLike, adversarial: ArrayLike, maps: Mapping[str, ArrayLike], *,
                       label_name: str, target_name: str, unit: str = "CAM", opacity: float = 0.5,
                       shared_scale: bool = True) -> go.Figure:
    """Fig. 4's 2×2 grid: C(x0, t0), C(x0, t) on the original; C(x_adv, t0), C(x_adv, t) on the adversarial.

    With ``shared_scale`` all four use one colour range, so suppression of t0 and promotion of t show as a change
    in colour; otherwise each map is scaled to its own range and the colour bar shows the first map's.
    """
    titles = [f"C(x0, t0={label_name})", f"C(x0, t={target_name})",
              f"C(x_adv, t0={label_name})", f"C(x_adv, t={target_name})"]
    fig = make_subplots(rows=2, cols=2, subplot_titles=titles, horizontal_spacing=0.03, vertical_spacing=0.08)
    top = max(float(to_numpy(maps[k]).max()) for k in QUARTET_KEYS) or 1e-12
    for k, key in enumerate(QUARTET_KEYS):
        image = original if key.startswith("x0") else adversarial
        fig.add_trace(image_trace(image), k // 2 + 1, k % 2 + 1)
        if shared_scale:
            heat = heat_trace(maps[key], cmap=CAM_CMAP, opacity=opacity, unit=unit, coloraxis="coloraxis")
        else:
            heat = heat_trace(maps[key], cmap=CAM_CMAP, opacity=opacity, unit=unit)
            heat.update(showscale=k == 0)
        fig.add_trace(heat, k // 2 + 1, k % 2 + 1)
    if shared_scale:
        fig.update_layout(coloraxis=dict(colorscale=plotly_colorscale(CAM_CMAP), cmin=0, cmax=top,
                                         colorbar=dict(title=dict(text=unit))))
    fig.update_layout(margin=dict(l=10, r=10, t=40, b=10))
    _pixel_axes(fig, 2, 2)
    return fig


def is_curve_figure(curves: Mapping[str, Mapping[float, float]], *, title: str = "Interpretability score vs ν"
                    ) -> go.Figure:
    """IS(ν) per attack (Fig. 3a): {attack name: {ν: IS}}, ν the percentile of the ASM threshold."""
    fig = go.Figure()
    for name, curve in curves.items():
        nus = sorted(curve)
        fig.add_trace(go.Scatter(x=nus, y=[curve[nu] for nu in nus], mode="lines+markers", name=name))
    fig.update_layout(title=title, xaxis_title="ν (percentile of ASM scores)", yaxis_title="IS = ‖B∘δ‖₂ / ‖δ‖₂",
                      yaxis_range=[0, 1.02], margin=dict(l=10, r=10, t=40, b=10))
    return fig


def quartet_pngs(out_dir: Union[str, Path], original: ArrayLike, adversarial: ArrayLike,
                 maps: Mapping[str, ArrayLike], *, unit: str = "CAM", alpha: float = 0.5,
                 names: Sequence[str] = ("cam_x0_t0.png", "cam_x0_t.png", "cam_adv_t0.png", "cam_adv_t.png")
                 ) -> list[Path]:
    """Write the four CAM overlays of Fig. 4 on one shared colour range."""
    top = max(float(to_numpy(maps[k]).max()) for k in QUARTET_KEYS) or 1e-12
    return [overlay_png(Path(out_dir) / name, original if key.startswith("x0") else adversarial, maps[key],
                        cmap=CAM_CMAP, alpha=alpha, unit=unit, vmin=0.0, vmax=top)
            for key, name in zip(QUARTET_KEYS, names)]
