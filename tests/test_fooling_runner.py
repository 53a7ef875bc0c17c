"""The Fig. 3 fooling-ratio curve through the evaluation runner (``advlens fooling --out``): the same numbers as the
one-pass ``fooling_curves`` (the app's slider), rows a user can re-report and resume.

Reduced for CI: 20 held-out digits (19 classified correctly) on the fully connected network and 3 ε values (the
paper's curve: 1,000 digits × 11 ε, timed in BENCHMARKS.md). Equality is exact: each chunk of the runner holds the
same 19 digits in the same order as the one-pass batch, so both compute the same floats.
"""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3

import numpy as np
import pytest

from advlens.cli import main
from advlens.models import load_model
from advlens.perturbation_cli import fooling_from_store, fooling_specs, load_digits
from interpret.robustness import METHODS, fooling_curves, predictions

IMAGES = "mnist:0-19"
GRID = [0.0, 0.02, 0.04, 0.08]  # ε = 0 is no run (x + 0 = x is classified correctly); 3 ε run per method


def fooling(capsys, out, *extra: str) -> dict:
    code = main(["fooling", "--model", "mnist-fc", "--images", IMAGES, "--eps", ",".join(map(str, GRID)),
                 "--out", str(out), "--json", *extra])
    assert code == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(list(range(20)))
    model = load_model("mnist-fc")
    return model, x, y, [f"mnist:{i}" for i in range(20) if predictions(model, x[i:i + 1])[0] == y[i]]


@pytest.fixture(scope="module")
def stored(tmp_path_factory, digits):
    """The curve run once through the runner: (folder, the command's JSON)."""
    out = tmp_path_factory.mktemp("fooling")
    buffer = io.StringIO()  # capsys is function-scoped: the module's one run reads its stdout by hand
    with contextlib.redirect_stdout(buffer):
        assert main(["fooling", "--model", "mnist-fc", "--images", IMAGES, "--eps", ",".join(map(str, GRID)),
                     "--out", str(out), "--json"]) == 0
    return out, json.loads(buffer.getvalue())


def test_the_runner_gives_the_one_pass_curve_for_every_method(stored, digits):
    out, printed = stored
    model, x, y, correct = digits
    direct = fooling_curves(model, x, y, GRID)
    from_db = fooling_from_store(out, "mnist-fc", fooling_specs(METHODS, GRID), correct)
    for m in METHODS:
        assert np.array_equal(from_db[m], direct[m]), m
        assert printed["fooling_ratio"][m] == [round(float(v), 2) for v in direct[m]]
    assert printed["n"] == 20 and printed["n_correct"] == len(correct) == 19
    assert 0 < direct["Alg1"][1] < 100 and direct["Alg2"][2] != direct["Alg1"][2]  # the grid separates methods


def test_the_rows_are_re_reported_by_advlens_report(stored, digits, capsys):
    out, _ = stored
    assert main(["report", str(out), "--format", "json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert len(table) == len(METHODS) * 3  # one row per method and ε > 0
    assert {r["case"] for r in table} == {"untargeted"} and {r["sweep_param"] for r in table} == {"epsilon"}
    assert {r["n"] for r in table} == {len(digits[3])}  # the misclassified digit is not attacked
    assert sorted({r["sweep_value"] for r in table}) == GRID[1:]


def test_an_interrupted_curve_resumes_with_only_the_missing_rows(tmp_path, stored, capsys):
    out, printed = stored
    folder = tmp_path / "copy"
    folder.mkdir()
    with sqlite3.connect(out / "results.db") as src, sqlite3.connect(folder / "results.db") as dst:
        src.backup(dst)
    with sqlite3.connect(folder / "results.db") as conn:  # as if killed while DeepFool and random ran
        lost = conn.execute("DELETE FROM results WHERE attack IN ('deepfool', 'random-noise')").rowcount
        total = conn.execute("SELECT COUNT(*) FROM results").fetchone()[0] + lost
    assert lost == 2 * 3 * 19
    again = fooling(capsys, folder)
    assert again["fooling_ratio"] == printed["fooling_ratio"]
    with sqlite3.connect(folder / "results.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM results").fetchone()[0] == total
        last = conn.execute("SELECT MAX(id) FROM runs").fetchone()[0]
        assert conn.execute("SELECT COUNT(*) FROM results WHERE run = ?", (last,)).fetchone()[0] == lost


def test_with_clip_the_reports_asr_is_the_fooling_ratio(tmp_path, digits, capsys):
    """--clip: every iterate in the box, so the row's success (judged on the returned image) is the fooling ratio."""
    model, x, y, _ = digits
    assert main(["fooling", "--model", "mnist-fc", "--images", IMAGES, "--eps", "0.05", "--methods",
                 "FGSM,Alg1-10,DeepFool", "--clip", "--out", str(tmp_path), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)["fooling_ratio"]
    direct = fooling_curves(model, x, y, [0.05], methods=("FGSM", "Alg1-10", "DeepFool"), clip=True)
    assert main(["report", str(tmp_path), "--format", "json"]) == 0
    asr = {r["attack"] + str(r["params"].get("iterations", "")): r["asr"] for r in json.loads(capsys.readouterr().out)}
    for method, key in (("FGSM", "alg11"), ("Alg1-10", "alg110"), ("DeepFool", "deepfool")):
        assert printed[method] == [round(float(direct[method][0]), 2)]
        assert asr[key] == pytest.approx(direct[method][0])


def test_an_epsilon_the_attacks_cannot_take_is_one_sentence(tmp_path, capsys):
    code = main(["fooling", "--model", "mnist-fc", "--images", IMAGES, "--eps", "0,1e-9", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("advlens: error: --eps with --out") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "results.db").exists()
