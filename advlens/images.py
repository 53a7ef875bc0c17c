"""Images in and out: the bundled gallery, user files and uploads, turned into the tensor a model expects.

Every image reaches a model as a float32 tensor (1, C, H, W) in [0, 1]. Anything that goes wrong while reading an
image raises :class:`ImageError`, whose message is one sentence a user can act on.
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from advlens.models import DATA_DIR, ModelSpec, _class_names
from interpret.render import save_png, to_uint8  # noqa: F401 (the image helpers live with the other renderers)

IMAGENET_DIR = DATA_DIR / "imagenet"
PHOTOS_DIR = DATA_DIR / "photos"
MNIST_HELDOUT = DATA_DIR / "mnist_heldout.npz"
DEFAULT_MAX_PIXELS = 40_000_000
DATASETS = ("mnist", "imagenet")

Source = Union[str, "os.PathLike[str]", bytes]


class ImageError(ValueError):
    """An image cannot be used; the message is one sentence for the user."""


@dataclass(frozen=True)
class GalleryImage:
    ref: str  # "mnist:N" or "imagenet:N"
    title: str
    label: int | None  # true class in its dataset, None when unknown
    dataset: str


@dataclass
class LoadedImage:
    tensor: torch.Tensor  # float32 (1, C, H, W) in [0, 1], shaped for the spec it was loaded for
    label: int | None  # true label in the spec's dataset, when known
    ref: str
    notes: list[str] = field(default_factory=list)  # conversions done, as sentences


# ---------------------------------------------------------------------------------------------------- gallery


@functools.lru_cache(maxsize=1)
def _mnist_heldout() -> tuple[np.ndarray, np.ndarray]:
    if not MNIST_HELDOUT.exists():
        raise ImageError(f"The MNIST gallery is missing: run `python -m advlens.train_mnist` to create {MNIST_HELDOUT}.")
    with np.load(MNIST_HELDOUT) as npz:
        return npz["images"], npz["labels"]


@functools.lru_cache(maxsize=1)
def _imagenet_files() -> tuple[tuple[Path, int | None], ...]:
    """The foolbox samples (label in the name, ``imagenet_XX_LABEL.jpg``), then the photos in labels.json order."""
    samples = [(p, int(p.stem.rsplit("_", 1)[1])) for p in sorted(IMAGENET_DIR.glob("imagenet_*.jpg"))]
    photo_labels: dict[str, int | None] = json.loads((PHOTOS_DIR / "labels.json").read_text())
    return tuple(samples + [(PHOTOS_DIR / name, label) for name, label in photo_labels.items()])


def gallery(dataset: str) -> list[GalleryImage]:
    """The bundled images of a dataset: held-out MNIST digits, or ImageNet samples followed by photos."""
    if dataset == "mnist":
        _, labels = _mnist_heldout()
        return [GalleryImage(f"mnist:{i}", f"digit {y} (#{i})", int(y), "mnist") for i, y in enumerate(labels)]
    if dataset == "imagenet":
        names = _class_names("imagenet")
        return [
            GalleryImage(f"imagenet:{i}", f"{names[y]} (#{i})" if y is not None else f"{path.stem} (#{i}, unlabelled)",
                         y, "imagenet")
            for i, (path, y) in enumerate(_imagenet_files())
        ]
    raise ImageError(f"Unknown gallery {dataset!r}: choose one of {', '.join(DATASETS)}.")


_REF = re.compile(r"^\s*([A-Za-z][\w-]*):(.*)$")


def _parse_ref(ref: str) -> tuple[str, int]:
    match = _REF.match(ref)
    dataset, index = (match.group(1).lower(), match.group(2).strip()) if match else ("", "")
    if dataset not in DATASETS:
        raise ImageError(f"Unknown image {ref!r}: use mnist:N, imagenet:N or the path of an image file.")
    size = len(gallery(dataset))
    if not re.fullmatch(r"\d+", index) or int(index) >= size:
        raise ImageError(f"There is no image {ref.strip()!r}: the {dataset} gallery runs from {dataset}:0 to {dataset}:{size - 1}.")
    return dataset, int(index)


def _gallery_image(dataset: str, index: int, notes: list[str]) -> tuple[Image.Image, int | None]:
    if dataset == "mnist":
        images, labels = _mnist_heldout()
        return Image.fromarray(images[index], mode="L"), int(labels[index])
    path, label = _imagenet_files()[index]
    return _decode(path, DEFAULT_MAX_PIXELS, f"The gallery file {path}", notes), label


# ---------------------------------------------------------------------------------------------------- decoding


def _decode(source: Path | bytes, max_pixels: int, what: str, notes: list[str]) -> Image.Image:
    """Open and fully decode an image, refusing anything over ``max_pixels`` before its pixels are read, and float
    pixels that are NaN or infinite."""
    with _open(source, what) as stream:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit is enforced just below
                with Image.open(stream) as opened:
                    _check_size(opened.size, max_pixels, what)
                    frames = getattr(opened, "n_frames", 1)
                    opened.load()
                    img = _upright(opened, notes)
        except ImageError:
            raise
        except Image.DecompressionBombError as err:
            raise ImageError(f"{what} is too large to open safely (more than {max_pixels:,} pixels).") from err
        except UnidentifiedImageError as err:
            raise ImageError(f"{what} is not an image that can be read (use PNG, JPEG, WebP, GIF, BMP or TIFF).") from err
        except MemoryError as err:
            raise ImageError(f"{what} is too large to decode in the memory available.") from err
        except Exception as err:  # PIL reports damaged data as OSError, SyntaxError, ValueError, EOFError, zlib.error...
            raise ImageError(f"{what} is truncated or damaged and cannot be decoded.") from err
    if img.mode == "F" and not np.isfinite(np.asarray(img)).all():
        raise ImageError(f"{what} has NaN or infinite pixel values: save it with finite values.")
    if frames > 1:
        notes.append(f"Used the first of {frames} frames.")
    return img


def _open(source: Path | bytes, what: str) -> BinaryIO:
    """A readable stream of a non-empty upload or regular file; a missing or unreadable file is an :class:`ImageError`."""
    if isinstance(source, bytes):
        if not source:
            raise ImageError(f"{what} is empty.")
        return io.BytesIO(source)
    try:
        info = source.stat()  # before opening: opening a FIFO would wait for a writer
    except (FileNotFoundError, NotADirectoryError) as err:
        raise ImageError(f"There is no image file at {_shown(source)}.") from err
    except OSError as err:  # a name too long (ENAMETOOLONG), a symlink loop (ELOOP), a denied folder...
        raise ImageError(f"{what} cannot be opened: {_reason(err)}.") from err
    except ValueError as err:  # an embedded NUL character
        raise ImageError(f"{_shown(source)} is not a valid file path.") from err
    if stat.S_ISDIR(info.st_mode):
        raise ImageError(f"{_shown(source)} is a folder, not an image file.")
    if not stat.S_ISREG(info.st_mode):
        raise ImageError(f"{_shown(source)} is a device, pipe or socket, not an image file.")
    if info.st_size == 0:
        raise ImageError(f"{what} is empty.")
    try:
        return open(source, "rb")
    except OSError as err:
        raise ImageError(f"{what} cannot be opened: {_reason(err)}.") from err


def _reason(err: OSError) -> str:
    return (err.strerror or type(err).__name__).lower()


def _shown(path: Path | str) -> str:
    """A path for a message, its middle elided when long."""
    text = str(path)
    return repr(text if len(text) <= 100 else f"{text[:60]}…{text[-30:]}")


def _upright(img: Image.Image, notes: list[str]) -> Image.Image:
    """A decoded copy of ``img``, turned as its EXIF orientation says (an unreadable EXIF block is ignored)."""
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:
        orientation = 1
    if orientation in (0, 1):
        return img.copy()
    notes.append("Rotated the image as its EXIF orientation says.")
    return ImageOps.exif_transpose(img)


def _check_size(size: tuple[int, int], max_pixels: int, what: str) -> None:
    w, h = size
    if w * h > max_pixels:
        raise ImageError(f"{what} is {w}×{h} pixels, more than the {max_pixels:,} allowed.")
    if w == 0 or h == 0:
        raise ImageError(f"{what} has no pixels.")


def _to_8bit(img: Image.Image, notes: list[str]) -> Image.Image:
    """16-bit, 32-bit and float grayscale scaled to 8-bit "L" (PIL's own conversion clips instead of scaling)."""
    if img.mode.startswith("I;16"):
        top = 65535
    elif img.mode == "I":
        top = 65535 if img.getextrema()[1] > 255 else 255
    elif img.mode == "F":  # finite: _decode refuses NaN and infinity
        top = 1 if img.getextrema()[1] <= 1 else 255
    else:
        return img
    notes.append(f"Scaled {img.mode} samples to 8 bits.")
    arr = np.array(img, dtype=np.float32)  # in place from here on: one float copy of the image, not several
    np.clip(arr, 0, top, out=arr)
    arr *= 255 / top
    return Image.fromarray(np.rint(arr, out=arr).astype(np.uint8), mode="L")


def _flatten(img: Image.Image, notes: list[str]) -> Image.Image:
    """An "L" or "RGB" image: transparency composited onto white, other colour modes converted."""
    img = _to_8bit(img, notes)
    if img.mode in ("L", "RGB"):
        return img
    if img.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        if rgba.getchannel("A").getextrema()[0] < 255:
            notes.append("Composited the transparent areas onto white.")
        flat = Image.alpha_composite(white, rgba).convert("RGB")
        return flat.convert("L") if img.mode in ("LA", "La") else flat
    if img.mode == "1":
        return img.convert("L")
    return img.convert("RGB")


# A mode's colour model, alpha and bit depth aside (transparency and 16-bit samples have their own notes).
_BASE_MODES = {"RGBA": "RGB", "RGBa": "RGB", "RGBX": "RGB", "LA": "L", "La": "L", "PA": "P", "I": "L", "F": "L"}
_MODE_NAMES = {"L": "grayscale", "P": "palette colour", "1": "black-and-white", "LAB": "CIELAB"}


def _base_mode(mode: str) -> str:
    return "L" if mode.startswith("I;16") else _BASE_MODES.get(mode, mode)


def _match_channels(img: Image.Image, channels: int, source: str, notes: list[str]) -> Image.Image:
    """``img`` ("L" or "RGB") as the model's channels, with one note naming the file's own colour model."""
    target = "RGB" if channels == 3 else "L"
    if source != target and (source, target) not in (("P", "RGB"), ("1", "L")):  # those two lose nothing
        notes.append(f"Converted {_MODE_NAMES.get(source, source)} to {'RGB' if channels == 3 else 'grayscale'} "
                     f"for a {channels}-channel model.")
    return img if img.mode == target else img.convert(target)


def _fit(img: Image.Image, spec: ModelSpec, notes: list[str]) -> Image.Image:
    """MNIST: resized straight to the input size. ImageNet: shorter side to the input size, then centre crop."""
    h, w = spec.input_size
    iw, ih = img.size
    if (iw, ih) == (w, h):
        return img
    if spec.dataset == "mnist":
        verb = "Downscaled" if iw >= w and ih >= h else "Upscaled" if iw <= w and ih <= h else "Resized"
        stretched = "" if iw * h == ih * w else " (aspect ratio not kept)"
        notes.append(f"{verb} from {iw}×{ih} to {w}×{h}{stretched}.")
        return img.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=3.0)
    scale = max(w / iw, h / ih)
    verb = "Downscaled" if scale < 1 else "Upscaled"
    rw, rh = max(w, round(iw * scale)), max(h, round(ih * scale))
    if (rw, rh) == (iw, ih):
        notes.append(f"Centre-cropped from {iw}×{ih} to {w}×{h}.")
    else:
        notes.append(f"{verb} from {iw}×{ih} to {rw}×{rh}" + (f", then centre-cropped to {w}×{h}." if (rw, rh) != (w, h) else "."))
    # Resample only the part of the source that ends up in the crop, never the whole rw×rh image: a strip one pixel
    # high and 40,000 wide would otherwise be upscaled to 8,960,000×224 (over 8 GB) for a 224×224 crop.
    left, top = (rw - w) // 2, (rh - h) // 2
    box = (left * iw / rw, top * ih / rh, (left + w) * iw / rw, (top + h) * ih / rh)
    return img.resize((w, h), Image.Resampling.BILINEAR, box=box, reducing_gap=3.0)


def _prepare(img: Image.Image, spec: ModelSpec, notes: list[str]) -> torch.Tensor:
    source = _base_mode(img.mode)
    img = _fit(_match_channels(_flatten(img, notes), spec.channels, source, notes), spec, notes)
    arr = np.asarray(img, dtype=np.uint8).reshape(img.height, img.width, -1)
    tensor = torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div(255).unsqueeze(0).contiguous()
    if spec.dataset == "mnist" and tensor.mean() > 0.5:
        notes.append("The image is mostly light, but MNIST digits are white on black, so the model may misread it.")
    return tensor


# ---------------------------------------------------------------------------------------------------- public


def load_image(source: Source, spec: ModelSpec, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """A gallery ref (``mnist:N``, ``imagenet:N``), an image file or uploaded bytes, ready for ``spec``'s model."""
    notes: list[str] = []
    label: int | None = None
    if isinstance(source, (bytes, bytearray, memoryview)):
        ref, img = "upload", _decode(bytes(source), max_pixels, "The uploaded file", notes)
    elif isinstance(source, str) and _REF.match(source) and not os.path.exists(source):
        dataset, index = _parse_ref(source)
        ref = f"{dataset}:{index}"
        img, label = _gallery_image(dataset, index, notes)
        if dataset != spec.dataset:
            notes.append(f"{ref} comes from the {dataset} gallery, so its label does not apply to {spec.title}.")
            label = None
    else:
        name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
        if not isinstance(name, str) or not name.strip():
            given = "an empty name" if isinstance(name, str) else type(source).__name__
            raise ImageError(f"An image is a gallery ref (mnist:N, imagenet:N), a file path or a file's bytes, not {given}.")
        ref, img = name, _decode(Path(name), max_pixels, f"The file {_shown(name)}", notes)
    try:
        tensor = _prepare(img, spec, notes)
    except ImageError:
        raise
    except Exception as err:
        raise ImageError(f"The image {_shown(ref)} (mode {img.mode}) could not be converted for {spec.name}.") from err
    return LoadedImage(tensor, label, ref, notes)
