"""Defenses & transfer: craft on one model (or the mean logits of several), judge on another, and watch transfer
rise with κ (Fig. 4 of the EAD paper); the feature-squeezing detector's squeezed inputs and scores."""

from __future__ import annotations

import time

import streamlit as st

from ui import chrome, defenses, progress_words, state

PAGE = "defenses"

chrome.page_header("Defenses & transfer", "Examples crafted on one network with confidence κ, sent to another: "
                                          "the defensively distilled net (T = 100) resists κ = 0 but not a large κ; "
                                          "Madry's adversarially trained net resists far more. Below, feature "
                                          "squeezing: the squeezed inputs and the detection score against its "
                                          "5%-false-positive threshold.")

models = defenses.mnist_models()
chrome.section("Transfer", "EAD (EN rule) and C&W on a handful of held-out digits with a fixed random target each")
with st.form(f"{PAGE}.form"):
    cols = st.columns(2)
    src = cols[0].multiselect("Craft on (several: the mean of their logits)", models,
                              key=state.page_widget(PAGE, "sources", ["mnist-cnn"]))
    default_target = "mnist-cnn-distilled" if "mnist-cnn-distilled" in models else models[0]
    tgt = cols[1].selectbox("Judge on", models,
                            key=state.page_widget(PAGE, "target", default_target))
    cols = st.columns(3)
    top = cols[0].slider("Largest κ", 0, 60, step=5, key=state.page_widget(PAGE, "kmax", 30))
    step = cols[1].select_slider("κ step", [5, 10, 15, 20, 30], key=state.page_widget(PAGE, "kstep", 10))
    count = cols[2].slider("Digits", 1, 10, key=state.page_widget(PAGE, "count", 5))
    cols = st.columns(3)
    bsteps = cols[0].number_input("Binary-search steps", 1, 9,
                                  key=state.page_widget(PAGE, "bsteps", defenses.DEFAULT_BUDGET["binary_search_steps"]))
    iters = cols[1].number_input("Iterations per step", 10, 1000, step=10,
                                 key=state.page_widget(PAGE, "iters", defenses.DEFAULT_BUDGET["steps"]))
    const = cols[2].number_input("Initial c", 1e-3, 100.0, format="%.3f",
                                 key=state.page_widget(PAGE, "const", defenses.DEFAULT_BUDGET["initial_const"]))
    go = st.form_submit_button("Run transfer", type="primary")

if go:
    from advlens.crafting import check_compatible
    from advlens.models import ModelUnavailable

    kappas = [float(k) for k in range(0, int(top) + 1, int(step))]
    try:
        if not src:
            raise ValueError("Choose at least one model to craft on.")
        check_compatible(src, tgt)
        bar, started = st.progress(0.0), time.perf_counter()
        budget = {"binary_search_steps": int(bsteps), "steps": int(iters), "initial_const": float(const)}
        run = defenses.run_transfer(src, tgt, kappas, int(count), budget, on_step=lambda n, total, what: bar.progress(
            n / total, text=progress_words.steps_text(what, n, total, started, "attacks")))
        bar.empty()
        state.runs()[PAGE] = run
    except (ValueError, ModelUnavailable) as err:
        chrome.show_error(str(err).splitlines()[0])

run = state.runs().get(PAGE)
if isinstance(run, defenses.TransferRun):
    chrome.plot(defenses.transfer_figure(run), f"{PAGE}.curve")
    st.dataframe([{"κ": k, **{f"{label} transfer %": run.rates(label)[0][i] for label, _, _ in defenses.ATTACKS},
                   **{f"{label} white-box %": run.rates(label)[1][i] for label, _, _ in defenses.ATTACKS}}
                  for i, k in enumerate(run.kappas)], hide_index=True, width="stretch")
    shown = st.select_slider("κ of the examples below", run.kappas)
    from interpret.render import crisp

    for label, _, _ in defenses.ATTACKS:
        adv, ok, src_ok = run.results[(label, float(shown))]
        st.caption(f"{label}, κ = {shown:g}: ✓ fools {run.target}, ✗ does not (source white-box success in brackets)")
        st.image([crisp(a, 84) for a in adv], width=84,
                 caption=[f"{'✓' if o else '✗'} ({'✓' if s else '✗'})" for o, s in zip(ok.tolist(), src_ok.tolist())])
else:
    st.info("No transfer run yet: pick the models and κ range, then press **Run transfer**.",
            icon=":material/arrow_upward:")

chrome.section("Feature squeezing", "Xu et al.'s joint detector for MNIST: 1-bit depth and 2×2 median smoothing")
det_model = st.selectbox("Detector around", models, key=state.page_widget(PAGE, "det_model", "mnist-cnn"))
squeezers = st.text_input("Squeezers", key=state.page_widget(
    PAGE, "squeezers", "bit_depth_1,median_filter_2_2"))
try:
    det = defenses.detector(det_model, squeezers)
except ValueError as err:
    chrome.show_error(str(err).splitlines()[0])
    det = None
if det is not None:
    from interpret.render import crisp

    x, _, _ = defenses.digits(10)
    adv = None
    if isinstance(run, defenses.TransferRun):
        label0 = defenses.ATTACKS[0][0]
        adv = run.results[(label0, float(run.kappas[-1]))][0]
    pick = x[:1] if adv is None else adv[:1]
    what = "held-out digit" if adv is None else f"{defenses.ATTACKS[0][0]} example at κ = {run.kappas[-1]:g}"
    views = {"input": pick[0], **{n: v[0] for n, v in det.squeezed(pick).items()}}
    st.image([crisp(v, 96) for v in views.values()], width=96, caption=list(views))
    st.caption(f"The {what} and its squeezed copies.")
    legit = det.score(x)
    scores = det.score(adv) if adv is not None else None
    chrome.plot(defenses.detection_figure(legit, scores, det.threshold), f"{PAGE}.detect")
    st.caption(f"Threshold {det.threshold:.4f}: the 95th percentile of the scores of held-out digits mnist:500–999 "
               "(the digits shown are mnist:0–9, not used to fit it)."
               + ("" if scores is None else f" {int((scores > det.threshold).sum())}/{len(scores)} adversarial "
                                            "examples detected."))
