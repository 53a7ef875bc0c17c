"""Compare's columns line up row by row whatever each attack's notes say (issue 11: StrAttack's column, which ran
without early abort, lacked the early-abort line of the others, so its panels sat higher than theirs).

One Compare run on digit 0 with C&W, EAD and StrAttack at 1 × 20 iterations (a reduced budget: the layout, not
the attacks, is under test); the rest reruns only the page.
"""

from __future__ import annotations

import dataclasses

import pytest
from streamlit.testing.v1 import AppTest

from tests.test_app import start, submit
from ui.state import RUNS, SHARED, param_key, sweep_images_key, sweep_key, widget_key

LINEUP = ["C&W L2", "EAD-FISTA · EN rule", "StrAttack"]


@pytest.fixture(scope="module")
def compared() -> AppTest:
    budget = {param_key("compare", "mnist", SHARED, k): v
              for k, v in {"binary_search_steps": 1, "steps": 20, "initial_const": 10.0}.items()}
    at = start("compare", **{widget_key("compare", "lineup"): LINEUP, **budget})
    submit(at)
    assert [r.title for r in at.session_state[RUNS]["compare"].runs] == LINEUP
    return at


def kinds(node) -> list[str]:
    """What a column holds, in order, containers flattened: element types, and a caption's first word."""
    out: list[str] = []
    for child in getattr(node, "children", {}).values():
        if type(child).__name__ == "Block" or getattr(child, "type", "") in ("column", "flex_container"):
            out += kinds(child)
        elif type(child).__name__ == "Caption":
            out.append("Caption")
        else:
            out.append(type(child).__name__)
    return out


def attack_rows(at: AppTest) -> list[list]:
    """Every row of columns with one column per attack, under "Side by side"."""
    rows = []

    def walk(node) -> None:
        for child in getattr(node, "children", {}).values():
            columns = [c for c in getattr(child, "children", {}).values() if getattr(c, "type", "") == "column"]
            if len(columns) == len(LINEUP) and len(columns) == len(child.children):
                rows.append(columns)
            else:
                walk(child)

    walk(at.main)
    return rows


def notes(at: AppTest) -> list[list[str]]:
    """The captions of the row under the headlines: each column's notes."""
    row = next(r for r in attack_rows(at) if all(kinds(c) and set(kinds(c)) == {"Caption"} for c in r))
    return [[str(el.value) for el in col.caption] for col in row]


def assert_aligned(at: AppTest) -> None:
    rows = attack_rows(at)
    assert len(rows) >= 6  # headline, notes, adversarial, δ, groups, δ∩B_ASM
    for row in rows:
        assert all(kinds(col) == kinds(row[0]) for col in row), [kinds(col) for col in row]


def test_every_row_of_panels_lines_up_across_attacks(compared):
    at = compared
    assert not at.exception
    assert_aligned(at)
    assert all(len(column) == 1 for column in notes(at))  # one line in every column, the same height of row


def test_a_column_without_early_abort_gets_a_neutral_line_in_the_same_row(compared):
    at = compared
    done = at.session_state[RUNS]["compare"].runs
    strattack = done[-1]
    # StrAttack as it runs on ImageNet: without early abort (only the stored report changes; nothing re-runs)
    strattack.report = dataclasses.replace(strattack.report, params={**strattack.report.params, "abort_early": False})
    at.run()
    assert not at.exception and at.session_state[RUNS]["compare"].runs is not None
    assert_aligned(at)
    lines = notes(at)
    assert lines[-1] == [":material/check: Early abort off: every value of c ran its full budget."]
    assert all(len(column) == 1 for column in lines)


def test_a_sweep_value_where_no_image_succeeded_says_why_and_what_to_change():
    """Issue 11: the ImageNet β sweep showed 0% at β = 0.1 and nothing else. Here EAD at β = 0.5 on one digit with
    1 × 5 iterations from c₀ = 0.001 (a budget made to fail: both decision rules, about a second)."""
    budget = {param_key("sweep", "mnist", "ead", k): v
              for k, v in {"binary_search_steps": 1, "steps": 5, "initial_const": 1e-3}.items()}
    grid = {sweep_key("mnist", "ead", "beta", part): v for part, v in (("from", 0.5), ("to", 0.5), ("count", 1))}
    at = start("sweep", **budget, **grid, **{sweep_images_key("mnist"): 1})
    submit(at)
    assert [r.metrics["asr"] for r in at.session_state[RUNS]["sweep"].rows] == [0.0, 0.0]
    notes = [c.value for c in at.caption if "No image succeeded" in c.value]
    assert notes == [":material/info: No image succeeded: 1 binary-search step × 5 iterations from c₀ = 0.001 tried c up "
                     "to 0.001; raise c₀ or the binary-search steps (c grows ×10 after each failed step) and turn off "
                     "'abort early'; EAD's δ stays exactly 0 until a gradient step α₀·c·|∇f| outgrows β = 0.5 on some "
                     "pixel (eq. 9), so a large β needs a large c."]
