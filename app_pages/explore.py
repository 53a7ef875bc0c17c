"""Explore: attack one image with any registered attack, watch it live, then take the result apart."""

from __future__ import annotations

import streamlit as st
import torch

from ui import all_targets, analysis, chrome, figures, forms, guide, live, panels, paper_presets, pickers, resources, state
from ui.colours import short_label

PAGE = "explore"

chrome.page_header("Explore", "Pick an image and an attack, press **Run attack** and watch the perturbation form; "
                              "then take the result apart. Parameters only apply when you press the button; the "
                              "display controls above the results change the view without re-running anything.")
paper_presets.note(PAGE)

choice = resources.current_model()
usable = not resources.known_failure(choice)
if usable:
    left, right = st.columns([2, 3], gap="large")
    with left:
        chrome.section("Image")
        picked = pickers.image_picker(PAGE, choice)
    with right:
        chrome.section("Attack")
        attack = forms.attack_choice(PAGE)
        request = forms.attack_form(PAGE, attack, choice, picked.true_class) if picked is not None else None
    live_area = st.container()
    model = resources.require_model(choice)
    if model is not None and picked is not None:
        pickers.show_reading(picked, choice)
        if request is not None:
            target = pickers.resolve_target(request["target"], picked)
            entry_title = short_label(attack)
            store = state.runs()
            with live.LiveRunner(live_area, key=PAGE) as runner:
                out = runner.run(attack, model, picked.image.tensor, torch.tensor([picked.true_class]),
                                 None if target is None else torch.tensor([target]), request["params"],
                                 title=entry_title)
                if out is not None:
                    run = analysis.make_run(attack, entry_title, choice, picked, *out)
                    store[PAGE] = run  # stored before the analysis, so an interruption cannot lose it
                    if not runner.stopped:  # after a Stop the next run computes them
                        analysis.ensure_scores(run, choice)


@st.fragment
def results(run: state.Run) -> None:
    """Everything drawn from one stored result; the knobs here rerun only this fragment."""
    chrome.section("Result")
    panels.headline(run)
    if not (run.report.success or run.report.stopped or run.source):
        from advlens.models import get_spec

        forms.offer_larger_budget(PAGE, get_spec(run.model).dataset, run.attack, run.report.params)
    if run.source:
        st.caption(f":material/table_chart: {run.source}")
    knobs = panels.display_knobs(PAGE, channels=run.result.original.shape[1])
    nu, cmap, opacity = knobs["nu"], knobs["cmap"], knobs["opacity"]
    panels.metric_cards(run, nu)

    r, names = run.report, run.class_names
    cols = st.columns(4, gap="medium")
    with cols[0]:
        st.markdown("**Original x₀**")
        chrome.image_panel(run.result.original[0], f"model: {names[r.top5_before[0][0]]} ({r.top5_before[0][1]:.1%})")
    with cols[1]:
        st.markdown("**Adversarial x₀ + δ**")
        chrome.image_panel(run.result.adversarial[0], f"model: {names[r.top5_after[0][0]]} ({r.top5_after[0][1]:.1%})")
    with cols[2]:
        st.markdown("**Perturbation δ**", help="Change of each pixel on the [0, 1] intensity scale. Grayscale, or "
                                               "one channel chosen under δ view: signed, red brighter, blue darker, "
                                               "white unchanged. Colour by default: |δ| summed over R, G and B.")
        chrome.plot(figures.delta_figure(run, knobs["channel"], cmap=cmap), f"{PAGE}.delta")
        guide.how_to_read("delta")
    with cols[3]:
        st.markdown("**Group sparsity**", help="ℓ2 norm of δ over each group of pixels (all channels), painted on "
                                               "the pixels it covers; untouched groups are clear.")
        chrome.plot(figures.groups_figure(run, cmap, opacity), f"{PAGE}.groups")
        st.caption(f"{r.groups_nonzero} of {r.groups_total} groups touched · {r.group_size}×{r.group_size} px, "
                   f"stride {r.stride}")
        guide.how_to_read("groups")

    left, right = st.columns([2, 3], gap="large")
    t = run.explained_target
    with left:
        st.markdown("**Adversarial saliency map**", help="ASM(x₀, t) of StrAttack eq. (61): high where raising a "
                                                         "pixel both promotes the target t and suppresses t₀. The "
                                                         "cyan outline is B_ASM, the pixels above the ν-th "
                                                         "percentile.")
        chrome.plot(figures.asm_figure(run, nu, cmap, opacity), f"{PAGE}.asm", run.analysis_error or "Not computed.")
        if t is not None:
            st.caption(f"ASM of x₀ for t₀ = {names[r.label]} → t = {names[t]} · outline: B_ASM at ν = {nu:g}")
        guide.how_to_read("asm")
    with right:
        st.markdown("**Class activation maps**", help="Grad-CAM of the original and the adversarial image for the "
                                                      "true class t₀ and the target t, on one colour range (Fig. 4 "
                                                      "of the StrAttack paper).")
        chrome.plot(figures.cam_figure(run, opacity, cmap), f"{PAGE}.cam", run.analysis_error or "Not computed.")
        if t is not None:
            _, is_cam = analysis.is_at(run, nu)
            st.caption(f"Grad-CAM on the model's last convolutional features · IS-CAM at ν = {nu:g} (share of ‖δ‖₂ "
                       f"inside the top {100 - nu:g}% of C(x₀, t₀)): {chrome.fmt_value(is_cam)}")
        guide.how_to_read("cam")

    left, right = st.columns([3, 4], gap="large")
    with left:
        st.markdown("**Top-5 probabilities**", help="Softmax probabilities before and after; green is the true "
                                                   "class, red the target (or the new prediction).")
        chrome.plot(figures.top5_figure(run), f"{PAGE}.top5")
        st.markdown("**Loss curve**", help="The attack's objective per iteration, over all binary-search steps.")
        chrome.plot(figures.loss_figure(run) if run.result.loss_history.numel() else None, f"{PAGE}.loss",
                    "An evaluation stores no loss curve: press **Run attack** to run this attack again live.")
    with right:
        st.markdown("**Metrics**")
        panels.metrics_table(run, nu)
        guide.how_to_read("is", label="What is a good IS?", extra=guide.chance_lines(run, nu))
    panels.downloads(run, nu, PAGE)


stored = state.runs().get(PAGE)
if stored is not None:
    analysis.ensure_scores(stored, choice)
    results(stored)
    if usable:
        all_targets.section(PAGE, stored, choice, picked)
elif usable:
    st.info("No result yet: choose an image and an attack, then press **Run attack**.", icon=":material/arrow_upward:")
