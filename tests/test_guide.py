"""The teaching aids, through AppTest on the real app and the real MNIST model: the "How to read this" texts beside
Explore's result panels (with this result's chance-level IS), Teach's step-by-step mode on a real digit and the
caption of Teach §3, computed from its own curves.

Reduced budgets: Explore's EAD runs 1 value of c × 40 iterations, Teach §3 three optimisers × 25
iterations, the step mode its own 2 × 50 (seconds each on a CPU).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from advlens.images import load_image
from advlens.models import get_spec
from interpret import steps
from interpret.scores import percentile_mask
from ui import guide, resources
from ui.state import RUNS, param_key, widget_key

ROOT = Path(__file__).resolve().parents[1]
BUDGET = {"binary_search_steps": 1, "steps": 40, "initial_const": 10.0}
SHORT = {"ead-ista": "ISTA", "ead": "FISTA", "cov": "COV"}


def start(page: str, **state) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def test_explore_explains_every_result_panel_after_a_run():
    at = start("explore", **{param_key("explore", "mnist", "ead", k): v for k, v in BUDGET.items()})
    assert not [e for e in at.expander if e.label == "How to read this"]  # nothing to explain before a run
    at.form_submit_button[0].click().run()
    assert not at.exception, at.exception
    labels = [e.label for e in at.expander]
    assert labels.count("How to read this") == 4 and "What is a good IS?" in labels
    shown = texts(at)
    for topic in ("delta", "groups", "asm", "cam", "is"):
        assert guide.TEXTS[topic] in shown, topic

    run = at.session_state[RUNS]["explore"]
    share = float(percentile_mask(run.scores["asm"], 90)[0].double().mean())  # ν = 90, the slider's start
    assert 0 < share < 1
    assert f"B_ASM holds {share:.1%} of the image, so an even δ would score {share ** 0.5:.2f}" in shown


def test_teach_step_mode_counts_exact_zeros_and_section_3_caption_is_computed():
    at = start("teach", **{param_key("teach", "mnist", "ead", "steps"): 25})
    image = load_image("mnist:0", get_spec("mnist-cnn"))  # the step mode's first digit
    model = resources.start_loading("mnist-cnn", str(resources.device())).model  # the page's model and device
    assert model is not None
    record = steps.record_methods(model, image.tensor, image.label, beta=steps.DEFAULTS["beta"],
                                  const=steps.DEFAULTS["const"], steps=int(steps.DEFAULTS["steps"]),
                                  learning_rate=steps.DEFAULTS["learning_rate"])
    counts = {name: steps.unchanged_counts(it.deltas, image.tensor[0].numpy())["all"] for name, it in record.items()}
    last = len(counts["ead-ista"]) - 1
    assert counts["ead-ista"][last] > counts["cov"][last]
    assert (f"At k = {last}: ISTA: {counts['ead-ista'][last]} of 784 pixels exactly unchanged; COV: "
            f"{counts['cov'][last]} of 784 pixels exactly unchanged") in texts(at)

    at.slider(key=widget_key("teach", "step_k")).set_value(0).run()  # x(0) = x0 for both
    assert "At k = 0: ISTA: 784 of 784 pixels exactly unchanged; COV: 784 of 784" in texts(at)
    at.slider(key=widget_key("teach", "step_k")).set_value(1).run()
    assert f"At k = 1: ISTA: {counts['ead-ista'][1]} of 784" in texts(at)
    assert not at.exception

    at.form_submit_button[0].click().run()  # §3: ISTA, FISTA and COV, 25 iterations each
    assert not at.exception, at.exception
    curves = at.session_state[RUNS]["teach"].curves
    best = {name: float(np.min(c["objective"])) for name, c in curves.items()}
    lowest = min(best, key=best.get)
    caption = next(c.value for c in at.caption if "reached the lowest objective" in c.value)
    assert f"**{SHORT[lowest]} reached the lowest objective" in caption
    assert "usually" not in caption
