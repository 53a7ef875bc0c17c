"""Queries in the evaluation tables and one plot series per parameter set (issues 14 and 16), on real evaluations.

Budgets are reduced to the smallest that run in seconds, so success is not what these tests are about: ZOO runs
1 value of c × 8 iterations of B = 32 coordinates (65 queries an iteration) on 2 digits × 1 random target; EAD
1 × 20 iterations from c = 10 on one digit, EN and L1 rules each swept over κ.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from advlens.cli import main
from advlens.evaluation.store import DB_NAME

ZOO = "zoo:binary_search_steps=1,steps=8,coordinates=32,abort_every=2,initial_const=10,learning_rate=0.2"
EAD = "binary_search_steps=1,steps=20,initial_const=10"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tables") / "run"
    common = ["evaluate", "--out", str(out), "--targets", "random"]
    assert main([*common, "--attack", ZOO, "--images", "mnist:0-1"]) == 0
    assert main([*common, "--attack", f"ead:decision_rule=en,{EAD}", "--attack", f"ead:decision_rule=l1,{EAD}",
                 "--images", "mnist:0", "--sweep", "kappa=0,5"]) == 0
    return out


def report(out: Path, capsys, *flags: str) -> str:
    capsys.readouterr()
    assert main(["report", str(out), *flags]) == 0
    return capsys.readouterr().out


def stored_queries(out: Path, attack: str) -> list[tuple[int, int | None]]:
    with sqlite3.connect(out / DB_NAME) as conn:
        return conn.execute("SELECT success, queries FROM results WHERE attack = ?", (attack,)).fetchall()


def test_report_gives_zoo_mean_queries_and_none_for_a_white_box_attack(folder, capsys):
    table = json.loads(report(folder, capsys, "--format", "json"))
    zoo = [r for r in table if r["attack"] == "zoo"]
    assert [(r["case"], r["n"]) for r in zoo] == [("random", 2)]
    rows = stored_queries(folder, "zoo")
    assert len(rows) == 2 and all(q is not None and q > 0 for _, q in rows)
    assert zoo[0]["queries"] == pytest.approx(sum(q for _, q in rows) / len(rows))
    won = [q for ok, q in rows if ok]
    assert zoo[0]["queries_success"] == (pytest.approx(sum(won) / len(won)) if won else None)
    ead = [r for r in table if r["attack"] == "ead"]  # white-box: no queries stored, none reported
    assert ead and all(q is None for _, q in stored_queries(folder, "ead"))
    assert all(r["queries"] is None and r["queries_success"] is None for r in ead)

    header, *lines = report(folder, capsys, "--format", "csv").splitlines()
    columns = header.split(",")
    assert "queries" in columns and "queries_success" in columns
    zoo_line = next(line for line in lines if line.startswith("mnist-cnn,zoo,"))
    assert f"{zoo[0]['queries']}" in zoo_line

    blocks = report(folder, capsys).split("### ")
    (zoo_block,) = [b for b in blocks if b.startswith("zoo ")]
    assert "queries (all)" in zoo_block and f"| {zoo[0]['queries']:.0f} |" in zoo_block
    assert all("queries (all)" not in b for b in blocks if b.startswith("ead "))


def test_the_evaluate_page_table_has_queries_for_zoo_only(folder, capsys):
    from ui.evaluation_results import case_rows

    table = json.loads(report(folder, capsys, "--format", "json"))
    for row, shown in zip(table, case_rows(table)):
        assert shown["queries"] == row["queries"] and shown["queries (successes)"] == row["queries_success"]
        assert (shown["queries"] is None) == (row["attack"] == "ead"), shown


def plotted_traces(html: str) -> list[list[dict]]:
    """The traces of each figure in a plotly HTML file, read from its JSON (not its pixels)."""
    decoder = json.JSONDecoder()
    return [decoder.raw_decode(html, m.end())[0] for m in re.finditer(r'Plotly\.newPlot\(\s*"[^"]+",\s*', html)]


def test_plots_draw_ead_en_and_l1_as_two_series_labelled_by_their_rule(folder, capsys):
    table = json.loads(report(folder, capsys, "--format", "json", "--plots"))
    sweep, scatter = plotted_traces((folder / "plots.html").read_text(encoding="utf-8"))
    for rule in ("en", "l1"):
        name = f"ead (decision_rule={rule}) · random"
        rows = sorted((r for r in table if r["attack"] == "ead" and r["params"]["decision_rule"] == rule),
                      key=lambda r: r["sweep_value"])
        assert [r["sweep_value"] for r in rows] == [0.0, 5.0]
        panels = [t for t in sweep if t["name"] == name]  # ASR, ℓ1, ℓ2, ℓ∞ against κ, in that order
        assert [t["y"] for t in panels] == [[r[m] for r in rows] for m in ("asr", "l1", "l2", "linf")]
        assert all(t["x"] == ["0.0", "5.0"] for t in panels)
        assert [t["x"] for t in scatter if t["name"] == name] == [[r["l1"] for r in rows]]
    assert {t["name"] for t in sweep} == {"ead (decision_rule=en) · random", "ead (decision_rule=l1) · random"}
