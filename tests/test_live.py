"""Live runs (issue 11): progress with an ETA, a run interrupted by a click or a Stop keeps its best result and says
why, early abort said in words. (The same in a real browser, and the Run button in view, is in test_browser.py,
which shares one server among the browser tests.)

Streamlit interrupts a running script at its next ``st.*`` call when the browser asks for a rerun or a stop; here
the attack's own ``observe`` hook makes that request through the script's real ``ScriptRequests``, so the exception
arrives exactly as a click's would. Budgets are reduced (one digit, a few hundred iterations at most).
"""

from __future__ import annotations

import re
from pathlib import Path

from streamlit.testing.v1 import AppTest

from ui import live
from ui.state import RUNS, image_key

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 240


def interrupted_script(request: str, key: str, images: int, count: int, abort_early: bool) -> None:
    """A page as the app's are written: wait for an interrupted run, show what is stored, or run live. ``request``
    ("stop" or "rerun") is what the browser asks of the script at iteration 40 of the second attack (or the first)."""
    import streamlit as st
    import torch
    from streamlit.runtime.scriptrunner_utils.script_requests import RerunData
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    from advlens.images import load_image
    from advlens.models import get_spec, load_model
    from ui import live, state

    live.await_previous_run()
    store = state.runs()
    if key in store:
        kept = store[key]
        st.markdown(f"kept {len(kept)} results; last: {kept[-1][0].iterations} iterations, "
                    f"stopped {kept[-1][0].stopped}, reason {kept[-1][1].stop_reason}")
        st.markdown(f"note: {live.stop_note(key)}")
        st.stop()
    spec = get_spec("mnist-cnn")
    x = torch.cat([load_image(f"mnist:{i}", spec).tensor for i in range(images)])
    labels = torch.tensor([load_image(f"mnist:{i}", spec).label for i in range(images)])
    targets = (labels + 1) % 10
    seen = {"attacks": 0}

    def observe(s) -> None:
        seen["attacks"] += s.iteration == 1
        if seen["attacks"] == min(count, 2) and s.iteration == 40:
            requests = get_script_run_ctx().script_requests
            if request == "stop":  # a statement: Streamlit's magic would st.write a bare expression's value
                requests.request_stop()
            else:
                requests.request_rerun(RerunData())

    done: list = []
    store[key] = done
    with live.LiveRunner(st.container(), key=key, count=count, frames=images > 1, progress_every_s=0.0) as runner:
        for k in range(count):
            out = runner.run("ead", load_model("mnist-cnn"), x, labels, targets,
                             dict(binary_search_steps=1, steps=60 if k == 0 and count > 1 else 400, initial_const=10.0,
                                  abort_early=abort_early), title=f"EAD run {k + 1}", observe=observe)
            if out is not None:
                done.append(out)


def run_script(request: str, key: str, *, images: int = 1, count: int = 1, abort_early: bool = False) -> AppTest:
    at = AppTest.from_function(interrupted_script, default_timeout=TIMEOUT,
                               kwargs=dict(request=request, key=key, images=images, count=count,
                                           abort_early=abort_early))
    return at.run()


def test_a_stop_leaves_progress_with_an_eta_and_the_next_run_shows_the_kept_result_and_why():
    """Our Stop button: the StopException ends the script with the last progress line on screen (elapsed, iterations
    done of total, rate, time left); the click's own run then shows the kept result, "Stopped by you", once."""
    at = run_script("stop", "single")
    assert not at.exception, at.exception
    text = at.progress[0].text
    assert re.search(r"^EAD run 1 · [\d.]+ s elapsed · c-step 1 of 1 · iteration (\d+) of 400 · [\d.,]+ it/s · "
                     r"about [\d.]+ s left", text), text
    assert int(re.search(r"iteration (\d+) of", text).group(1)) == 39  # the line before the interrupted update
    result, trace = at.session_state[RUNS]["single"][0]
    assert result.stopped and 40 <= result.iterations < 400 and trace.stop_reason == "page"

    at.button(key="stop.single").click().run()  # the click that made Streamlit stop the script
    assert not at.exception, at.exception
    assert len(at.progress) == 0  # no live-looking box left
    assert f"last: {result.iterations} iterations, stopped True, reason you" in at.markdown[0].value
    assert at.markdown[1].value == f"note: {live.STOP_WORDS['you']}"
    assert [t.value for t in at.toast] == [f"EAD run 1: {live.STOP_WORDS['you']}"]
    assert not at.run().toast  # said once


def test_a_click_elsewhere_keeps_the_whole_batch_progress_and_says_the_page_changed():
    """A click on another control (a RerunException where fast reruns are off; the StopException of fast reruns is
    the first test's) during the second attack of three on a batch: the first result and the cut-short second are
    kept, the third never starts, and the rerun says the page was changed."""
    at = run_script("rerun", "batch", images=3, count=3, abort_early=True)
    assert not at.exception, at.exception
    done = at.session_state[RUNS]["batch"]
    assert len(done) == 2 and not done[0][0].stopped and done[1][0].stopped
    assert done[1][0].adversarial.shape[0] == 3
    assert "last: " in at.markdown[0].value and "reason page" in at.markdown[0].value
    assert at.markdown[1].value == f"note: {live.STOP_WORDS['page']}"
    assert [t.value for t in at.toast] == [f"2/3 · EAD run 2: {live.STOP_WORDS['page']}"]
    assert len(at.progress) == 0


def test_progress_of_a_batch_counts_the_whole_run_and_every_image():
    """The line a long Sweep shows: its place in the whole run, the whole run's time left, and the batch's means
    and found count rather than the first image's."""
    at = run_script("stop", "sweep-like", images=3, count=3, abort_early=True)
    assert not at.exception, at.exception
    text = at.progress[0].text
    assert re.search(r"^2/3 · EAD run 2 · c-step 1 of 1 · iteration 39 of at most 400 · [\d.,]+ it/s · all 3: "
                     r"[\d.]+ s elapsed, about [\d.]+ s left · mean ℓ1 = [\d.e-]+ · mean ℓ2 = [\d.e-]+ · "
                     r"(adversarial found for [0-3]/3|adversarial found ✓|searching)$", text), text
    assert [len(row.proto.imgs) for row in at.image] == [3, 3]  # three iterates and three δ, not only image 0


def headline_script(params: dict) -> None:
    """Explore's path without its interpretability panels: a live EAD on digit 0, the stored run, its headline."""
    import streamlit as st
    import torch

    from ui import analysis, live, panels, pickers, resources, state

    choice = resources.current_model()
    model = resources.require_model(choice)
    image = resources.load_ref("mnist:0", choice.name)
    with live.LiveRunner(st.container(), key="explore") as runner:
        out = runner.run("ead", model, image.tensor, torch.tensor([image.label]), torch.tensor([6]), params,
                         title="EAD-FISTA")
    assert out is not None
    run = analysis.make_run("ead", "EAD-FISTA", choice, pickers.Picked(image, "digit 0", image.ref, image.label), *out)
    state.runs()["explore"] = run
    panels.headline(run)


def headline(**params) -> AppTest:
    at = AppTest.from_function(headline_script, default_timeout=TIMEOUT, kwargs=dict(params=params)).run()
    assert not at.exception, at.exception
    return at


def test_the_result_says_when_early_abort_cut_values_of_c_short():
    """Issue 11: "early abort silently turns 30 iterations into 4". 2 values of c × 300 iterations from c = 10."""
    at = headline(binary_search_steps=2, steps=300, initial_const=10.0, abort_early=True)
    run = at.session_state[RUNS]["explore"]
    starts, consts = run.trace.step_starts, run.trace.step_consts
    ran = [end - start for start, end in zip(starts, starts[1:] + [run.report.iterations])]
    assert len(ran) == 2 and len(consts) == 2 and run.report.iterations < 600, ran  # abort did cut this run short
    note = next(c.value for c in at.caption if "Early abort" in c.value)
    short = [(n, c) for n, c in zip(ran, consts) if n < 300]
    listed = ", ".join(f"{n} of 300 iterations at c = {c:.3g}" for n, c in short)
    assert (f"Early abort ended {len(short)} of 2 values of c early: {listed} ({run.report.iterations:,} of at most "
            f"600 iterations in all).") in note, note


def test_without_early_abort_nothing_is_said():
    at = headline(binary_search_steps=2, steps=40, initial_const=10.0, abort_early=False)
    assert at.session_state[RUNS]["explore"].report.iterations == 80
    assert at.caption and not [c.value for c in at.caption if "Early abort" in c.value]


# ------------------------------------------------------------------------------------------------ in a browser

def test_a_failed_uploads_error_goes_once_a_gallery_image_is_chosen():
    """Issue 11: a failed upload's error stayed above every later result. It stays while the bad file is the last
    thing chosen, and goes once a gallery image is picked (the bad file may still sit in the uploader)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.file_uploader(key="upload.explore.mnist").set_value(("notes.png", b"not an image at all", "image/png")).run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "image" in errors[0], errors  # the loader's one sentence
    at.run()  # any other rerun: the reason is still there
    assert [e.value for e in at.error] == errors
    at.selectbox(key=image_key("mnist")).set_value("mnist:3").run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert "True class **3**" in [m.value for m in at.markdown]
