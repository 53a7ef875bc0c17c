"""A stored run, told in words and numbers: headline, metric cards, metrics table, display knobs, downloads.

Formatting only: every number comes from the run's ``AttackReport`` (advlens.report) or, for IS at the display's
ν, from ``analysis.is_at``. The JSON download is ``report_json``: the report the CLI writes to result.json.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import streamlit as st

from ui.analysis import CAM_METHOD, is_at, scores_at
from ui.chrome import fmt_value
from ui.colours import CMAPS
from ui.live import run_notes
from ui.state import Run, page_widget

if TYPE_CHECKING:
    from advlens.report import AttackReport


def report_at(run: Run, nu: float) -> AttackReport:
    """The run's report with its interpretability scores at ν."""
    from advlens.explain import summarise_scores

    scores = scores_at(run, nu)
    explanation = None if scores is None else summarise_scores(scores, nu, CAM_METHOD)
    return dataclasses.replace(run.report, explanation=explanation)


def report_json(run: Run, nu: float) -> str:
    """The JSON download: ``build_report(...).to_json()`` of the run with its interpretability scores at ν, i.e.
    the result.json that ``advlens attack --explain`` writes for the same run at ν = 90 (apart from timings)."""
    return report_at(run, nu).to_json()


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
               f"{r.seconds:.2f} s on {r.device} · {final_c(r)}{stopped}")
    run_notes(run)


def final_c(r: AttackReport) -> str:
    """The constant of the kept example; a failed run kept none, and its report's c is not one that was tried."""
    return f"final c = {r.c:.3g}" if r.success else "no c succeeded"


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
        ("Final c", f"{r.c:.4g}" if r.success else "none succeeded",
         "binary-search constant of the kept example" if r.success else "no constant tried found an example"),
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


def compare_rows(done: Sequence[Run], nu: float) -> list[dict[str, Any]]:
    """Compare's table: one row per attack with success, prediction, distortions, groups, IS at ν and cost."""
    rows: list[dict[str, Any]] = []
    for run in done:
        r, names = run.report, run.class_names
        is_asm, is_cam = is_at(run, nu)
        rows.append({"Attack": run.title, "Success": "✓" if r.success else "✗",
                     "Prediction": f"{names[r.pred_before]} → {names[r.pred_after]}", "ℓ0 (px)": r.l0, "ℓ1": r.l1,
                     "ℓ2": r.l2, "ℓ∞": r.linf, "Groups": f"{r.groups_nonzero}/{r.groups_total}", "IS-ASM": is_asm,
                     "IS-CAM": is_cam, "Iterations": r.iterations, "Queries": r.queries, "Time (s)": r.seconds})
    if all(row["Queries"] is None for row in rows):  # only black-box attacks count queries
        for row in rows:
            del row["Queries"]
    return rows


def compare_table(done: Sequence[Run], nu: float) -> None:
    """One row per attack (``compare_rows``)."""
    number = st.column_config.NumberColumn
    st.dataframe(compare_rows(done, nu), hide_index=True, width="stretch", column_config={
        "ℓ1": number(format="%.3f", help="Σ|δ|"), "ℓ2": number(format="%.3f", help="‖δ‖₂"),
        "ℓ∞": number(format="%.3f", help="max |δ|"), "IS-ASM": number(format="%.3f", help="‖B_ASM∘δ‖₂ / ‖δ‖₂ at ν"),
        "IS-CAM": number(format="%.3f", help="share of ‖δ‖₂ inside the top CAM region of x₀"),
        "Time (s)": number(format="%.2f")})


def reports_json(done: Sequence[Run], nu: float) -> str:
    """Several runs' reports as one JSON list: each item is ``report_json`` of that run (the CLI's result.json)."""
    import json

    return json.dumps([report_at(run, nu).to_dict() for run in done], indent=2, ensure_ascii=False) + "\n"


def csv_text(rows: Sequence[dict[str, Any]]) -> str:
    """A table (one dict per row, the first row's keys as columns) as CSV; None and NaN as empty cells."""
    import csv
    import math

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else [], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None or (isinstance(v, float) and math.isnan(v)) else v
                         for k, v in row.items()})
    return out.getvalue()


def table_downloads(rows: Sequence[dict[str, Any]], reports: Any, stem: str, key: str) -> None:
    """The table as CSV and the reports as JSON (``reports``: the text, or a callable that builds it on click)."""
    cols = st.columns(2, gap="small")
    cols[0].download_button("Table CSV", csv_text(rows), f"{stem}_table.csv", "text/csv", key=f"{key}.dl.csv",
                            icon=":material/table:", on_click="ignore", width="stretch",
                            help="The table above, one row per line, numbers at full precision.")
    cols[1].download_button("Reports JSON", reports if reports is not None else "", f"{stem}_reports.json",
                            "application/json", key=f"{key}.dl.reports", icon=":material/data_object:",
                            on_click="ignore", width="stretch", disabled=reports is None,
                            help="Every run's report in one JSON list, each in the schema of the CLI's result.json "
                                 "(docs/report.md)." if reports is not None else
                            "The reports need the model the runs used: choose it in the sidebar.")


DELTA_VIEW_NAMES = {"magnitude": "|δ|", "R": "R", "G": "G", "B": "B"}


def display_knobs(page: str, *, channels: int) -> dict[str, Any]:
    """Colour map, overlay opacity, ν and, for a colour image, δ's view: they change the view only, never the
    attack. "channel" is "magnitude" (|δ| summed over channels, the default for colour), "R", "G" or "B"."""
    cols = st.columns(4, gap="medium")
    cmap = cols[0].selectbox("Colour map", CMAPS, key=page_widget(page, "cmap", CMAPS[0]),
                             help="Colours of the magnitude maps (|δ| of a colour image, groups, ASM, CAM). "
                                  "Signed δ is always blue–red.")
    opacity = cols[1].slider("Overlay opacity", 0.0, 1.0, key=page_widget(page, "opacity", 0.7), step=0.05,
                             help="How strongly the maps cover the image underneath.")
    nu = cols[2].slider("ν · IS percentile", 10, 95, key=page_widget(page, "nu", 90), step=5,
                        help="B = pixels whose score is above its ν-th percentile; IS = ‖B∘δ‖₂ / ‖δ‖₂.")
    channel = "magnitude"
    if channels == 3:
        key = page_widget(page, "channel", "magnitude")
        if st.session_state[key] not in DELTA_VIEW_NAMES:  # "all" from before the magnitude view
            st.session_state[key] = "magnitude"
        channel = cols[3].segmented_control(
            "δ view", list(DELTA_VIEW_NAMES), key=key, format_func=DELTA_VIEW_NAMES.get,
            help="|δ|: how much each pixel changed, summed over R, G and B (one map, readable at a glance). "
                 "R, G, B: that channel's signed change, blue darker, red brighter.") or "magnitude"
    else:
        cols[3].caption("δ: one channel (grayscale), signed")
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
