"""A stored run, told in words and numbers: headline, metric cards, metrics table, display knobs, downloads.

Formatting only: every number comes from the run's ``AttackReport`` (advlens.report) or, for IS at the display's
ν, from ``analysis.is_at``. The JSON download is ``report_json``: the report the CLI writes to result.json.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Sequence
from typing import Any

import streamlit as st

from ui.analysis import CAM_METHOD, is_at, scores_at
from ui.chrome import fmt_value
from ui.colours import CMAPS
from ui.state import Run, page_widget


def report_json(run: Run, nu: float) -> str:
    """The JSON download: ``build_report(...).to_json()`` of the run with its interpretability scores at ν, i.e.
    the result.json that ``advlens attack --explain`` writes for the same run at ν = 90 (apart from timings)."""
    from advlens.explain import summarise_scores

    scores = scores_at(run, nu)
    explanation = None if scores is None else summarise_scores(scores, nu, CAM_METHOD)
    return dataclasses.replace(run.report, explanation=explanation).to_json()


def headline(run: Run) -> None:
    """The success indicator and the one-line story: t0 → prediction (target t), cost, device."""
    r, names = run.report, run.class_names
    before, after = names[r.pred_before], names[r.pred_after]
    goal = f"target {names[r.target]}" if r.target is not None else "untargeted"
    if r.success:
        st.success(f"**Success** — {before} → **{after}** ({goal})", icon=":material/check_circle:")
    elif r.stopped:
        st.warning(f"**Stopped** after {r.iterations} iterations, before an adversarial example was found "
                   f"({goal}); shown is the original image", icon=":material/stop_circle:")
    else:
        st.error(f"**Failed** — still {after} ({goal}); shown is the original image", icon=":material/cancel:")
    stopped = " · stopped early, best so far" if r.stopped else ""
    queries = "" if r.queries is None else f" · {r.queries:,} queries"
    badge = ":violet-badge[:material/visibility_off: black-box: probabilities only] " if r.queries is not None else ""
    st.caption(f"{badge}{run.title} on {run.image_title} · {run.model} · {r.iterations} iterations{queries} in "
               f"{r.seconds:.2f} s on {r.device} · final c = {r.c:.3g}{stopped}")


def metric_cards(run: Run, nu: float) -> None:
    r = run.report
    is_asm, _ = is_at(run, nu)
    cards = [
        ("ℓ0", f"{r.l0}", "Pixels changed (any channel)."),
        ("ℓ1", f"{r.l1:.3g}", "Sum of |δ| over all coordinates, pixel intensities on the [0, 1] scale."),
        ("ℓ2", f"{r.l2:.3g}", "Euclidean norm of δ, [0, 1] intensity scale."),
        ("ℓ∞", f"{r.linf:.3g}", "Largest change of any coordinate, [0, 1] intensity scale."),
        ("Groups", f"{r.groups_nonzero}/{r.groups_total}",
         f"Groups with ‖δ_G‖₂ > 0 ({r.group_size}×{r.group_size}, stride {r.stride})."),
        ("IS-ASM", fmt_value(is_asm, 2), f"At ν = {nu:g}: share of δ's ℓ2 energy inside B_ASM, the pixels whose "
                                          "ASM is above its ν-th percentile (StrAttack eq. 23); 1 = all of it."),
    ]
    if r.queries is not None:  # a black-box attack: what it cost is queries
        cards.append(("Queries", f"{r.queries:,}", "Images the model was asked to classify (probabilities only) "
                                                   "for this attack: 2B + 1 an iteration for ZOO."))
    for col, (label, value, help_) in zip(st.columns(len(cards), gap="small"), cards):
        col.metric(label, value, help=help_, border=True)


def metrics_rows(run: Run, nu: float) -> list[tuple[str, str, str]]:
    r, names = run.report, run.class_names
    is_asm, is_cam = is_at(run, nu)
    return [
        ("Success", "yes" if r.success else "no", "target reached (targeted) / t₀ left"),
        ("Prediction", f"{names[r.pred_before]} → {names[r.pred_after]}", "before → after"),
        ("Target", names[r.target] if r.target is not None else "untargeted", ""),
        ("ℓ0", f"{r.l0}", "pixels changed"),
        ("ℓ0 coords", f"{r.l0_coords}", "pixel × channel values changed"),
        ("ℓ1", f"{r.l1:.4f}", "Σ|δ|, [0, 1] scale"),
        ("ℓ2", f"{r.l2:.4f}", "‖δ‖₂, [0, 1] scale"),
        ("ℓ∞", f"{r.linf:.4f}", "max |δ|, [0, 1] scale"),
        ("Groups", f"{r.groups_nonzero} of {r.groups_total}",
         f"touched; {r.group_size}×{r.group_size} px, stride {r.stride}"),
        ("IS-ASM", fmt_value(is_asm, 4), f"‖B_ASM∘δ‖₂ / ‖δ‖₂ at ν = {nu:g}"),
        ("IS-CAM", fmt_value(is_cam, 4), f"top-{100 - nu:g}% of CAM(x₀, t₀)"),
        ("Final c", f"{r.c:.4g}", "binary-search constant"),
        ("Iterations", f"{r.iterations}", "all binary-search steps"),
        *([("Queries", f"{r.queries:,}", "images the black-box model classified")] if r.queries is not None else []),
        ("Time", f"{r.seconds:.2f}", "seconds"),
        ("Device", r.device, ""),
    ]


def metrics_table(run: Run, nu: float) -> None:
    rows = [dict(zip(("Metric", "Value", "Unit / meaning"), row)) for row in metrics_rows(run, nu)]
    st.dataframe(rows, hide_index=True, width="stretch", height=35 * (len(rows) + 1) + 3, column_config={
        "Metric": st.column_config.TextColumn(width="small"), "Value": st.column_config.TextColumn(width="small"),
        "Unit / meaning": st.column_config.TextColumn(width="medium")})


def compare_table(done: Sequence[Run], nu: float) -> None:
    """One row per attack: success, prediction, distortions, groups, IS at ν, cost."""
    rows: list[dict[str, Any]] = []
    for run in done:
        r, names = run.report, run.class_names
        is_asm, is_cam = is_at(run, nu)
        rows.append({"Attack": run.title, "Success": "✓" if r.success else "✗",
                     "Prediction": f"{names[r.pred_before]} → {names[r.pred_after]}", "ℓ0 (px)": r.l0, "ℓ1": r.l1,
                     "ℓ2": r.l2, "ℓ∞": r.linf, "Groups": f"{r.groups_nonzero}/{r.groups_total}", "IS-ASM": is_asm,
                     "IS-CAM": is_cam, "Iterations": r.iterations, "Queries": r.queries, "Time (s)": r.seconds})
    number = st.column_config.NumberColumn
    st.dataframe(rows, hide_index=True, width="stretch", column_config={
        "ℓ1": number(format="%.3f", help="Σ|δ|"), "ℓ2": number(format="%.3f", help="‖δ‖₂"),
        "ℓ∞": number(format="%.3f", help="max |δ|"), "IS-ASM": number(format="%.3f", help="‖B_ASM∘δ‖₂ / ‖δ‖₂ at ν"),
        "IS-CAM": number(format="%.3f", help="share of ‖δ‖₂ inside the top CAM region of x₀"),
        "Time (s)": number(format="%.2f")})


def display_knobs(page: str, *, channels: int) -> dict[str, Any]:
    """Colour map, overlay opacity, ν and channel: they change the view only, never the attack."""
    cols = st.columns(4, gap="medium")
    cmap = cols[0].selectbox("Colour map", CMAPS, key=page_widget(page, "cmap", CMAPS[0]),
                             help="Colours of the magnitude maps (groups, ASM, CAM). Signed δ is always blue–red.")
    opacity = cols[1].slider("Overlay opacity", 0.0, 1.0, key=page_widget(page, "opacity", 0.7), step=0.05,
                             help="How strongly the maps cover the image underneath.")
    nu = cols[2].slider("ν · IS percentile", 10, 95, key=page_widget(page, "nu", 90), step=5,
                        help="B = pixels whose score is above its ν-th percentile; IS = ‖B∘δ‖₂ / ‖δ‖₂.")
    channel = "all"
    if channels == 3:
        channel = cols[3].segmented_control("Channel", ["all", "R", "G", "B"], key=page_widget(page, "channel", "all"),
                                            help="Which colour channel of δ to show.") or "all"
    else:
        cols[3].caption("Channel: one (grayscale)")
    return {"cmap": cmap, "opacity": opacity, "nu": float(nu), "channel": channel}


def downloads(run: Run, nu: float, key: str) -> None:
    import numpy as np

    from interpret.render import png_bytes

    npy = io.BytesIO()
    np.save(npy, run.delta[0].numpy().astype(np.float32))
    cols = st.columns(3, gap="small")
    stem = f"advlens_{run.attack}_{run.id}"
    cols[0].download_button("Adversarial PNG", png_bytes(run.result.adversarial[0]), f"{stem}_adversarial.png",
                            "image/png", key=f"{key}.dl.png", icon=":material/image:", on_click="ignore",
                            width="stretch", help="The adversarial image at the model's input size, 8 bits per "
                                                  "channel.")
    cols[1].download_button("δ as .npy", npy.getvalue(), f"{stem}_delta.npy", "application/octet-stream",
                            key=f"{key}.dl.npy", icon=":material/data_array:", on_click="ignore", width="stretch",
                            help="float32 (C, H, W): x_adv − x₀ on the [0, 1] scale, before 8-bit rounding.")
    cols[2].download_button("Metrics JSON", report_json(run, nu), f"{stem}_result.json", "application/json",
                            key=f"{key}.dl.json", icon=":material/data_object:", on_click="ignore",
                            width="stretch", help="The run's report, the same schema as the CLI's result.json: "
                                                  "every metric and parameter, with IS at the ν above.")
