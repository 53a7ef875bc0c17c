"""What the app shows a reader, through Streamlit's AppTest on the real models: the target that follows the
image, Compare's colour δ (one readable map per panel, channels and a shared range on request), the original
beside the attacks, B_ASM on a large image, and the Compare and Sweep downloads.

Budgets are reduced on purpose (one binary-search step × 10–20 iterations, seeded into session state where the
forms read them): the tests are about what is drawn and downloaded, not about attack strength.
"""

from __future__ import annotations

import base64
import csv
import io
import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from interpret.plots import peak_pooled, pooled
from tests.test_app import start as start_app
from tests.test_app import submit
from ui import panels, sweeps
from ui.state import (
    MODEL_KEY,
    RUNS,
    SHARED,
    image_key,
    param_key,
    sweep_images_key,
    sweep_key,
    widget_key,
)

TINY = {"binary_search_steps": 1, "steps": 20, "initial_const": 10.0}


def start(page: str | None = None, **state) -> AppTest:
    return start_app(page, tiny=False, **state)


def figure(chart) -> dict:
    """The plotly figure a chart element sends to the browser."""
    return json.loads(chart.proto.spec)


def values(z) -> np.ndarray:
    """A trace's z as an array: plotly sends numeric arrays as base64 typed arrays, Booleans as lists."""
    if isinstance(z, dict):
        shape = tuple(int(n) for n in str(z["shape"]).split(","))
        return np.frombuffer(base64.b64decode(z["bdata"]), dtype=np.dtype(z["dtype"])).reshape(shape).astype(float)
    return np.array(z, dtype=float)


def delta_traces(at: AppTest, runs: int) -> list[dict]:
    """The heat map of each Compare column's δ panel (Compare draws row by row: the first ``runs`` charts are δ)."""
    charts = at.get("plotly_chart")
    return [figure(charts[k])["data"][0] for k in range(runs)]


# ------------------------------------------------------------------------------------------------ the target

def test_the_default_target_follows_the_image_and_a_chosen_one_stays():
    """Explore: the runner-up default is read from each new image; a class the user picked is kept."""
    target_key = widget_key("explore", "mnist.target")
    at = submit(start(**{param_key("explore", "mnist", "ead", k): v for k, v in TINY.items()}))
    first = at.session_state[RUNS]["explore"].report
    assert first.image == "mnist:0" and first.target == first.top5_before[1][0]

    at.selectbox(key=image_key("mnist")).set_value("mnist:1").run()
    shown = " ".join(c.value for c in at.caption)
    second = submit(at).session_state[RUNS]["explore"].report
    assert second.image == "mnist:1" and second.label != first.label
    runner_up = second.top5_before[1][0]
    assert second.target == runner_up != first.target  # not the previous image's runner-up
    assert f"Runner-up: {runner_up} (the default target)" in shown  # the picker says which class that is

    chosen = next(c for c in range(10) if c not in (first.target, second.target, second.label, 2))
    at.selectbox(key=target_key).set_value(chosen)  # in the form: it applies with Run, as in the browser
    at.selectbox(key=image_key("mnist")).set_value("mnist:2")
    third = submit(at).session_state[RUNS]["explore"].report
    assert third.image == "mnist:2" and third.target == chosen


# ------------------------------------------------------------------------------------------------ Compare, colour

@pytest.fixture(scope="module")
def compared() -> AppTest:
    """Compare on efficientnet-lite0's first gallery image: C&W and EAD, 1 × 10 iterations each."""
    budget = {param_key("compare", "imagenet", SHARED, k): v for k, v in {**TINY, "steps": 10}.items()}
    at = start("compare", **{MODEL_KEY: "efficientnet-lite0", widget_key("compare", "lineup"): ["C&W L2", "EAD-FISTA · EN rule"],
                             **budget})
    submit(at)
    assert [r.title for r in at.session_state[RUNS]["compare"].runs] == ["C&W L2", "EAD-FISTA · EN rule"]
    return at


def test_compare_shows_the_original_and_colour_delta_as_one_map_per_panel(compared):
    at = compared
    done = at.session_state[RUNS]["compare"].runs
    captions = [c for img in at.image for c in img.captions]
    assert any(c.startswith("original x₀ · model: ") for c in captions)
    for trace, run in zip(delta_traces(at, 2), done):
        magnitude = run.delta[0].abs().sum(0).double().numpy()  # |δ| summed over R, G, B
        assert trace["type"] == "heatmap" and values(trace["z"]).shape == (224, 224)
        shown = values(trace["z"])  # each 4×4 tile's peak, so a sparse δ shows in a small panel
        assert np.allclose(shown, peak_pooled(magnitude, 4)) and np.allclose(shown[::4, ::4],
                                                                             magnitude.reshape(56, 4, 56, 4).max((1, 3)))
        assert trace["zmin"] == 0 and trace["zmax"] == pytest.approx(magnitude.max())  # the panel's own range
    own = [t["zmax"] for t in delta_traces(at, 2)]
    assert own[0] != pytest.approx(own[1])

    at.toggle(key=widget_key("compare", "shared_scale")).set_value(True).run()
    assert [t["zmax"] for t in delta_traces(at, 2)] == [pytest.approx(max(own))] * 2

    at.toggle(key=widget_key("compare", "shared_scale")).set_value(False).run()
    at.get("button_group")[0].set_value("G").run()  # the δ view's segmented control
    for trace, run in zip(delta_traces(at, 2), done):
        green = run.delta[0, 1].double().numpy()
        assert np.allclose(values(trace["z"]), peak_pooled(green, 4))
        assert trace["zmin"] == -trace["zmax"] == pytest.approx(-np.abs(green).max())  # symmetric, white = 0
    assert not at.exception and len(at.session_state[RUNS]["compare"].runs) == 2  # no attack re-ran


def test_b_asm_on_a_large_image_is_outlined_per_tile(compared):
    """At ν = 90 a pixel-exact B_ASM outline on 224×224 is a field of speckles: the panel outlines 8×8 tiles."""
    run = compared.session_state[RUNS]["compare"].runs[0]  # its δ∩B_ASM panel: chart 4, after the δ and groups rows
    outline = next(t for t in figure(compared.get("plotly_chart")[4])["data"] if t["type"] == "contour")
    z = values(outline["z"])
    region = run.scores["mask"][0].any(0).numpy()
    assert z.shape == (224, 224) and np.array_equal(z, pooled(region, 8) >= 0.5)
    assert (z.reshape(28, 8, 28, 8) == z[::8, ::8][:, None, :, None]).all()  # constant on every tile
    assert 0 < z.sum() < z.size


def test_compare_downloads_are_the_table_and_the_reports(compared):
    at = compared
    done = at.session_state[RUNS]["compare"].runs
    labels = [d.label for d in at.get("download_button")]
    assert "Table CSV" in labels and "Reports JSON" in labels
    table = at.dataframe[0].value
    rows = list(csv.DictReader(io.StringIO(panels.csv_text(panels.compare_rows(done, 90)))))
    assert list(rows[0]) == list(table.columns) and [r["Attack"] for r in rows] == list(table["Attack"])
    assert [float(r["ℓ2"]) for r in rows] == pytest.approx(list(table["ℓ2"]))
    reports = json.loads(panels.reports_json(done, 90))
    assert reports == [json.loads(panels.report_json(run, 90)) for run in done]
    assert [r["attack"] for r in reports] == ["cw", "ead"] and reports[0]["model"] == "efficientnet-lite0"


# ------------------------------------------------------------------------------------------------ Sweep

def test_sweep_downloads_the_table_and_one_report_per_image_and_value(mnist_model):
    seeds = {param_key("sweep", "mnist", "ead", k): v for k, v in {**TINY, "steps": 10}.items()}
    seeds.update({sweep_key("mnist", "ead", "beta", "from"): 1e-3, sweep_key("mnist", "ead", "beta", "to"): 1e-2,
                  sweep_key("mnist", "ead", "beta", "count"): 2, sweep_images_key("mnist"): 2})
    at = submit(start("sweep", **seeds))
    sweep = at.session_state[RUNS]["sweep"]
    assert len(sweep.rows) == 4  # 2 values × 2 decision rules
    assert {"Table CSV", "Reports JSON"} <= {d.label for d in at.get("download_button")}
    table = at.dataframe[0].value
    rows = list(csv.DictReader(io.StringIO(panels.csv_text(sweeps.sweep_rows(sweep, "β", {s: s for s in sweep.series})))))
    assert len(rows) == len(table) == 4
    assert [float(r["ℓ2"]) for r in rows] == pytest.approx(list(table["ℓ2"]))
    reports = json.loads(sweeps.reports_json(sweep, mnist_model))
    assert len(reports) == 4 * 2 and [r["image"] for r in reports[:2]] == sweep.refs and len(set(sweep.refs)) == 2
    assert [r["label"] for r in reports[:2]] == sweep.labels.tolist()
    assert sorted({(r["params"]["beta"], r["params"]["decision_rule"]) for r in reports}) == sorted(
        {(row.value, row.series) for row in sweep.rows})
