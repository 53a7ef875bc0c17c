"""Pixels out: images and maps as uint8 arrays and PNG files (numpy + PIL, matplotlib's colormaps; no plotly).

Tensors are images in torch's layout, (C, H, W) or (1, C, H, W) in [0, 1]; numpy arrays are in image layout,
(H, W) or (H, W, 3). Maps are (H, W). Small images (MNIST) are enlarged by pixel repetition, never smoothed, so
every pixel stays a crisp square. ``advlens attack --explain`` writes its PNGs through this module, and the app
draws its thumbnails and downloads with it; ``interpret.plots`` samples the same colormaps for its figures.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Optional, Union

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

ArrayLike = Union[Tensor, np.ndarray]

HEAT_CMAP = "inferno"  # magnitudes: |δ|, group norms, ASM
CAM_CMAP = "jet"  # class activation maps, as in the CAM papers
SIGNED_CMAP = "RdBu_r"  # signed δ: blue negative, white zero, red positive
SMALL_SIDE = 64  # images up to this side are drawn pixel-exact (plotly z data, nearest-neighbour PNGs)
PNG_MIN_SIDE = 280  # PNGs of smaller images are enlarged by an integer factor to at least this side
QUARTET_KEYS: tuple[str, ...] = ("x0_t0", "x0_t", "adv_t0", "adv_t")  # Fig. 4's C(x0,t0), C(x0,t), C(adv,t0), C(adv,t)
QUARTET_PNGS: tuple[str, ...] = ("cam_x0_t0.png", "cam_x0_t.png", "cam_adv_t0.png", "cam_adv_t.png")


def to_numpy(x: ArrayLike) -> np.ndarray:
    """A float64 numpy copy of a tensor or array (detached, on the CPU), same layout."""
    if isinstance(x, Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def image_hwc(image: ArrayLike) -> np.ndarray:
    """An image (C, H, W) with C ∈ {1, 3}, or (H, W), in [0, 1] → float (H, W, 3) in [0, 1] (grey repeated)."""
    arr = to_numpy(image)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] not in (1, 3):
        raise ValueError(f"Need an image (C, H, W) with 1 or 3 channels, or (H, W); got shape {arr.shape}.")
    rgb = np.repeat(arr, 3, 0) if arr.shape[0] == 1 else arr
    return rgb.transpose(1, 2, 0).clip(0, 1)


def to_uint8(image: ArrayLike) -> np.ndarray:
    """Pixels in [0, 1] as uint8, rounded to the nearest level.

    A tensor is an image (C, H, W) or (1, C, H, W) with 1 or 3 channels and comes back as (H, W, 3), or (H, W)
    for one channel; an array keeps its layout.
    """
    if isinstance(image, Tensor):
        t = image.detach().cpu()
        if t.dim() == 4 and t.shape[0] == 1:
            t = t[0]
        if t.dim() != 3 or t.shape[0] not in (1, 3):
            raise ValueError(f"expected a (C, H, W) or (1, C, H, W) image tensor with 1 or 3 channels, "
                             f"got {tuple(image.shape)}")
        arr = t.double().permute(1, 2, 0).numpy()
        image = arr[:, :, 0] if arr.shape[2] == 1 else arr
    return (np.asarray(image, dtype=np.float64).clip(0, 1) * 255 + 0.5).astype(np.uint8)


def to_rgb(image: ArrayLike) -> np.ndarray:
    """An image (C, H, W) or (H, W) in [0, 1] as uint8 (H, W, 3)."""
    return to_uint8(image_hwc(image))


def enlarge(rgb: np.ndarray, min_side: int = PNG_MIN_SIDE) -> np.ndarray:
    """Nearest-neighbour enlargement by the smallest integer factor reaching ``min_side`` (crisp pixels)."""
    factor = max(1, math.ceil(min_side / min(rgb.shape[:2])))
    return rgb.repeat(factor, 0).repeat(factor, 1) if factor > 1 else rgb


def crisp(image: ArrayLike, min_side: int = PNG_MIN_SIDE) -> np.ndarray:
    """uint8 (H, W, 3) for display: small images enlarged by pixel repetition, large ones as they are."""
    rgb = to_rgb(image)
    return enlarge(rgb, min_side) if max(rgb.shape[:2]) <= SMALL_SIDE else rgb


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


def colormap_samples(cmap: str, samples: int = 17) -> np.ndarray:
    """``samples`` evenly spaced colours of a colormap, uint8 (samples, 3): what plotly colour scales sample."""
    import matplotlib

    return to_uint8(matplotlib.colormaps[cmap](np.linspace(0, 1, samples))[:, :3])


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


def _label_font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """DejaVu Sans from matplotlib (it has δ, ‖, ∘, ×), else PIL's default font."""
    try:
        import matplotlib

        return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), 11)
    except (ImportError, OSError):
        return ImageFont.load_default()


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ([line] if line else [])


# ----------------------------------------------------------------------------------------------------- PNG

def png_bytes(image: ArrayLike) -> bytes:
    """An image as PNG bytes: a tensor (C, H, W) in [0, 1], or an uint8 / [0, 1] array (H, W) or (H, W, 3)."""
    arr = image if isinstance(image, np.ndarray) and image.dtype == np.uint8 else to_uint8(image)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buffer, format="PNG")
    return buffer.getvalue()


def save_png(image: ArrayLike, path: Union[str, Path]) -> Path:
    """Write an image as a PNG (see ``png_bytes`` for what it takes); returns the path."""
    path = Path(path)
    path.write_bytes(png_bytes(image))
    return path


def heat_png(path: Union[str, Path], values: ArrayLike, *, cmap: str = HEAT_CMAP, unit: str = "",
             vmin: Optional[float] = None, vmax: Optional[float] = None) -> Path:
    """A map (H, W) alone, coloured, enlarged if small, with a colour bar."""
    low, high = value_range(values, vmin, vmax)
    rgb = enlarge(to_uint8(colormap_rgb(values, cmap, low, high)))
    return save_png(with_colorbar(rgb, cmap=cmap, vmin=low, vmax=high, unit=unit), path)


def overlay_png(path: Union[str, Path], image: ArrayLike, heat: ArrayLike, *, cmap: str = CAM_CMAP,
                alpha: float = 0.5, unit: str = "", vmin: Optional[float] = None, vmax: Optional[float] = None,
                hide_zero: bool = False) -> Path:
    """A map over an image (``overlay_rgb``), enlarged if small, with a colour bar."""
    low, high = value_range(heat, vmin, vmax)
    rgb = enlarge(overlay_rgb(image, heat, alpha=alpha, cmap=cmap, vmin=low, vmax=high, hide_zero=hide_zero))
    return save_png(with_colorbar(rgb, cmap=cmap, vmin=low, vmax=high, unit=unit), path)


def quartet_pngs(out_dir: Union[str, Path], original: ArrayLike, adversarial: ArrayLike,
                 maps: Mapping[str, ArrayLike], *, unit: str = "CAM", alpha: float = 0.5,
                 names: Sequence[str] = QUARTET_PNGS) -> list[Path]:
    """Write the four CAM overlays of Fig. 4 on one shared colour range."""
    top = max(float(to_numpy(maps[k]).max()) for k in QUARTET_KEYS) or 1e-12
    return [overlay_png(Path(out_dir) / name, original if key.startswith("x0") else adversarial, maps[key],
                        cmap=CAM_CMAP, alpha=alpha, unit=unit, vmin=0.0, vmax=top)
            for key, name in zip(QUARTET_KEYS, names)]
