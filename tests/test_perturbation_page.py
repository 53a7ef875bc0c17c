"""The Perturbation analysis page (issue 15) in AppTest, one render shared by its tests: every panel is drawn, the
ε slider redraws the fooling ratios, and Theorem 1's bound is plotted against DeepFool per digit.

The page runs at its default setting (ℓ∞, the FC network and LeNet-5) except two reductions to keep CI in seconds:
the smallest digit count it offers (50, not 100) and no iterative fooling-ratio curves. The plotted points are
checked against what ``interpret.robustness`` computes for the same digits, not against stored numbers.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from advlens.models import load_model
from advlens.perturbation_cli import load_digits
from interpret.robustness import deepfool_norms, predictions, rho2_terms
from ui.state import widget_key

ROOT = Path(__file__).resolve().parents[1]
DIGITS = 50


def figure(at: AppTest, key: str) -> dict:
    (chart,) = [c for c in at.get("plotly_chart") if c.proto.id.endswith(key)]
    return json.loads(chart.proto.spec)


def values(array) -> np.ndarray:
    """A trace's numbers: plotly sends numpy arrays as base64 typed arrays."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
    return np.asarray(array, dtype=float)


@pytest.fixture(scope="module")
def page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240)
    at.session_state[widget_key("perturbation", "n")] = DIGITS
    at.session_state[widget_key("perturbation", "slow")] = []
    at.run()
    at.switch_page("app_pages/perturbation.py").run()
    assert not at.exception, at.exception
    return at


def test_theorem1_plot_shows_each_digits_bound_against_deepfools_norm(page):
    at = page
    traces = {t["name"].split(" (")[0]: t for t in figure(at, "perturbation.theorem1")["data"]}
    assert set(traces) == {"mnist-fc", "mnist-lenet5", "‖r̂‖ = bound"}

    x, y = load_digits(list(range(DIGITS)))
    for name in ("mnist-fc", "mnist-lenet5"):
        model = load_model(name)
        ok = predictions(model, x) == y
        bound = rho2_terms(model, x[ok], y[ok])
        norms, fooled = deepfool_norms(model, x[ok], y[ok])
        bx, by = values(traces[name]["x"]), values(traces[name]["y"])
        assert np.allclose(bx, bound[fooled].numpy(), rtol=1e-5) and np.allclose(by, norms[fooled].numpy(), rtol=1e-5)
        above = np.mean(by >= bx - 1e-9)
        assert f"({100 * above:.0f}% on or above)" in traces[name]["name"]
    diagonal = values(traces["‖r̂‖ = bound"]["x"]), values(traces["‖r̂‖ = bound"]["y"])
    assert np.array_equal(*diagonal) and diagonal[0][0] == 0
    assert diagonal[0][1] >= max(max(values(traces[n]["x"]).max(), values(traces[n]["y"]).max())
                                 for n in ("mnist-fc", "mnist-lenet5"))


def test_every_panel_is_drawn_and_the_epsilon_slider_redraws(page):
    at = page
    assert len(at.get("plotly_chart")) == 6  # dual norms, fooling ratio, ρ̂₂, Theorem 1, triplet, PSNR curves
    at.slider(key=widget_key("perturbation", "eps.mnist-fc")).set_value(0.09).run()
    assert not at.exception
    fooled = next(t.value for t in at.table if "fooled (%)" in t.value.columns)
    assert float(fooled["fooled (%)"][0]) > float(fooled["fooled (%)"][3])  # FGSM above random noise
