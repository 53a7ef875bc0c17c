"""Issue 11: the session's run history (kept, listed, reopened, side by side), results that survive a browser reload,
and configuration links (ui/history.py, ui/links.py).

The app runs on the real MNIST model through AppTest; a reload is a new AppTest session opened on the URL's query
parameters, as a browser's reload is a new Streamlit session on the same URL. One browser test reloads a real page.
Budgets are reduced on purpose (1–2 binary-search steps × 30–60 iterations, seeded through ``ui.state.param_key``
or given in the link): each attack takes a second or two, and the AppTest tests share one session's two runs.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ui import history
from ui.state import MODEL_KEY, RUNS, attack_key, image_key, page_widget, param_key, sweep_images_key, sweep_key

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 240
BUDGET = {"binary_search_steps": 2, "steps": 60, "initial_const": 10.0}  # reduced: seconds per attack


def open_app(query: dict | None = None, **state) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    for key, value in state.items():
        at.session_state[key] = value
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def query(at: AppTest) -> dict[str, str]:
    return {k: v[0] if isinstance(v, list) else v for k, v in at.query_params.items()}


def submit(at: AppTest) -> AppTest:
    at.form_submit_button[0].click().run()
    assert not at.exception, at.exception
    return at


def stored(at: AppTest, page: str = "explore"):
    return at.session_state[RUNS][page]


def history_buttons(at: AppTest) -> list[str]:
    return [b.label for b in at.sidebar.button if b.key and b.key.startswith("history.open.")]


@pytest.fixture(scope="module")
def two_runs():
    """One session: EAD at β = 1e-3, then at β = 1e-2 (reduced budget). Returns the app and both reports."""
    seeds = {param_key("explore", "mnist", "ead", k): v for k, v in BUDGET.items()}
    at = open_app(**seeds)
    first = stored(submit(at)).report
    at.session_state[param_key("explore", "mnist", "ead", "beta")] = 1e-2
    second = stored(submit(at)).report
    return at, first, second


def test_every_run_is_kept_listed_and_in_the_url(two_runs):
    at, first, second = two_runs
    url = query(at)
    assert re.fullmatch(r"[0-9a-f]{32}", url["session"])
    assert (url["model"], url["attack"], url["image"]) == ("mnist-cnn", "ead", "mnist:0")
    assert float(url["beta"]) == 1e-2 and int(url["steps"]) == BUDGET["steps"]  # the non-default parameters
    assert "learning_rate" not in url  # a default is left out
    buttons = history_buttons(at)
    assert len(buttons) == 2 and f"ℓ2 {second.l2:.3g}" in buttons[0] and f"ℓ2 {first.l2:.3g}" in buttons[1]
    table = next(df.value for df in at.dataframe if "settings" in df.value.columns)
    assert list(table["ℓ2"]) == pytest.approx([second.l2, first.l2])
    assert "beta=0.01" in table["settings"][0] and "beta=" not in table["settings"][1]


def test_a_reload_brings_back_the_history_and_the_last_result(two_runs):
    at, first, second = two_runs
    again = open_app(query(at))  # a reload: a new session on the same URL
    assert query(again)["session"] == query(at)["session"]
    run = stored(again)
    assert run.report.l2 == pytest.approx(second.l2) and run.report.params["beta"] == 1e-2
    assert run.result.adversarial.shape == (1, 1, 28, 28) and float((run.delta - stored(at).delta).abs().max()) < 1e-6
    assert any(m.label == "ℓ2" and m.value == f"{second.l2:.3g}" for m in again.metric)  # drawn in Explore's panels
    assert again.session_state[param_key("explore", "mnist", "ead", "beta")] == 1e-2  # the URL set the form
    assert len(history_buttons(again)) == 2

    older = next(b for b in again.sidebar.button if b.label == history_buttons(again)[1])
    older.click().run()  # one click reopens the first run
    assert not again.exception, again.exception
    assert stored(again).report.l2 == pytest.approx(first.l2)
    assert any(m.label == "ℓ2" and m.value == f"{first.l2:.3g}" for m in again.metric)
    assert again.session_state[param_key("explore", "mnist", "ead", "beta")] == first.params["beta"]
    assert len(history_buttons(again)) == 2  # reopening is not a new run


def test_two_history_entries_side_by_side(two_runs):
    at, first, second = two_runs
    items = history.History(history.sessions_root() / query(at)["session"]).items()  # newest first
    at.multiselect(key="history.pair").set_value([f"{it.entry}.{it.k}" for it in items[:2]]).run()
    assert not at.exception, at.exception
    table = next(df.value for df in at.dataframe if "Attack" in df.value.columns)
    assert list(table["ℓ2"]) == pytest.approx([second.l2, first.l2])
    at.button(key="history.compare").click().run()
    assert not at.exception, at.exception
    assert [r.report.l2 for r in stored(at, "compare").runs] == pytest.approx([second.l2, first.l2])
    assert any("EAD" in m.value for m in at.markdown if m.value.startswith("####"))  # Compare's columns are drawn
    assert len(history_buttons(at)) == 2  # a view of two runs is not a new entry


def test_sweep_and_compare_come_back_after_a_reload():
    seeds = {param_key("sweep", "mnist", "ead", k): v for k, v in {**BUDGET, "binary_search_steps": 1,
                                                                    "steps": 30}.items()}
    seeds.update({sweep_key("mnist", "ead", "beta", "from"): 1e-3, sweep_key("mnist", "ead", "beta", "to"): 1e-2,
                  sweep_key("mnist", "ead", "beta", "count"): 2, sweep_images_key("mnist"): 2,
                  page_widget("compare", "lineup", []): ["C&W L2"]})
    seeds.update({param_key("compare", "mnist", "shared", k): v for k, v in {**BUDGET, "steps": 30}.items()})
    at = open_app(**seeds)
    at.switch_page("app_pages/sweep.py").run()
    swept = stored(submit(at), "sweep")
    at.switch_page("app_pages/compare.py").run()
    compared = stored(submit(at), "compare")
    assert len(swept.rows) == 4 and len(compared.runs) == 1

    again = open_app({"session": query(at)["session"]})
    back = stored(again, "sweep")
    assert [(r.value, r.series) for r in back.rows] == [(r.value, r.series) for r in swept.rows]
    assert [r.metrics["l2"] for r in back.rows] == pytest.approx([r.metrics["l2"] for r in swept.rows], nan_ok=True)
    assert back.rows[0].result.success.tolist() == swept.rows[0].result.success.tolist()
    assert stored(again, "compare").runs[0].report.l2 == pytest.approx(compared.runs[0].report.l2)
    again.switch_page("app_pages/sweep.py").run()
    assert not again.exception, again.exception
    assert any("Distortion against" in s.value for s in again.subheader)  # the sweep's plots are drawn


def test_a_bad_link_is_one_sentence_per_value_and_falls_back_to_defaults():
    at = open_app({"model": "no-such-model", "attack": "bogus", "beta": "5", "steps": "many", "target": "99",
                   "session": "../../etc"})
    warnings = [w.value for w in at.warning]
    for word in ("no-such-model", "bogus", "beta", "steps", "target"):
        sentence = next(w for w in warnings if word in w)
        assert sentence.count(". ") == 0 and sentence.endswith(".")
    assert any("session id" in e.value for e in at.error)
    assert at.session_state[MODEL_KEY] == "mnist-cnn" and at.session_state[attack_key("explore")] == "ead"
    assert re.fullmatch(r"[0-9a-f]{32}", query(at)["session"])
    assert not (history.sessions_root().parent / "etc").exists()
    assert "beta" not in query(at) and "model" not in query(at)  # the unusable values leave the URL


def test_a_link_sets_the_widgets():
    at = open_app({"model": "mnist-cnn", "image": "mnist:7", "attack": "cw", "target": "untargeted",
                   "kappa": "5.0", "abort_early": "false"})
    assert not at.warning
    assert at.session_state[image_key("mnist")] == "mnist:7"
    assert at.session_state[attack_key("explore")] == "cw"
    assert at.session_state[param_key("explore", "mnist", "cw", "kappa")] == 5.0
    assert at.session_state[param_key("explore", "mnist", "cw", "abort_early")] is False
    assert at.selectbox(key=page_widget("explore", "mnist.target", None)).value == -1  # untargeted


def test_the_history_keeps_the_last_fifty(two_runs, tmp_path):
    run = stored(two_runs[0])
    keep = history.History(tmp_path / ("0" * 32))
    numbers = [keep.add("explore", run) for _ in range(history.LIMIT + 3)]
    entries = [it.entry for it in keep.items()]
    assert entries == numbers[::-1][: history.LIMIT]
    with pytest.raises(ValueError, match="no longer"):
        keep.load(numbers[0])
