"""Compare: one image and target under C&W, EAD (EN rule), EAD (L1 rule) and StrAttack, side by side."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st
import torch

from advlens import ui
from interpret import figures

PAGE = "compare"
# (engine name, fixed parameters, column title)
LINEUP = (
    ("cw", {}, "C&W L2"),
    ("ead", {"decision_rule": "en"}, "EAD · EN rule"),
    ("ead", {"decision_rule": "l1"}, "EAD · L1 rule"),
    ("strattack", {}, "StrAttack"),
)
COLOURS = {"C&W L2": "#1f77b4", "EAD · EN rule": "#d62728", "EAD · L1 rule": "#ff7f0e", "StrAttack": "#2ca02c"}
SHARED = ("kappa", "initial_const", "binary_search_steps", "steps", "abort_early")

ui.page_header("Compare", "The same image and target under C&W, EAD with either decision rule, and StrAttack, run "
                          "in turn with one shared budget. Columns line up panel by panel; the table and the "
                          "IS-vs-ν plot put the numbers side by side.")

choice = ui.current_model()
if ui.require_model(choice):
    spec, ds = choice.spec, choice.spec.dataset
    left, right = st.columns([2, 3], gap="large")
    with left:
        ui.section("Image")
        picked = ui.image_picker(PAGE, choice)
    submitted = False
    with right:
        ui.section("Shared settings")
        st.caption("Every attack gets the same κ, c, binary-search steps and iterations; β applies to both EAD "
                   "columns, the group grid to StrAttack.")
        if picked is not None:
            ead = ui.param_defaults("ead", spec)
            strat = ui.param_defaults("strattack", spec) if ui.attack_available("strattack") is None else {}
            with st.form(f"{PAGE}-form", border=True):
                target_key = ui.target_widget(PAGE, spec, picked.label, picked.runner_up)
                cols = st.columns(2, gap="medium")
                with cols[0]:
                    st.markdown("**Objective**")
                    ui.param_widget(PAGE, ds, "kappa", ead["kappa"])
                    ui.param_widget(PAGE, ds, "beta", ead["beta"])
                    if strat:
                        ui.param_widget(PAGE, ds, "tau", strat["tau"])
                with cols[1]:
                    st.markdown("**Budget**")
                    for name in ("initial_const", "binary_search_steps", "steps", "abort_early"):
                        ui.param_widget(PAGE, ds, name, ead[name])
                    if strat:
                        st.markdown("**StrAttack groups**")
                        ui.param_widget(PAGE, ds, "group_size", strat["group_size"])
                        ui.param_widget(PAGE, ds, "stride", strat["stride"])
                submitted = st.form_submit_button("Run all four", type="primary", icon=":material/play_arrow:")

    live_area = st.container()
    if submitted and picked is not None:
        values = ui.read_params(PAGE, ds, SHARED + ("beta", "tau", "group_size", "stride"))
        target = st.session_state.get(target_key)
        labels = torch.tensor([picked.label])
        targets = None if target in (None, -1) else torch.tensor([int(target)])
        shared = {k: values[k] for k in SHARED}
        cw_rate = ui.param_defaults("cw", spec).get("learning_rate")
        extra = {"cw": {"learning_rate": cw_rate}, "ead": {"beta": values["beta"]},
                 "strattack": {k: values[k] for k in ("tau", "group_size", "stride") if values[k] is not None}}
        if ui.device().type == "cpu":
            extra["strattack"]["refine"] = False  # the refine stage alone is 8 × 400 iterations
        done: list[ui.Run] = []
        ui.runs()[PAGE] = done
        with ui.LiveRunner(live_area, key=PAGE, count=len(LINEUP)) as live:
            for name, fixed, title in LINEUP:
                out = live.run(name, choice.model, picked.image.tensor, labels, targets,
                               {**shared, **extra.get(name, {}), **fixed}, title=title)
                if out is not None:
                    done.append(ui.make_run(name, title, choice, picked.title, out[0], out[1], analyse=False))
            for run in done if not live.stopped else ():
                ui.ensure_scores(run, choice, quartet=False)


def _table(done: list[ui.Run], nu: float) -> pd.DataFrame:
    rows = []
    for run in done:
        s, names = run.summary, run.class_names
        touched, total = ui.groups_touched(run)
        is_asm, is_cam = ui.is_at(run, nu)
        rows.append({
            "Attack": run.title, "Success": "✓" if s["success"] else "✗",
            "Prediction": f"{names[s['pred_before']]} → {names[s['pred_after']]}",
            "ℓ0 (px)": s["l0"], "ℓ1": s["l1"], "ℓ2": s["l2"], "ℓ∞": s["linf"], "Groups": f"{touched}/{total}",
            "IS-ASM": None if math.isnan(is_asm) else is_asm, "IS-CAM": None if math.isnan(is_cam) else is_cam,
            "Iterations": s["iterations"], "Time (s)": s["seconds"],
        })
    return pd.DataFrame(rows)


@st.fragment
def results(done: list[ui.Run]) -> None:
    ui.section("Side by side", f"{done[0].image_title} · {done[0].model} · target "
                               + (done[0].class_names[done[0].summary['target']]
                                  if done[0].summary["target"] is not None else "none (untargeted)"))
    knobs = ui.display_knobs(PAGE, channels=done[0].result.original.shape[1])
    nu, cmap, opacity = knobs["nu"], knobs["cmap"], knobs["opacity"]
    scales = ui.shared_scales(done)
    st.caption("Each row of panels shares one colour range across the attacks.")
    cols = st.columns(len(done), gap="medium")
    for k, (col, run) in enumerate(zip(cols, done)):
        s, names = run.summary, run.class_names
        after = s["top5_after"][0]
        with col:
            st.markdown(f"#### {run.title}")
            if s["success"]:
                st.badge(f"Success → {names[after[0]]}", icon=":material/check_circle:", color="green")
            else:
                st.badge("Failed", icon=":material/cancel:", color="red")
            st.caption(f"ℓ1 {s['l1']:.3f} · ℓ2 {s['l2']:.3f} · ℓ0 {s['l0']} px · {s['seconds']:.1f} s")
            ui.image_panel(run.result.adversarial[0], f"adversarial · model: {names[after[0]]} ({after[1]:.0%})")
            st.markdown("**δ**", help="Signed perturbation on the [0, 1] intensity scale.")
            ui.plot(ui.delta_figure(run.delta[0], knobs["channel"], height=240, limit=scales["delta"]),
                    f"{PAGE}.delta.{k}")
            st.markdown("**Groups**", help="‖δ_G‖₂ per group, untouched groups clear.")
            ui.plot(ui.groups_figure(run, cmap, opacity, height=240, zmax=scales["groups"]), f"{PAGE}.groups.{k}")
            touched, total = ui.groups_touched(run)
            st.caption(f"{touched} of {total} groups touched")
            st.markdown("**δ and B_ASM**", help="|δ| over the image, with the outline (cyan) of B_ASM: the pixels "
                                                "whose adversarial saliency is above its ν-th percentile. IS-ASM is "
                                                "the share of ‖δ‖₂ inside the outline.")
            ui.plot(ui.delta_vs_asm_figure(run, nu, cmap, opacity, height=240, zmax=scales["magnitude"]),
                    f"{PAGE}.asm.{k}",
                    run.analysis_error or "Not computed.")
            is_asm, _ = ui.is_at(run, nu)
            st.caption(f"IS-ASM at ν = {nu:g}: {ui.fmt_value(is_asm)}")

    ui.section("Metrics", "Distortions on the [0, 1] intensity scale; ℓ0 counts pixels; IS at the ν above.")
    st.dataframe(_table(done, nu), hide_index=True, width="stretch", column_config={
        "ℓ1": st.column_config.NumberColumn(format="%.3f", help="Σ|δ|"),
        "ℓ2": st.column_config.NumberColumn(format="%.3f", help="‖δ‖₂"),
        "ℓ∞": st.column_config.NumberColumn(format="%.3f", help="max |δ|"),
        "IS-ASM": st.column_config.NumberColumn(format="%.3f", help="‖B_ASM∘δ‖₂ / ‖δ‖₂ at ν"),
        "IS-CAM": st.column_config.NumberColumn(format="%.3f", help="share of ‖δ‖₂ inside the top CAM region of x₀"),
        "Time (s)": st.column_config.NumberColumn(format="%.2f"),
    })
    curves = {run.title: {nu_: float(v[0]) for nu_, v in run.scores["is_curve"].items()}
              for run in done if run.scores is not None}
    if curves:
        fig = figures.is_curve_figure(curves, title="")
        for trace in fig.data:
            trace.line.color = COLOURS.get(trace.name)
        fig.add_vline(x=nu, line=dict(color="#999", dash="dot"))
        fig.update_layout(height=340, legend=dict(orientation="h", y=-0.25), margin=dict(l=8, r=8, t=8, b=8))
        st.markdown("**Interpretability score vs ν**", help="IS = ‖B∘δ‖₂ / ‖δ‖₂ with B the pixels whose ASM is "
                                                           "above its ν-th percentile (StrAttack Fig. 3a). Higher: "
                                                           "the perturbation sits where the ASM says it matters.")
        ui.plot(fig, f"{PAGE}.is")


stored = ui.runs().get(PAGE)
if stored:
    for run in stored:
        ui.ensure_scores(run, choice, quartet=False)
    results(stored)
elif choice.model is not None:
    st.info("No comparison yet: choose an image and a target, then press **Run all four**.",
            icon=":material/arrow_upward:")
