"""Explore: attack one image with one attack, watch it live, then take the result apart."""

from __future__ import annotations

import streamlit as st
import torch

from advlens import engine, ui

PAGE = "explore"

ui.page_header("Explore", "Pick an image and an attack, press **Run attack** and watch the perturbation form; then "
                          "take the result apart. Parameters only apply when you press the button; the display "
                          "controls above the results change the view without re-running anything.")

choice = ui.current_model()
if ui.require_model(choice):
    left, right = st.columns([2, 3], gap="large")
    with left:
        ui.section("Image")
        picked = ui.image_picker(PAGE, choice)
    with right:
        ui.section("Attack")
        attack = st.segmented_control(
            "Attack", list(engine.ATTACKS), key=ui.keep(f"{PAGE}.attack", "ead"), required=True,
            format_func=lambda n: ui.ATTACK_SHORT[n], label_visibility="collapsed",
        ) or "ead"
        st.caption(ui.ATTACK_BLURB[attack])
        request = None
        if picked is not None:
            request = ui.attack_form(PAGE, attack, choice.spec, label=picked.label,
                                     default_target=picked.runner_up)
    live_area = st.container()
    if request is not None and picked is not None:
        labels = torch.tensor([picked.label])
        targets = None if request["target"] is None else torch.tensor([request["target"]])
        store = ui.runs()
        with ui.LiveRunner(live_area, key=PAGE) as live:
            out = live.run(attack, choice.model, picked.image.tensor, labels, targets, request["params"],
                           title=ui.ATTACK_SHORT[attack])
            if out is not None:
                result, trace = out
                run = ui.make_run(attack, ui.ATTACK_SHORT[attack], choice, picked.title, result, trace,
                                  analyse=False)
                store[PAGE] = run  # stored before the analysis, so an interruption cannot lose it
                if not live.stopped:  # after a Stop the next run computes them
                    ui.ensure_scores(run, choice)


@st.fragment
def results(run: ui.Run) -> None:
    """Everything drawn from one stored result; the knobs here rerun only this fragment."""
    ui.section("Result")
    ui.headline(run)
    knobs = ui.display_knobs(PAGE, channels=run.result.original.shape[1])
    nu, cmap, opacity = knobs["nu"], knobs["cmap"], knobs["opacity"]
    ui.metric_cards(run, nu)

    s, names = run.summary, run.class_names
    before, after = s["top5_before"][0], s["top5_after"][0]
    cols = st.columns(4, gap="medium")
    with cols[0]:
        st.markdown("**Original x₀**")
        ui.image_panel(run.result.original[0], f"model: {names[before[0]]} ({before[1]:.1%})")
    with cols[1]:
        st.markdown("**Adversarial x₀ + δ**")
        ui.image_panel(run.result.adversarial[0], f"model: {names[after[0]]} ({after[1]:.1%})")
    with cols[2]:
        st.markdown("**Perturbation δ**", help="Signed change of each pixel on the [0, 1] intensity scale: red "
                                               "brighter, blue darker, white unchanged.")
        ui.plot(ui.delta_figure(run.delta[0], knobs["channel"]), f"{PAGE}.delta")
    with cols[3]:
        size, stride = run.grouping
        touched, total = ui.groups_touched(run)
        st.markdown("**Group sparsity**", help="ℓ2 norm of δ over each group of pixels (all channels), painted on "
                                               "the pixels it covers; untouched groups are clear.")
        ui.plot(ui.groups_figure(run, cmap, opacity), f"{PAGE}.groups")
        st.caption(f"{touched} of {total} groups touched · {size}×{size} px, stride {stride}")

    cols = st.columns([2, 3], gap="large")
    with cols[0]:
        t = run.explained_target
        st.markdown("**Adversarial saliency map**", help="ASM(x₀, t) of StrAttack eq. (61): high where raising a "
                                                         "pixel both promotes the target t and suppresses t₀. The "
                                                         "cyan outline is B_ASM, the pixels above the ν-th "
                                                         "percentile.")
        ui.plot(ui.asm_figure(run, nu, cmap, opacity), f"{PAGE}.asm", run.analysis_error or "Not computed.")
        if t is not None:
            st.caption(f"ASM of x₀ for t₀ = {names[s['label']]} → t = {names[t]} · outline: B_ASM at ν = {nu:g}")
    with cols[1]:
        st.markdown("**Class activation maps**", help="Grad-CAM of the original and the adversarial image for the "
                                                      "true class t₀ and the target t, on one colour range (Fig. 4 "
                                                      "of the StrAttack paper).")
        ui.plot(ui.cam_figure(run, opacity, cmap), f"{PAGE}.cam", run.analysis_error or "Not computed.")
        if t is not None:
            _, is_cam = ui.is_at(run, nu)
            st.caption(f"Grad-CAM on the model's last convolutional features · IS-CAM at ν = {nu:g} (share of ‖δ‖₂ "
                       f"inside the top {100 - nu:g}% of C(x₀, t₀)): {ui.fmt_value(is_cam)}")

    cols = st.columns([3, 4], gap="large")
    with cols[0]:
        st.markdown("**Top-5 probabilities**", help="Softmax probabilities before and after; green is the true "
                                                   "class, red the target (or the new prediction).")
        ui.plot(ui.top5_figure(run), f"{PAGE}.top5")
        st.markdown("**Loss curve**", help="The attack's objective per iteration, over all binary-search steps.")
        ui.plot(ui.loss_figure(run), f"{PAGE}.loss")
    with cols[1]:
        st.markdown("**Metrics**")
        ui.metrics_table(run, nu)
    ui.downloads(run, nu, PAGE)


stored = ui.runs().get(PAGE)
if stored is not None:
    ui.ensure_scores(stored, choice)
    results(stored)
elif choice.model is not None:
    st.info("No result yet: choose an image and an attack, then press **Run attack**.", icon=":material/arrow_upward:")
