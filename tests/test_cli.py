"""The `advlens` command line: real attacks on the bundled model, files written, bad input refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from attacks.registry import ATTACKS

REQUIRED = {"success", "target", "pred_before", "pred_after", "l0", "l1", "l2", "linf", "c", "iterations",
            "seconds", "device"}


def advlens(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "advlens.cli", *args], capture_output=True, text=True, timeout=600)


def test_models_lists_the_registry():
    out = advlens("models")
    assert out.returncode == 0, out.stderr
    for name in ("mnist-cnn", "efficientnet-lite0", "resnet50", "inception-v3"):
        assert name in out.stdout


def test_images_lists_the_gallery():
    out = advlens("images")
    assert out.returncode == 0, out.stderr
    assert "mnist:0 " in out.stdout and "imagenet:7 " in out.stdout


@pytest.mark.parametrize("attack", ["ead", "cw", "ead-ista", "cov"])
def test_attack_writes_images_and_result(attack, tmp_path: Path):
    out_dir = tmp_path / "run"
    out = advlens("attack", "--model", "mnist-cnn", "--image", "mnist:3", "--attack", attack, "--target", "4",
                  "--c", "1", "--steps", "300", "--binary-steps", "3", "--device", "cpu", "--out", str(out_dir))
    assert out.returncode == 0, out.stderr
    result = json.loads((out_dir / "result.json").read_text())
    assert REQUIRED <= set(result)
    assert result["success"] is True and result["target"] == 4 and result["pred_after"] == 4
    assert result["pred_before"] != 4 and result["device"] == "cpu"
    assert result["l2"] > 0 and result["l0"] >= 1 and result["linf"] <= 1
    for name in ("original.png", "adversarial.png", "perturbation.png"):
        with Image.open(out_dir / name) as im:
            assert im.size == (28, 28)


def test_adversarial_png_is_still_adversarial(tmp_path: Path, mnist_model):
    import numpy as np
    import torch

    out_dir = tmp_path / "run"
    out = advlens("attack", "--image", "mnist:5", "--attack", "ead", "--target", "2", "--kappa", "5",
                  "--c", "1", "--steps", "300", "--binary-steps", "2", "--out", str(out_dir))
    assert out.returncode == 0, out.stderr
    pixels = np.asarray(Image.open(out_dir / "adversarial.png"), dtype=np.float32) / 255
    assert mnist_model(torch.from_numpy(pixels)[None, None]).argmax(1).item() == 2  # survives 8-bit rounding


def test_a_file_that_is_not_an_image_is_refused(tmp_path: Path):
    bogus = tmp_path / "notes.png"
    bogus.write_text("this is not an image")
    out = advlens("attack", "--image", str(bogus), "--out", str(tmp_path / "run"))
    assert out.returncode != 0
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_user_image_file_is_attacked_against_its_prediction(tmp_path: Path):
    img = Image.new("L", (280, 280), 0)
    for x in range(120, 160):  # a thick vertical stroke, roughly a "1"
        for y in range(40, 240):
            img.putpixel((x, y), 255)
    path = tmp_path / "one.png"
    img.convert("RGB").save(path)
    out = advlens("attack", "--image", str(path), "--attack", "ead", "--untargeted", "--c", "0.1", "--steps", "150",
                  "--binary-steps", "3", "--out", str(tmp_path / "run"))
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["target"] is None and result["success"] is True
    assert result["pred_after"] != result["pred_before"]


def test_attacks_json_lists_every_registered_attack_with_its_function_parameters():
    import inspect

    out = advlens("attacks", "--json")
    assert out.returncode == 0, out.stderr
    listed = {a["name"]: a for a in json.loads(out.stdout)}
    assert {"cw", "ead", "ead-ista", "cov", "strattack"} <= set(listed)

    for name, entry in ATTACKS.items():
        fn = entry.fn.func if hasattr(entry.fn, "func") else entry.fn
        keywords = [n for n, p in inspect.signature(fn).parameters.items()
                    if p.kind is inspect.Parameter.KEYWORD_ONLY and n not in ("callback", *entry.fixed)]
        params = listed[name]["params"]
        assert sorted(p["name"] for p in params) == sorted(keywords)
        for p in params:
            assert p["help"] and p["group"] and p["flag"].startswith("--")
            if p["type"] in ("int", "float") and not p["choices"]:
                assert p["low"] is not None and p["high"] is not None


@pytest.mark.parametrize("name", list(ATTACKS))
def test_every_parameter_is_settable_from_the_cli(name):
    from advlens.cli import attack_params, build_parser

    entry = ATTACKS[name]
    argv, expected = ["attack", "--attack", name, "--image", "mnist:0", "--out", "unused"], {}
    for p in entry.params:
        if p.type is bool and not p.choices:
            value = not p.default
            argv.append(p.flag if value else "--no-" + p.flag[2:])
        else:
            value = p.choices[-1] if p.choices else p.grid(3)[1]
            argv += [p.flag, str(value)]
        expected[p.name] = value
    args = build_parser(name).parse_args(argv)
    assert attack_params(args, entry) == expected


def test_help_for_one_attack_shows_exactly_its_parameters():
    out = advlens("attack", "--attack", "strattack", "--help")
    assert out.returncode == 0
    for flag in ("--alpha", "--refine-percentile", "--refine-search-steps", "--refine-steps", "--group-size"):
        assert flag in out.stdout
    assert "--beta" not in out.stdout and "--scaled-threshold" not in out.stdout
    assert "default 400" in out.stdout  # refine_steps' default, with its range
    ead = advlens("attack", "--attack", "ead", "--help")
    assert "--scaled-threshold" in ead.stdout and "--alpha" not in ead.stdout


def test_all_targets_gives_the_papers_cases(tmp_path: Path):
    """--target all: every incorrect class in one batch (reduced budget: 3 × 100), with best ≤ average ≤ worst."""
    import numpy as np
    import torch

    from interpret.metrics import distortion

    out_dir = tmp_path / "run"
    out = advlens("attack", "--image", "mnist:3", "--attack", "ead", "--target", "all", "--c", "1", "--steps", "100",
                  "--binary-steps", "3", "--rule", "l1", "--out", str(out_dir))
    assert out.returncode == 0, out.stderr
    cases = json.loads((out_dir / "cases.json").read_text())
    assert cases["by"] == "l1"
    targets = sorted(int(p.name[1:]) for p in out_dir.glob("t*"))
    assert targets == [t for t in range(10) if t != 3]
    reports = {t: json.loads((out_dir / f"t{t}" / "result.json").read_text()) for t in targets}
    ok = [r for r in reports.values() if r["success"]]
    best, average, worst = (cases["cases"][k] for k in ("best", "average", "worst"))
    assert best["asr"] == 100.0 * bool(ok)
    assert best["l1"] <= average["l1"] <= worst["l1"] or worst["asr"] == 0
    assert best["l1"] == pytest.approx(min(r["l1"] for r in ok), rel=1e-5)
    assert average["l1"] == pytest.approx(reports[cases["average_target"]]["l1"], rel=1e-5)
    # The stored adversarial PNG is the attack's image rounded to 8 bits: its ℓ1 agrees to that rounding.
    original = np.asarray(Image.open(out_dir / "original.png"), dtype=np.float32) / 255
    adv = np.asarray(Image.open(out_dir / f"t{targets[0]}" / "adversarial.png"), dtype=np.float32) / 255
    l1 = distortion(torch.from_numpy(adv - original)[None, None])["l1"].item()
    assert l1 == pytest.approx(reports[targets[0]]["l1"], abs=784 / 255)
