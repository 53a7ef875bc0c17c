"""Compare: one image and target under several attacks side by side (by default C&W, EAD with either decision
rule, and StrAttack); every registered attack is offered."""

from __future__ import annotations

from collections.abc import Iterator

import streamlit as st
import torch

from ui import analysis, chrome, figures, forms, guide, live, panels, paper_presets, pickers, resources, state
from ui.colours import column_colour

PAGE = "compare"
DEFAULT_LINEUP = ("C&W L2", "EAD-FISTA · EN rule", "EAD-FISTA · L1 rule", "StrAttack")

chrome.page_header("Compare", "The same image and target under several attacks, run in turn with one shared "
                              "budget. Columns line up panel by panel; the table and the IS-vs-ν plot put the "
                              "numbers side by side.")
paper_presets.note(PAGE)

choice = resources.current_model()
usable = not resources.known_failure(choice)
if usable:
    columns = forms.compare_columns()
    titles = [c.title for c in columns]
    left, right = st.columns([2, 3], gap="large")
    with left:
        chrome.section("Image")
        picked = pickers.image_picker(PAGE, choice)
    with right:
        chrome.section("Attacks and shared settings")
        key = state.page_widget(PAGE, "lineup", [t for t in DEFAULT_LINEUP if t in titles])
        chosen = st.multiselect("Attacks", titles, key=key,
                                help="Every registered attack; one column per decision rule where an attack has "
                                     "a choice of objective.")
        lineup = [c for c in columns if c.title in chosen]
        st.caption("Parameters that several attacks share (κ, c, binary-search steps, iterations…) get one value "
                   "for all; each attack's own are folded under its name.")
        request = None
        if picked is not None and lineup:
            request = forms.compare_form(PAGE, lineup, choice, picked.true_class)
    live_area = st.container()
    if not lineup:
        chrome.show_error("Choose at least one attack to compare.")
    elif (model := resources.require_model(choice)) is not None and picked is not None:
        pickers.show_reading(picked, choice)
        if request is not None:
            target = pickers.resolve_target(request["target"], picked)
            labels = torch.tensor([picked.true_class])
            targets = None if target is None else torch.tensor([target])
            record = state.CompareRecord()
            state.runs()[PAGE] = record
            with live.LiveRunner(live_area, key=PAGE, count=len(lineup)) as runner:
                for column, params in zip(lineup, request["params"]):
                    out = runner.run(column.attack, model, picked.image.tensor, labels, targets, params,
                                     title=column.title)
                    if out is not None:
                        record.runs.append(analysis.make_run(column.attack, column.title, choice, picked, *out))
                for run in record.runs if not runner.stopped else ():
                    analysis.ensure_scores(run, choice, quartet=False)


def row(done: list[state.Run]) -> Iterator[state.Run]:
    """Each run inside its own column of one new row of columns."""
    for col, run in zip(st.columns(len(done), gap="medium"), done):
        with col:
            yield run


def run_notes(run: state.Run) -> None:
    """Why the run stopped and what early abort cut short (``live.run_notes``), or one neutral line where neither
    applies, so every column has a line here."""
    stopped = run.report.stopped and run.trace.stop_reason
    params = run.report.params
    if stopped or live.abort_note(params, run.report.iterations, run.trace, run.report.stopped):
        live.run_notes(run)
    elif "abort_early" not in params:
        st.caption(":material/check: No early abort: every iteration of the budget ran.")
    elif params["abort_early"]:
        st.caption(":material/check: Early abort on; every value of c ran its full budget.")
    else:
        st.caption(":material/check: Early abort off: every value of c ran its full budget.")


@st.fragment
def results(done: list[state.Run]) -> None:
    first = done[0]
    target = first.report.target
    chrome.section("Side by side", f"{first.image_title} · {first.model} · target "
                                   + (first.class_names[target] if target is not None else "none (untargeted)"))
    head = st.columns([1, 4], gap="medium")
    with head[0]:
        before = first.report.top5_before[0]
        chrome.image_panel(first.result.original[0], f"original x₀ · model: {first.class_names[before[0]]} "
                                                     f"({before[1]:.0%})")
    with head[1]:
        knobs = panels.display_knobs(PAGE, channels=first.result.original.shape[1])
        shared = st.toggle("One colour range across the attacks", key=state.page_widget(PAGE, "shared_scale", False),
                           help="Off: every panel is scaled to its own largest value, so even a small δ is "
                                "visible. On: each row of panels shares one range, so columns compare by colour.")
        guide.how_to_read("delta", "groups", "asm_delta", label="How to read these panels")
    nu, cmap, opacity = knobs["nu"], knobs["cmap"], knobs["opacity"]
    scales = analysis.shared_scales(done) if shared else {"groups": None, "magnitude": None}
    delta_limit = figures.delta_limit(done, knobs["channel"]) if shared else None
    # Row by row, each row its own set of columns: a row starts below the tallest cell of the row above, so panels
    # and metrics line up across attacks whatever their titles wrap to or their notes say.
    for run in row(done):
        r, names = run.report, run.class_names
        st.markdown(f"#### {run.title}")
        if r.success:
            st.badge(f"Success → {names[r.top5_after[0][0]]}", icon=":material/check_circle:", color="green")
        else:
            st.badge("Failed", icon=":material/cancel:", color="red")
        st.caption(f"ℓ1 {r.l1:.3f} · ℓ2 {r.l2:.3f} · ℓ0 {r.l0} px · {r.seconds:.1f} s")
    for run in row(done):
        run_notes(run)
    for run in row(done):
        after = run.report.top5_after[0]
        chrome.image_panel(run.result.adversarial[0],
                           f"adversarial · model: {run.class_names[after[0]]} ({after[1]:.0%})")
    for k, run in enumerate(row(done)):
        st.markdown("**δ**", help="Perturbation on the [0, 1] intensity scale: signed (red brighter, blue "
                                  "darker) for grayscale or one channel; |δ| summed over channels for colour.")
        chrome.plot(figures.delta_figure(run, knobs["channel"], height=240, limit=delta_limit, cmap=cmap),
                    f"{PAGE}.delta.{k}")
    for k, run in enumerate(row(done)):
        st.markdown("**Groups**", help="‖δ_G‖₂ per group, untouched groups clear.")
        chrome.plot(figures.groups_figure(run, cmap, opacity, height=240, zmax=scales["groups"]),
                    f"{PAGE}.groups.{k}")
        st.caption(f"{run.report.groups_nonzero} of {run.report.groups_total} groups touched")
    for k, run in enumerate(row(done)):
        st.markdown("**δ and B_ASM**", help="|δ| over the image, with the outline (cyan) of B_ASM: the pixels "
                                            "whose adversarial saliency is above its ν-th percentile. IS-ASM is "
                                            "the share of ‖δ‖₂ inside the outline.")
        chrome.plot(figures.delta_vs_asm_figure(run, nu, cmap, opacity, height=240, zmax=scales["magnitude"]),
                    f"{PAGE}.asm.{k}", run.analysis_error or "Not computed.")
        st.caption(f"IS-ASM at ν = {nu:g}: {chrome.fmt_value(analysis.is_at(run, nu)[0])}")

    chrome.section("Metrics", "Distortions on the [0, 1] intensity scale; ℓ0 counts pixels; IS at the ν above.")
    panels.compare_table(done, nu)
    panels.table_downloads(panels.compare_rows(done, nu), panels.reports_json(done, nu), f"advlens_compare_{first.id}",
                           PAGE)
    curves = {run.title: {nu_: float(v[0]) for nu_, v in run.scores["is_curve"].items()}
              for run in done if run.scores is not None}
    if curves:
        from interpret.plots import is_curve_figure

        colours = {run.title: column_colour(k) for k, run in enumerate(done)}
        st.markdown("**Interpretability score vs ν**", help="IS = ‖B∘δ‖₂ / ‖δ‖₂ with B the pixels whose ASM is "
                                                           "above its ν-th percentile (StrAttack Fig. 3a). Higher: "
                                                           "the perturbation sits where the ASM says it matters.")
        chrome.plot(is_curve_figure(curves, title="", colours=colours, marker=nu, height=340, legend_below=True),
                    f"{PAGE}.is")
        guide.how_to_read("is_curve", "is")


stored = state.runs().get(PAGE)
if stored is not None and stored.runs:
    for run in stored.runs:
        analysis.ensure_scores(run, choice, quartet=False)
    results(stored.runs)
elif usable:
    st.info("No comparison yet: choose an image, the attacks and a target, then press **Run all**.",
            icon=":material/arrow_upward:")
