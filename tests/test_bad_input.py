"""Bad input through the command line, as a careless user types it: one sentence on stderr, exit status 2, nothing
written. The entry point is called in-process (a subprocess per case would cost seconds each); every registered
parameter of every attack is driven with values just outside its range, huge, tiny, NaN and infinite.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from advlens import cli
from attacks.registry import ATTACKS


def run_cli(capsys, argv: list[str]) -> tuple[int, str]:
    code = cli.main(argv)
    return code, capsys.readouterr().err


def refused(capsys, argv: list[str], words: str, out_dir: Path) -> None:
    code, err = run_cli(capsys, argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert words.lower() in lines[0].lower(), lines[0]
    assert not out_dir.exists()
    assert not [p for p in out_dir.parent.iterdir() if p.name.startswith(".advlens")]  # no staging left


def text_values(param) -> list[str]:
    if param.choices:
        return ["nonsense", "1"]
    if param.type is bool:
        return []  # a switch (--x / --no-x) takes no value
    values = ["nan", "inf", "-inf", "1e308", "-1e308", "1e39", "1e-50", "abc", ""]
    if param.low is not None:
        values.append(repr(param.low - max(abs(param.low) * 1e-3, 1e-9)))
    if param.high is not None:
        values.append(repr(param.high * 1.001 + 1e-9))
    if param.type is int:
        values += ["1.5", "1000000000000"]
    return values


def accepted(param, text: str) -> bool:
    try:
        param.parse(text)
        return True
    except ValueError:
        return False


CASES = [(name, p, v) for name, entry in ATTACKS.items() for p in entry.params for v in text_values(p)
         if not accepted(p, v)]


@pytest.mark.parametrize("name, param, text", CASES, ids=[f"{n}-{p.name}-{v}" for n, p, v in CASES])
def test_every_parameter_out_of_range_is_one_sentence(name, param, text, capsys, tmp_path):
    out = tmp_path / "run"
    refused(capsys, ["attack", "--attack", name, "--image", "mnist:0", f"{param.flag}={text}", "--out", str(out)],
            param.name, out)


def test_values_inside_the_range_parse(capsys):
    """The control for the table above: the edges of every range are accepted."""
    for entry in ATTACKS.values():
        for p in entry.params:
            if p.numeric:
                assert p.parse(repr(p.low)) == p.low and p.parse(repr(p.high)) == p.high


@pytest.mark.parametrize("args, words", [
    (["--c", "1e39"], "initial_const"),
    (["--c", "1e308"], "initial_const"),
    (["--c", "1e-50"], "initial_const"),
    (["--kappa", "1e39"], "kappa"),
    (["--steps", "1000000000000"], "steps"),
    (["--binary-steps", "1000000000"], "binary_search_steps"),
    (["--attack", "strattack", "--group-size", "100000"], "group_size"),
    (["--attack", "strattack", "--stride", "1000000000"], "stride"),
    (["--attack", "strattack", "--group-size", "40"], "group_size"),  # in the schema's range, wider than a digit
    # Issue 11 item 8: a stride above the group size left gaps whose pixels changed uncounted ("0/36 groups touched")
    (["--attack", "strattack", "--group-size", "2", "--stride", "3"], "stride must be at most group_size"),
    (["--attack", "cw", "--beta", "0.01"], "does not take --beta"),
    (["--attack", "ead", "--no-refine"], "does not take --no-refine"),
    (["--attack", "nope"], "nope"),
    (["--model", "nope"], "nope"),
    (["--target", "12"], "target"),
    (["--target", "three"], "target"),
    (["--device", "tpu"], "device"),
    (["--image", "mnist:99999"], "mnist"),
])
def test_listed_cases_are_one_sentence(args, words, capsys, tmp_path):
    out = tmp_path / "run"
    argv = ["attack", "--image", "mnist:0", "--steps", "2", "--binary-steps", "1", "--out", str(out)]
    refused(capsys, argv + args, words, out)


def test_cuda_without_a_gpu_is_one_sentence(capsys, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = tmp_path / "run"
    refused(capsys, ["attack", "--image", "mnist:0", "--device", "cuda", "--out", str(out)], "GPU", out)


def test_a_long_image_name_and_a_strip_png(capsys, tmp_path):
    out = tmp_path / "run"
    refused(capsys, ["attack", "--image", str(tmp_path / ("a" * 300 + ".png")), "--out", str(out)], "name too long",
            out)
    strip = tmp_path / "strip.png"
    Image.new("L", (40_000, 1), 255).save(strip)  # a 158-byte file that once took 8.6 GB on the ImageNet model
    code, err = run_cli(capsys, ["attack", "--model", "efficientnet-lite0", "--image", str(strip), "--attack", "ead",
                                 "--steps", "1", "--binary-steps", "1", "--target", "1", "--out", str(out)])
    assert code == 0, err
    assert (out / "result.json").exists()


@pytest.mark.parametrize("where", ["proc", "under-a-file", "symlink-loop", "long-name"])
def test_unwritable_out_is_one_sentence(where, capsys, tmp_path):
    if where == "proc":
        out = Path("/proc/advlens-test/run")
    elif where == "under-a-file":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "run"
    elif where == "symlink-loop":
        os.symlink(tmp_path / "b", tmp_path / "a")
        os.symlink(tmp_path / "a", tmp_path / "b")
        out = tmp_path / "a" / "run"
    else:
        out = tmp_path / ("x" * 300)
    code, err = run_cli(capsys, ["attack", "--image", "mnist:0", "--steps", "2", "--binary-steps", "1",
                                 "--out", str(out)])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Cannot write to --out" in err, err
    if where != "proc":
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".advlens")]


@pytest.fixture
def tiny_disk(tmp_path):
    """A 4 KB tmpfs: room for the staging directory and one small file, not for a result."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {made.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_is_one_sentence_and_leaves_nothing(capsys, tiny_disk):
    out = tiny_disk / "run"
    code, err = run_cli(capsys, ["attack", "--image", "mnist:0", "--steps", "2", "--binary-steps", "1",
                                 "--out", str(out)])
    assert code == 2 and "No space left on device" in err and len(err.strip().splitlines()) == 1, err
    assert list(tiny_disk.iterdir()) == []


def test_images_into_a_closed_pipe_is_quiet():
    """`advlens images | head -1`: the reader leaves early; no BrokenPipeError traceback."""
    shell = f"{sys.executable} -m advlens.cli images | head -1"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", shell], capture_output=True, text=True, timeout=120)
    assert done.stdout.startswith("mnist:0") and "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0
