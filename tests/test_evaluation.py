"""`advlens evaluate` and `advlens report` on the real MNIST network and held-out digits, with a real SQLite file.

Budgets are reduced so CI stays in minutes (C&W: 3 binary steps × 100 iterations from c = 1 at Adam rate 0.1; EAD: 3 × 100 from
c = 1), which still reaches every target on these digits; the protocol, the storage and the resume logic do not
depend on the budget.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from advlens.cli import main
from advlens.evaluation.store import DB_NAME, SCHEMA_VERSION, ResultStore
from interpret.metrics import case_summary, distortion

ROOT = Path(__file__).resolve().parents[1]
CW = "cw:binary_search_steps=3,steps=100,initial_const=1,learning_rate=0.1"
EAD = "ead:binary_search_steps=3,steps=100,initial_const=1"


def evaluate(out: Path, *args: str) -> int:
    return main(["evaluate", "--out", str(out), *args])


def report(out: Path, capsys, fmt: str = "json"):
    capsys.readouterr()
    assert main(["report", str(out), "--format", fmt]) == 0
    text = capsys.readouterr().out
    return json.loads(text) if fmt == "json" else text


def stored(out: Path) -> list[tuple]:
    with sqlite3.connect(out / DB_NAME) as conn:
        return conn.execute("SELECT model, image, target, attack, params, success, l0, l1, l2, linf FROM results "
                            "ORDER BY attack, params, image, target").fetchall()


@pytest.fixture(scope="module")
def five_digits(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "five"
    assert evaluate(out, "--attack", CW, "--attack", EAD, "--images", "mnist:0-4", "--targets", "all") == 0
    return out


def test_cw_and_ead_on_five_digits_and_all_targets_store_ninety_rows(five_digits):
    rows = stored(five_digits)
    assert len(rows) == 90
    assert len({r[:5] for r in rows}) == 90  # one row per (model, image, target, attack, parameters)
    assert {r[3] for r in rows} == {"cw", "ead"}
    with ResultStore(five_digits, create=False) as store:
        for r in store.results():
            assert r["target"] != r["label"]
            rep = store.report(r["id"])
            assert rep["image"] == r["image"] and rep["target"] == r["target"] and rep["attack"] == r["attack"]


def test_report_gives_best_average_worst_as_interpret_metrics_computes_them(five_digits, capsys):
    table = report(five_digits, capsys)
    with ResultStore(five_digits, create=False) as store:
        for attack, by in (("cw", "l2"), ("ead", "l1")):
            cases = {r["case"]: r for r in table if r["attack"] == attack}
            assert set(cases) == {"best", "average", "worst"}
            assert all(c["asr"] == 100.0 and c["n"] == 5 and c["by"] == by for c in cases.values()), cases
            assert cases["best"][by] <= cases["average"][by] <= cases["worst"][by]
            # the same numbers from the stored perturbations, through interpret.metrics
            rows = sorted(store.results("WHERE attack = ?", (attack,)), key=lambda r: (r["image"], r["target"]))
            delta = torch.from_numpy(np.stack([store.perturbation(r["id"]) for r in rows]))
            assert torch.allclose(distortion(delta)["l2"].double(), torch.tensor([r["l2"] for r in rows]).double())
            success = torch.tensor([bool(r["success"]) for r in rows])
            averages = store.conn.execute(
                "SELECT image, target FROM requests WHERE attack = ? AND average = 1", (attack,)).fetchall()
            pick = {img: t for img, t in averages}
            images = sorted({r["image"] for r in rows})
            offsets = torch.tensor([[r["target"] for r in rows if r["image"] == img].index(pick[img]) for img in images])
            expected = case_summary(delta, success, 9, by=by, average_pick=offsets)
            for case, values in expected.items():
                for metric in ("asr", "l0", "l1", "l2", "linf"):
                    assert cases[case][metric] == pytest.approx(values[metric], rel=1e-6), (attack, case, metric)


def test_running_the_same_command_again_adds_nothing(five_digits, capsys):
    before = stored(five_digits)
    assert evaluate(five_digits, "--attack", CW, "--attack", EAD, "--images", "mnist:0-4", "--targets", "all") == 0
    assert "0 new rows (90 already stored)" in capsys.readouterr().out
    assert stored(five_digits) == before


def test_a_run_killed_partway_resumes_to_exactly_the_rows_of_an_uninterrupted_run(tmp_path):
    args = ["--attack", CW, "--images", "mnist:0-3", "--targets", "all", "--chunk", "9"]
    whole = tmp_path / "whole"
    assert evaluate(whole, *args) == 0
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "advlens.cli", "evaluate", "--out", str(killed), *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if (killed / DB_NAME).exists() and len(stored(killed)) >= 9:
                    break
            except sqlite3.OperationalError:  # the file exists, its tables not yet
                pass
            time.sleep(0.05)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    partial = stored(killed)
    assert 9 <= len(partial) < 36 and len(partial) % 9 == 0  # whole chunks only
    assert evaluate(killed, *args) == 0
    resumed, expected = stored(killed), stored(whole)
    assert [r[:6] for r in resumed] == [r[:6] for r in expected]  # the same keys and outcomes, none twice
    assert np.allclose([r[6:] for r in resumed], [r[6:] for r in expected], rtol=1e-5, atol=1e-6)


def test_a_kappa_sweep_and_an_epsilon_sweep_give_one_row_per_value_and_case(tmp_path, capsys):
    out = tmp_path / "sweeps"
    assert evaluate(out, "--attack", CW, "--images", "mnist:0-1", "--targets", "random", "--sweep", "kappa=0,5") == 0
    assert evaluate(out, "--attacks", "ifgm", "--images", "mnist:0-1", "--targets", "all",
                    "--sweep", "epsilon=0.05,0.3") == 0
    table = report(out, capsys)
    kappa = [(r["sweep_value"], r["case"]) for r in table if r["sweep_param"] == "kappa"]
    assert kappa == [(0.0, "random"), (5.0, "random")]
    eps = [(r["sweep_value"], r["case"]) for r in table if r["sweep_param"] == "epsilon"]
    assert eps == [(v, c) for v in (0.05, 0.3) for c in ("best", "average", "worst")]
    by_eps = {(r["sweep_value"], r["case"]): r for r in table if r["sweep_param"] == "epsilon"}
    assert by_eps[(0.05, "best")]["asr"] <= by_eps[(0.3, "best")]["asr"]
    assert all(r["linf"] is None or r["linf"] <= r["sweep_value"] + 1e-6 for r in by_eps.values())
    markdown = report(out, capsys, "md")
    assert "| kappa | case |" in markdown and "| epsilon | case |" in markdown
    assert main(["report", str(out), "--format", "csv", "--plots"]) == 0
    assert (out / "plots.html").stat().st_size > 0 and (out / "plots.png").read_bytes()[:4] == b"\x89PNG"


def test_two_runs_into_one_database_at_once_store_each_row_once(tmp_path):
    out = tmp_path / "shared"
    cmd = [sys.executable, "-m", "advlens.cli", "evaluate", "--out", str(out), "--attack", "ifgm:epsilon=0.2",
           "--images", "mnist:0-5", "--targets", "all", "--chunk", "9"]
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    rows = stored(out)
    assert len(rows) == 54 and len({r[:5] for r in rows}) == 54


@pytest.mark.parametrize("args, message", [
    (["--attacks", "nope", "--images", "mnist:0"], "Unknown attack 'nope'"),
    (["--attack", "ead:gamma=1", "--images", "mnist:0"], "does not take 'gamma'"),
    (["--attack", "ead:beta=-1", "--images", "mnist:0"], "beta must be"),
    (["--attacks", "ead", "--images", "mnist:5-3"], "is empty"),
    (["--attacks", "ead", "--images", "mnist:0-99999"], "goes past"),
    (["--attacks", "cw", "--images", "mnist:0", "--sweep", "beta=0,1"], "has no parameter 'beta'"),
    (["--attacks", "ead", "--images", "mnist:0", "--targets", "some"], "--targets must be one of"),
    (["--attacks", "ead", "--images", "mnist:0", "--model", "nope"], "Unknown model 'nope'"),
    (["--attacks", "ifgm", "--images", "mnist:0", "--backend", "ray", "--address", "127.0.0.1:9"], "No Ray cluster"),
    (["--attacks", "ead", "--images", "mnist:0", "--backend", "ray", "--threads", "0"], "--threads must be at least 1"),
])
def test_bad_input_is_one_sentence_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert evaluate(out, *args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("advlens: error:") and message in err and len(err.splitlines()) == 1
    assert not out.exists()


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder this process cannot write: permissions for a user, a read-only tmpfs for root."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    mounted = False
    if os.access(locked, os.W_OK):  # root ignores permissions
        made = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=4k", "tmpfs", str(locked)], capture_output=True)
        if made.returncode != 0:
            pytest.skip(f"cannot make a read-only folder here: {made.stderr.decode().strip()}")
        mounted = True
    yield locked
    if mounted:
        subprocess.run(["umount", str(locked)], check=False)
    locked.chmod(0o700)


def test_an_unwritable_out_and_a_newer_database_are_refused_unchanged(tmp_path, capsys, read_only_dir):
    assert evaluate(read_only_dir / "out", "--attacks", "ifgm", "--images", "mnist:0") == 2
    assert "cannot be written" in capsys.readouterr().err
    assert list(read_only_dir.iterdir()) == []
    newer = tmp_path / "newer"
    newer.mkdir()
    with sqlite3.connect(newer / DB_NAME) as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION + 1),))
    before = (newer / DB_NAME).read_bytes()
    assert evaluate(newer, "--attacks", "ifgm", "--images", "mnist:0") == 2
    assert "newer advlens" in capsys.readouterr().err
    assert (newer / DB_NAME).read_bytes() == before and sorted(p.name for p in newer.iterdir()) == [DB_NAME]
    assert main(["report", str(newer)]) == 2
    assert "newer advlens" in capsys.readouterr().err


def test_a_file_as_out_and_a_missing_results_folder_are_one_sentence(tmp_path, capsys):
    file = tmp_path / "file"
    file.write_text("x")
    assert evaluate(file, "--attacks", "ifgm", "--images", "mnist:0") == 2
    assert "is a file" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "none")]) == 2
    assert "no results" in capsys.readouterr().err.lower()
