"""The Streamlit app, page by page, through Streamlit's AppTest (in-process, no browser).

Every test drives the real app on the real MNIST model. Budgets are tiny on purpose (one or two binary-search
steps × 20–60 iterations, seeded into session state through ``ui.state.param_key``, where the forms read their
values): each attack takes a second or two on a CPU, and tests share runs where they can (the ``explored`` fixture,
one session for both new sweeps), so the suite stays cheap.
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from advlens import models
from attacks.registry import ATTACKS
from ui import live, panels, resources
from ui.state import (
    COUNTER,
    MODEL_KEY,
    RUNS,
    SHARED,
    attack_key,
    image_key,
    param_key,
    sweep_axis_key,
    sweep_images_key,
    sweep_key,
    widget_key,
)

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 240  # the default 3 s is far too short for attacks on a shared CPU
BUDGET = {"binary_search_steps": 2, "steps": 60, "initial_const": 10.0}  # tiny, so each attack takes seconds


def small_budgets() -> dict:
    seeds = {param_key("explore", "mnist", "ead", k): v for k, v in BUDGET.items()}
    seeds.update({param_key("compare", "mnist", SHARED, k): v for k, v in {**BUDGET, "steps": 40}.items()})
    seeds.update({param_key("sweep", "mnist", "ead", k): v for k, v in {**BUDGET, "binary_search_steps": 1,
                                                                        "steps": 30}.items()})
    seeds.update({sweep_key("mnist", "ead", "beta", "from"): 1e-3, sweep_key("mnist", "ead", "beta", "to"): 1e-2,
                  sweep_key("mnist", "ead", "beta", "count"): 2, sweep_images_key("mnist"): 2,
                  param_key("teach", "mnist", "ead", "steps"): 25})
    return seeds


def start(page: str | None = None, *, tiny: bool = True, **state) -> AppTest:
    """The app on ``page`` with ``state`` seeded (and, unless ``tiny`` is False, the tiny budgets above)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    for key, value in {**(small_budgets() if tiny else {}), **state}.items():
        at.session_state[key] = value
    at.run()
    if page:
        at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def runs(at: AppTest) -> int:
    return at.session_state[COUNTER] if COUNTER in at.session_state else 0


def submit(at: AppTest) -> AppTest:
    at.form_submit_button[0].click().run()
    assert not at.exception, at.exception
    return at


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def table_value(at: AppTest, name: str) -> str:
    frame = at.dataframe[0].value
    return str(frame.loc[frame["Metric"] == name].iloc[0]["Value"])


def widget_keys(at: AppTest) -> set[str]:
    kinds = ("number_input", "select_slider", "radio", "checkbox", "text_input", "slider", "selectbox")
    return {w.key for kind in kinds for w in at.get(kind) if w.key}


@pytest.fixture(scope="module")
def explored() -> AppTest:
    """The Explore page after one EAD run on digit 0 (target: the runner-up class)."""
    at = start()
    assert runs(at) == 0
    return submit(at)


# ------------------------------------------------------------------------------------------------ Explore

def test_explore_runs_ead_end_to_end_and_renders_everything(explored):
    at = explored
    assert runs(at) == 1
    assert not at.error, [e.value for e in at.error]
    assert "Success" in at.success[0].value
    assert float(metric(at, "ℓ1")) > 0 and int(metric(at, "ℓ0")) > 0
    assert table_value(at, "Success") == "yes"
    assert float(table_value(at, "ℓ2")) > 0
    captions = [c for img in at.image for c in img.captions]
    assert any(c.startswith("model: 0") for c in captions) and any(c.startswith("model: ") and "0 (" not in c
                                                                   for c in captions)
    assert len(at.get("plotly_chart")) >= 6  # δ, groups, ASM, CAM quartet, top-5, loss
    assert [d.label for d in at.get("download_button")] == ["Adversarial PNG", "δ as .npy", "Metrics JSON"]
    run = at.session_state[RUNS]["explore"]
    assert run.scores is not None and set(run.scores["cams"]) == {"x0_t0", "x0_t", "adv_t0", "adv_t"}
    assert run.report.target == run.report.top5_before[1][0]  # the default target: the model's runner-up


def test_json_download_is_the_report_the_cli_writes(explored, mnist_model):
    """The download is build_report(...).to_json() of the same result with its scores at ν: the CLI's result.json."""
    from advlens.explain import summarise_scores
    from advlens.report import build_report

    run = explored.session_state[RUNS]["explore"]
    expected = build_report(run.result, mnist_model, model_name="mnist-cnn", image="mnist:0", notes=[],
                            explanation=summarise_scores(run.scores, 90, "gradcam"))
    assert panels.report_json(run, 90) == expected.to_json()  # the same result, so even `seconds` agree
    at_60 = json.loads(panels.report_json(run, 60))
    assert at_60["explanation"]["is_nu"] == 60 and at_60["explanation"]["is_asm"] == at_60["explanation"][
        "is_curve"]["60"]
    assert at_60["params"]["steps"] == 60 and at_60["attack"] == "ead" and at_60["image"] == "mnist:0"


def test_cli_result_json_and_the_app_download_of_the_same_run_are_byte_identical(explored, tmp_path):
    """The same attack run once in the app and once by `advlens attack --explain` (in this process, so both use the
    torch thread count the app set): the two files differ in the timing alone."""
    from advlens import cli

    run = explored.session_state[RUNS]["explore"]
    entry = ATTACKS[run.attack]
    argv = ["attack", "--attack", run.attack, "--image", run.report.image, "--target", str(run.report.target),
            "--device", "cpu", "--explain", "--out", str(tmp_path / "cli")]
    for p in entry.params:
        value = run.report.params[p.name]
        if p.type is bool and not p.choices:
            argv.append(p.flag if value else "--no-" + p.flag[2:])
        elif value is not None:
            argv += [p.flag, repr(value) if isinstance(value, float) else str(value)]
    assert cli.main(argv) == 0
    from_cli = json.loads((tmp_path / "cli" / "result.json").read_text())
    from_app = json.loads(panels.report_json(run, 90))
    assert from_cli.pop("seconds") > 0 and from_app.pop("seconds") > 0
    assert json.dumps(from_cli, indent=2) == json.dumps(from_app, indent=2)


def test_display_knobs_do_not_rerun_the_attack(explored):
    at = explored
    before, run = runs(at), at.session_state[RUNS]["explore"]
    at.slider(key=widget_key("explore", "nu")).set_value(60).run()
    at.slider(key=widget_key("explore", "opacity")).set_value(0.3).run()
    at.selectbox(key=widget_key("explore", "cmap")).set_value("viridis").run()
    assert not at.exception
    assert runs(at) == before
    assert at.session_state[RUNS]["explore"] is run  # the very same result object
    assert "ν = 60" in str(at.dataframe[0].value.loc[lambda f: f["Metric"] == "IS-ASM"].iloc[0]["Unit / meaning"])


def test_changing_a_parameter_does_not_run_until_submitted(explored):
    at = explored
    before = runs(at)
    at.select_slider(key=param_key("explore", "mnist", "ead", "beta")).set_value(0.01).run()
    at.number_input(key=param_key("explore", "mnist", "ead", "kappa")).set_value(2.0).run()
    assert runs(at) == before
    assert at.session_state[RUNS]["explore"].report.params["beta"] != 0.01


def test_results_persist_across_pages(explored):
    at = explored
    run = at.session_state[RUNS]["explore"]
    at.switch_page("app_pages/teach.py").run()
    at.switch_page("app_pages/explore.py").run()
    assert not at.exception
    assert at.session_state[RUNS]["explore"] is run
    assert "Success" in at.success[0].value


def test_every_registered_attack_has_a_widget_for_every_parameter():
    """Iterates over the registry: an attack added there is checked here with no edit."""
    at = start()
    for name, entry in ATTACKS.items():
        at.session_state[attack_key("explore")] = name
        at.run()
        assert not at.exception and not at.error, (name, [e.value for e in at.error])
        missing = {p.name for p in entry.params} - {
            k.rsplit(".", 1)[1] for k in widget_keys(at) if k.startswith(param_key("explore", "mnist", name, ""))}
        assert not missing, f"{name}: no widget for {sorted(missing)}"
    assert {"alpha", "refine_percentile", "refine_search_steps", "refine_steps"} <= {p.name for p in
                                                                                     ATTACKS["strattack"].params}
    assert runs(at) == 0


def test_a_parameter_out_of_range_is_one_sentence_and_runs_nothing():
    at = start(**{param_key("explore", "mnist", "ead", "kappa"): -1.0})
    submit(at)
    assert [e.value for e in at.error] == ["kappa must be a number from 0 to 1000; got -1.0."]
    assert "explore" not in at.session_state[RUNS]
    at.session_state[attack_key("explore")] = "strattack"
    at.session_state[param_key("explore", "mnist", "strattack", "refine_steps")] = 10**9
    at.run()
    submit(at)
    assert [e.value for e in at.error] == ["refine_steps must be an integer from 1 to 10000; got 1000000000."]
    assert "explore" not in at.session_state[RUNS]


def test_a_failed_run_offers_one_click_to_a_larger_budget():
    """Issue 11 item 2: a failure on a small budget (here 1 × 5 iterations from c = 1e-3) says so and offers the
    fix; one click runs the same attack again with 4× the iterations and early abort off."""
    small = {"binary_search_steps": 1, "steps": 5, "initial_const": 1e-3}
    at = start(**{param_key("explore", "mnist", "ead", k): v for k, v in small.items()})
    submit(at)
    assert not at.session_state[RUNS]["explore"].report.success
    assert any("steps 5 → 20, abort_early True → False" in c.value for c in at.caption)
    at.button(key="explore.larger-budget").click().run()
    assert not at.exception, at.exception
    again = at.session_state[RUNS]["explore"].report
    assert runs(at) == 2 and again.params["steps"] == 20 and again.params["abort_early"] is False
    assert again.params["initial_const"] == 1e-3  # the other settings stay


def test_compare_shares_a_setting_only_where_the_attacks_start_alike():
    """On EfficientNet (CPU) C&W starts from c = 0.1 and StrAttack without early abort: a shared widget would give
    every attack the first one's value, so those stay per attack there; on MNIST the budget is shared."""
    from ui.forms import shared_params

    lineup = ["cw", "ead", "strattack"]
    on_mnist = {p.name for p in shared_params(lineup, "mnist")}
    on_imagenet = {p.name for p in shared_params(lineup, "imagenet")}
    assert {"binary_search_steps", "steps", "initial_const", "abort_early", "kappa"} <= on_mnist
    assert {"steps", "kappa"} <= on_imagenet and not {"initial_const", "abort_early"} & on_imagenet


def test_upload_of_a_non_image_file_shows_one_error_and_changes_nothing():
    at = start()
    title = at.session_state[image_key("mnist")]
    at.file_uploader[0].upload("notes.txt", b"this is not an image", "text/plain").run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "The uploaded file is not an image that can be read (use PNG, JPEG, WebP, GIF, BMP or TIFF)."]
    assert at.session_state[image_key("mnist")] == title
    assert any(m.value == "**digit 0 (#0)**" for m in at.markdown)  # the gallery image is still the one in use


def test_upload_of_a_large_colour_image_is_converted_with_notes():
    at = start()
    rgb = (np.random.default_rng(0).random((900, 1200, 3)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    at.file_uploader[0].upload("photo.png", buffer.getvalue(), "image/png").run()
    assert not at.exception and not at.error
    notes = " ".join(c.value for c in at.caption)
    assert "Converted RGB to grayscale" in notes and "Downscaled from 1200×900 to 28×28" in notes
    assert any(m.value == "**upload: photo.png**" for m in at.markdown)


def test_grayscale_upload_into_the_rgb_model_is_converted_with_a_note():
    at = start()
    at.session_state[MODEL_KEY] = "efficientnet-lite0"  # (see the sidebar note in the weights test below)
    at.run()
    assert not at.exception and not at.error
    gray = (np.random.default_rng(1).random((64, 64)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(gray, mode="L").save(buffer, format="PNG")
    at.session_state[MODEL_KEY] = "efficientnet-lite0"
    at.file_uploader[0].upload("gray.png", buffer.getvalue(), "image/png").run()
    assert not at.exception and not at.error
    notes = " ".join(c.value for c in at.caption)
    assert "Converted grayscale to RGB for a 3-channel model." in notes and "Upscaled from 64×64" in notes
    assert "No label: the model's prediction is taken as the true class t₀." in notes


def test_a_model_without_weights_shows_its_sentence_and_the_rest_works(monkeypatch):
    def missing():
        raise models.ModelUnavailable("The resnet50 weights cannot be downloaded here: place them in the cache.")

    monkeypatch.setitem(models.REGISTRY, "resnet50", dataclasses.replace(models.REGISTRY["resnet50"], build=missing))
    resources.forget_models()
    at = start()
    assert at.sidebar.selectbox(key=MODEL_KEY).value == "mnist-cnn"
    # AppTest drops the sidebar's elements from its tree after the first run of an st.navigation app (the browser
    # test covers the real sidebar), so the choice goes in through session state, as the widget would put it.
    at.session_state[MODEL_KEY] = "resnet50"
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == ["The resnet50 weights cannot be downloaded here: place them in the cache."]
    at.session_state[MODEL_KEY] = "resnet50"  # (again: see above)
    at.switch_page("app_pages/sweep.py").run()
    assert [e.value for e in at.error] == ["The resnet50 weights cannot be downloaded here: place them in the cache."]
    at.session_state[MODEL_KEY] = "resnet50"
    at.switch_page("app_pages/teach.py").run()
    assert not at.exception and len(at.latex) >= 2  # the parts that need no model still work
    at.session_state[MODEL_KEY] = "mnist-cnn"
    at.switch_page("app_pages/explore.py").run()
    assert not at.exception and not at.error
    resources.forget_models()


# ------------------------------------------------------------------------------------------------ Compare

def test_compare_runs_four_attacks_and_renders_aligned_columns():
    at = start("compare")
    submit(at)
    assert runs(at) == 4
    assert not at.error, [e.value for e in at.error]
    done = at.session_state[RUNS]["compare"].runs
    assert [r.title for r in done] == ["C&W L2", "EAD-FISTA · EN rule", "EAD-FISTA · L1 rule", "StrAttack"]
    assert [r.report.params["decision_rule"] for r in done[1:3]] == ["en", "l1"]
    assert {r.report.params["steps"] for r in done} == {40}  # the shared budget reached every attack
    table = at.dataframe[0].value
    assert list(table["Attack"]) == [r.title for r in done] and (table["ℓ1"] > 0).any()
    assert len(at.get("plotly_chart")) == 3 * 4 + 1  # δ, groups, δ∩B_ASM per attack + the IS-vs-ν curves
    before = runs(at)
    at.slider(key=widget_key("compare", "nu")).set_value(50).run()
    assert runs(at) == before and at.session_state[RUNS]["compare"].runs is done


def test_compare_upload_of_a_non_image_shows_the_error():
    at = start("compare")
    at.file_uploader[0].upload("data.csv", b"a,b\n1,2\n", "text/csv").run()
    assert not at.exception
    assert len(at.error) == 1 and "not an image" in at.error[0].value


# ------------------------------------------------------------------------------------------------ Sweep

def test_sweep_beta_runs_both_rules_for_each_value():
    at = start("sweep")
    submit(at)
    assert runs(at) == 4  # 2 values × 2 rules
    assert not at.error, [e.value for e in at.error]
    sweep = at.session_state[RUNS]["sweep"]
    assert [(r.value, r.series) for r in sweep.rows] == [(1e-3, "en"), (1e-3, "l1"), (1e-2, "en"), (1e-2, "l1")]
    assert len(at.get("plotly_chart")) == 1
    strip = [img for img in at.image if len(img.value) == 2]
    assert len(strip) >= 3  # the originals and one row per value
    at.segmented_control(key=widget_key("sweep", "strip_series")).set_value("l1").run()
    assert runs(at) == 4 and not at.exception


def test_sweep_a_budget_parameter_and_strattacks_stride():
    """Any numeric parameter: C&W's iterations (10 and 20), then StrAttack's stride (1 and 2), two digits each."""
    at = start("sweep", **{attack_key("sweep"): "cw", sweep_axis_key("mnist", "cw"): "steps",
                           sweep_key("mnist", "cw", "steps", "from"): 10, sweep_key("mnist", "cw", "steps", "to"): 20,
                           sweep_key("mnist", "cw", "steps", "count"): 2,
                           param_key("sweep", "mnist", "cw", "binary_search_steps"): 1,
                           param_key("sweep", "mnist", "cw", "initial_const"): 10.0})
    submit(at)
    assert not at.error, [e.value for e in at.error]
    sweep = at.session_state[RUNS]["sweep"]
    assert sweep.param == "steps" and [r.value for r in sweep.rows] == [10, 20] and runs(at) == 2
    assert [r.result.params["steps"] for r in sweep.rows] == [10, 20]
    assert [r.result.original.shape[0] for r in sweep.rows] == [2, 2]

    for key, value in {attack_key("sweep"): "strattack", sweep_axis_key("mnist", "strattack"): "stride",
                       sweep_key("mnist", "strattack", "stride", "from"): 1,
                       sweep_key("mnist", "strattack", "stride", "to"): 2,
                       sweep_key("mnist", "strattack", "stride", "count"): 2,
                       param_key("sweep", "mnist", "strattack", "group_size"): 2,
                       param_key("sweep", "mnist", "strattack", "binary_search_steps"): 1,
                       param_key("sweep", "mnist", "strattack", "steps"): 20}.items():
        at.session_state[key] = value
    at.run()
    submit(at)
    assert not at.error, [e.value for e in at.error]
    sweep = at.session_state[RUNS]["sweep"]
    assert sweep.attack == "strattack" and sweep.param == "stride" and runs(at) == 4
    assert [(r.result.params["group_size"], r.result.params["stride"]) for r in sweep.rows] == [(2, 1), (2, 2)]
    assert len(at.get("plotly_chart")) == 1


def test_sweep_with_an_empty_range_says_so():
    at = start("sweep", **{sweep_key("mnist", "ead", "beta", "from"): 0.1, sweep_key("mnist", "ead", "beta", "to"):
                           0.01})
    submit(at)
    assert runs(at) == 0
    assert [e.value for e in at.error] == ["β · ℓ1 weight: 'from' (0.1) must not be above 'to' (0.01)."]


# ------------------------------------------------------------------------------------------------ Teach

def test_teach_worked_examples_toy_and_real_image():
    at = start("teach")
    text = " ".join(m.value for m in at.markdown)
    assert "new pixel 0.540" in text  # 0.57 → 0.54 with threshold 0.03 around 0.50
    table = at.dataframe[0].value
    assert list(table["‖δ‖₁"].round(3)) == [0.4, 0.2] and list(table["‖δ‖₂²"].round(3)) == [0.04, 0.04]
    assert len(at.latex) >= 2
    at.slider(key=widget_key("teach", "lambda")).set_value(0.1).run()
    assert "new pixel 0.500" in " ".join(m.value for m in at.markdown)  # inside the dead zone
    at.slider(key=widget_key("teach", "toy_beta")).set_value(0.5).run()
    assert runs(at) == 0 and not at.exception  # the toy problem is not an attack on an image
    submit(at)
    assert runs(at) == 3
    curves = at.session_state[RUNS]["teach"].curves
    assert set(curves) == {"ead-ista", "ead", "cov"} and all(len(c["objective"]) == 25 for c in curves.values())


# ------------------------------------------------------------------------------------------------ Stop

@pytest.mark.parametrize("control", ["StopException", "RerunException"])
def test_a_click_during_an_attack_stops_it_keeps_the_best_and_reruns(control, mnist_model):
    """A click while the script runs arrives at the callback's next st.* call: as a StopException with fast reruns
    (Streamlit's default: the new run starts at once in another thread), else as a RerunException."""
    import streamlit as st
    from streamlit.runtime.scriptrunner_utils import exceptions

    from advlens.images import load_image

    image = load_image("mnist:0", models.REGISTRY["mnist-cnn"])
    calls = {"n": 0}

    class Bar:
        def progress(self, *args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 3:
                raise exceptions.StopException() if control == "StopException" else exceptions.RerunException(None)

    runner = live.LiveRunner(st.container(), key="test", frames=False, progress_every_s=0.0)
    store: dict = {}
    with pytest.raises(getattr(exceptions, control)):
        with runner:
            runner.bar = Bar()
            out = runner.run("ead", mnist_model, image.tensor, torch.tensor([0]), torch.tensor([9]),
                             dict(binary_search_steps=1, steps=200, initial_const=10.0), title="EAD")
            assert out is not None
            result, trace = out
            assert result.stopped and trace.stopped_by_user
            assert result.iterations == 3 < 200
            store["run"] = result
            assert not runner.busy.is_set()  # the next run waits for this one (live.await_previous_run)
            assert runner.run("ead", mnist_model, image.tensor, torch.tensor([0]), torch.tensor([9]),
                              dict(steps=5), title="later") is None  # nothing else runs after a stop
    assert runner.busy.is_set() and store["run"].stopped


# ------------------------------------------------------------------------------------------------ Evaluate

def click(at: AppTest, label: str) -> AppTest:
    next(b for b in at.button if b.label == label).click().run()
    assert not at.exception, at.exception
    return at


def case_table_shown(at: AppTest):
    return next(d.value for d in at.dataframe if "case" in d.value.columns)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> tuple[AppTest, Path]:
    """The Evaluate page after a two-image evaluation (every target of mnist:0 and mnist:1): I-FGM at ε = 0.2 with
    its own 10 steps, and EAD on a custom budget reduced to 1 × 30 iterations. About two seconds on a CPU."""
    from ui import evaluation

    folder = tmp_path_factory.mktemp("evaluate") / "two digits"
    at = start("evaluate", **{widget_key("evaluate", "attacks"): ["ifgm", "ead"],
                              widget_key("evaluate", "budget"): "custom",
                              param_key("evaluate", "mnist", "ifgm", "epsilon"): 0.2,
                              param_key("evaluate", "mnist", "ead", "binary_search_steps"): 1,
                              param_key("evaluate", "mnist", "ead", "steps"): 30,
                              param_key("evaluate", "mnist", "ead", "initial_const"): 10.0,
                              widget_key("evaluate", "mnist.images"): "mnist:0-1",
                              widget_key("evaluate", "out"): str(folder)})
    click(at, "Start evaluation")
    assert not at.error, [e.value for e in at.error]
    job = evaluation.job_for(folder)
    assert job is not None and job.finished.wait(TIMEOUT)
    at.run()  # what the progress fragment's rerun does once the job has finished
    assert not at.exception, at.exception
    return at, folder


def test_evaluate_runs_two_images_and_shows_best_average_worst(evaluated):
    at, folder = evaluated
    assert not at.error, [e.value for e in at.error]
    assert len(at.success) == 1 and at.success[0].value.startswith("Finished: 36 new rows (0 already stored) in ")
    table = case_table_shown(at)
    assert list(table["attack"]) == ["EAD-FISTA"] * 3 + ["I-FGM"] * 3
    assert list(table["case"]) == ["best", "average", "worst"] * 2
    assert (table["n"] == 2).all() and table["ASR %"].between(0, 100).all()
    for attack in ("EAD-FISTA", "I-FGM"):
        asr = list(table.loc[table["attack"] == attack, "ASR %"])
        assert asr[0] >= asr[1] >= asr[2]  # the best case succeeds wherever any target does
    ifgm = table.loc[table["attack"] == "I-FGM"].iloc[0]
    assert ifgm["ASR %"] == 100 and ifgm["ℓ∞"] == pytest.approx(0.2, abs=1e-5)  # every success sits on the ε-ball
    assert set(table["budget"]) == {"custom · 1 × 30 iterations", "its own · 10 steps"}
    assert table.loc[table["attack"] == "EAD-FISTA", "ℓ1"].iloc[0] > 0
    assert len(at.get("plotly_chart")) == 1  # ASR vs distortion; no sweep, so the swept-parameter panel says so
    assert any("No parameter was swept" in i.value for i in at.info)
    stored = next(d.value for d in at.dataframe if "#" in d.value.columns)
    assert len(stored) == 2 * 9 * 2 and set(stored["image"]) == {"mnist:0", "mnist:1"}
    assert at.query_params["results"] == str(folder.resolve())  # a reload of the page finds the folder again


def test_evaluate_results_survive_other_pages_and_a_reload(evaluated):
    at, folder = evaluated
    before = case_table_shown(at)
    at.switch_page("app_pages/sweep.py").run()
    at.switch_page("app_pages/evaluate.py").run()
    assert not at.exception and case_table_shown(at).equals(before)
    reloaded = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    reloaded.query_params["results"] = str(folder.resolve())
    reloaded.run()
    reloaded.switch_page("app_pages/evaluate.py").run()
    assert not reloaded.exception and not reloaded.error
    assert case_table_shown(reloaded).equals(before)


def test_evaluate_opens_an_existing_results_folder(evaluated):
    at, folder = evaluated
    fresh = start("evaluate", **{widget_key("evaluate", "open"): str(folder)})
    assert not fresh.dataframe  # nothing shown before the folder is opened
    click(fresh, "Open")
    assert not fresh.error, [e.value for e in fresh.error]
    assert case_table_shown(fresh).equals(case_table_shown(at))
    assert fresh.query_params["results"] == str(folder.resolve())


def test_evaluate_row_opens_in_explore_as_the_stored_result(evaluated):
    """The row's image, attack, parameters and stored perturbation become Explore's result: no attack runs."""
    from advlens.evaluation.store import ResultStore

    at, folder = evaluated
    row = at.selectbox(key="evaluate.row").value
    with ResultStore(folder, create=False) as store:
        report, delta = store.report(row), store.perturbation(row)
    assert report["success"]  # the first successful row is the one offered
    before = runs(at)
    click(at, "Open in Explore")
    assert runs(at) == before and not at.error, [e.value for e in at.error]
    assert any("Opened from the evaluation in" in c.value and f"row #{row}" in c.value for c in at.caption)
    assert "Success" in at.success[0].value
    run = at.session_state[RUNS]["explore"]
    assert run.report.image == report["image"] and run.report.params == report["params"]
    assert run.report.target == report["target"] and float(metric(at, "ℓ1")) == pytest.approx(report["l1"], rel=1e-3)
    assert torch.allclose(run.delta[0], torch.from_numpy(delta), atol=1e-6)
    assert at.session_state[attack_key("explore")] == report["attack"]
    assert at.session_state[param_key("explore", "mnist", report["attack"], "steps")] == report["params"]["steps"]
    assert at.session_state[image_key("mnist")] == report["image"]
    assert run.scores is not None  # the ASM and CAM panels were computed for the stored result


def test_evaluate_bad_input_is_one_sentence_and_writes_nothing(tmp_path):
    from ui import evaluation

    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    at = start("evaluate", **{widget_key("evaluate", "attacks"): ["ifgm"],
                              param_key("evaluate", "mnist", "ifgm", "epsilon"): 0.2,
                              widget_key("evaluate", "out"): str(a_file)})
    click(at, "Start evaluation")
    assert [e.value for e in at.error] == [f"The results folder {a_file} is a file, not a folder."]
    assert evaluation.job_for(a_file) is None and a_file.read_text() == "not a folder"

    folder = tmp_path / "new"
    at.session_state[widget_key("evaluate", "out")] = str(folder)
    at.session_state[widget_key("evaluate", "mnist.images")] = "mnist:5-1"
    click(at, "Start evaluation")
    assert [e.value for e in at.error] == ["The image range 'mnist:5-1' is empty: write it low-high, e.g. mnist:0-99."]
    assert evaluation.job_for(folder) is None and not folder.exists()

    at.session_state[widget_key("evaluate", "mnist.images")] = "mnist:0-1"
    at.session_state[widget_key("evaluate", "sweep")] = "epsilon"
    click(at, "Start evaluation")
    assert [e.value for e in at.error] == ["Give the values of epsilon to sweep, e.g. 0, 10, 20 (or choose no sweep)."]
    assert not folder.exists()

    at.session_state[widget_key("evaluate", "open")] = str(tmp_path / "nothing here")
    click(at, "Open")
    assert [e.value for e in at.error] == [f"There are no results in {tmp_path / 'nothing here'} (no results.db)."]
    assert not at.dataframe and runs(at) == 0


def test_evaluate_stop_keeps_the_stored_rows_and_a_restart_resumes(tmp_path):
    """Three digits (the page's "3": mnist:0-2) under EAD at 1 × 100 iterations without early abort: a chunk (one
    digit's nine targets) takes seconds on a CPU and a fifth of a second on a GPU, so Stop, pressed right after the
    start, lands before the last of the three chunks ends."""
    from advlens.evaluation.store import ResultStore
    from ui import evaluation

    folder = tmp_path / "stopped"
    at = start("evaluate", **{widget_key("evaluate", "attacks"): ["ead"], widget_key("evaluate", "budget"): "custom",
                              param_key("evaluate", "mnist", "ead", "binary_search_steps"): 1,
                              param_key("evaluate", "mnist", "ead", "steps"): 100,
                              param_key("evaluate", "mnist", "ead", "abort_early"): False,
                              widget_key("evaluate", "mnist.images"): "3", widget_key("evaluate", "out"): str(folder)})
    click(at, "Start evaluation")
    job = evaluation.job_for(folder)
    at.button(key="evaluate.stop").click().run()
    assert job.finished.wait(TIMEOUT) and job.stopped
    at.run()
    assert not at.exception and not at.error
    assert at.warning[0].value.startswith(f"Stopped after {job.done} of 27 rows.")
    with ResultStore(folder, create=False) as store:
        assert store.count() == job.done < 27  # every finished chunk is stored
    click(at, "Start evaluation")  # the same evaluation again: only what is missing runs
    again = evaluation.job_for(folder)
    assert again is not job and again.finished.wait(TIMEOUT)
    at.run()
    assert at.success[0].value.startswith(f"Finished: {27 - job.done} new rows ({job.done} already stored)")
    assert (case_table_shown(at)["n"] == 3).all()


def test_evaluate_sweep_draws_the_swept_parameter_curves(tmp_path):
    """I-FGM at ε = 0.1 and 0.3 on one digit, every target: a fraction of a second."""
    from ui import evaluation

    folder = tmp_path / "sweep"
    at = start("evaluate", **{widget_key("evaluate", "attacks"): ["ifgm"], widget_key("evaluate", "sweep"): "epsilon",
                              widget_key("evaluate", "sweep_values"): "0.1, 0.3",
                              widget_key("evaluate", "mnist.images"): "mnist:3", widget_key("evaluate", "out"): str(folder)})
    click(at, "Start evaluation")
    assert evaluation.job_for(folder).finished.wait(TIMEOUT)
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    table = case_table_shown(at)
    assert list(table["swept"]) == ["epsilon = 0.1"] * 3 + ["epsilon = 0.3"] * 3 and (table["n"] == 1).all()
    best = list(table.loc[table["case"] == "best", "ASR %"])
    assert best[0] <= best[1]  # a larger ε-ball can only help I-FGM
    assert len(at.get("plotly_chart")) == 2  # ASR vs distortion, and the metrics against ε
    assert "--sweep epsilon=0.1,0.3" in " ".join(c.value for c in at.code)
