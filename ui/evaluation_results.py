"""What Evaluate shows of a results folder: the run's progress (polled by a fragment), the best/average/worst
table, the ASR-vs-distortion and swept-parameter plots, the stored rows, and a row opened in Explore.

Everything is read from the folder's database on each run, so a table drawn during an evaluation holds its
finished images, and a reload shows the same. A row opens in Explore as the stored result (the image, the
stored perturbation and the stored report): nothing is re-run.
"""

from __future__ import annotations

import functools
import sqlite3
from pathlib import Path
from typing import Any, Optional

import streamlit as st

from ui.chrome import first_line, plot, section, show_error
from ui.colours import short_label
from ui.evaluation import Job, budget_label, command_line, job_for, preset_keys
from ui.pickers import UNTARGETED
from ui.state import MODEL_KEY, Run, Trace, attack_key, image_key, keep, param_key, runs, widget_key

PAGE = "evaluate"
SHOWN = "evaluate.shown"  # the folder the page shows (also in the URL, so a reload finds it)
URL_PARAM = "results"
GOTO_EXPLORE = "evaluate.goto_explore"
OPEN_ERROR = "evaluate.open_error"
ROWS_KEY = "evaluate.rows"
POLL_S = 1.0
CASE_ORDER = {"best": 0, "average": 1, "worst": 2}


def shown_folder() -> Optional[Path]:
    """The folder this session looks at: the last one started or opened, else the one in the URL."""
    shown = st.session_state.get(SHOWN) or st.query_params.get(URL_PARAM)
    if not shown:
        return None
    st.session_state[SHOWN] = shown
    if st.query_params.get(URL_PARAM) != shown:
        st.query_params[URL_PARAM] = shown
    return Path(shown)


def show_folder(folder: Path) -> None:
    st.session_state[SHOWN] = str(folder)
    st.query_params[URL_PARAM] = str(folder)


def open_form() -> None:
    """A results folder to open; a folder without results is one sentence and changes nothing."""
    from advlens.evaluation.store import ResultStore, StoreError

    with st.form(f"{PAGE}-open", border=True):
        st.text_input("Folder to open", key=keep(widget_key(PAGE, "open"), ""), placeholder="/path/to/results",
                      help="A folder written by this page or by `advlens evaluate --out`.")
        submitted = st.form_submit_button("Open", icon=":material/folder_open:")
    if not submitted:
        return
    text = str(st.session_state[widget_key(PAGE, "open")] or "").strip()
    if not text:
        show_error("Give the path of a results folder to open.")
        return
    folder = Path(text).expanduser().resolve()
    try:
        ResultStore(folder, create=False).close()
    except (StoreError, sqlite3.Error, OSError) as err:
        show_error(err)
        return
    show_folder(folder)


# ------------------------------------------------------------------------------------------------ the folder

def results(folder: Path) -> None:
    """The job's progress or outcome (when this server ran it), then everything stored in ``folder``."""
    from advlens.evaluation.store import ResultStore, StoreError
    from advlens.evaluation.tables import case_table

    job = job_for(folder)
    section("Results", str(folder))
    if job is not None:
        job_status(job)
    if st.session_state.get(OPEN_ERROR):
        show_error(st.session_state.pop(OPEN_ERROR))
    try:
        with ResultStore(folder, create=False) as store:
            table, stored = case_table(store), store.results()
            missing = sum(r["id"] is None for r in store.requested())
    except (StoreError, sqlite3.Error, OSError) as err:
        if job is None or not (job.running or job.error):  # a running job creates the database with its first chunk
            show_error(err)
        return
    if missing and job is None:  # run elsewhere, or by a server that has stopped since
        st.info(f"{missing} requested rows are not stored yet: start the same evaluation into this folder to finish "
                "it (or run the command it was started with again).", icon=":material/pending:")
    if not table:
        st.info("No finished image yet: the table appears when the first image's cases are stored.",
                icon=":material/hourglass_empty:")
        return
    case_panel(table)
    plots(table)
    rows_panel(folder, stored)


def job_status(job: Job) -> None:
    st.caption(f"Started on this server: {job.summary}")
    if job.running:
        progress(str(job.folder))
    elif job.error:
        show_error(job.error)
    elif job.stopped:
        st.warning(f"Stopped after {job.done} of {job.total} rows. Every finished chunk is stored: start the same "
                   "evaluation into this folder to finish it.", icon=":material/stop_circle:")
    elif job.outcome is not None:
        o = job.outcome
        st.success(f"Finished: {o.added} new rows ({o.stored_before} already stored) in {o.seconds:.1f} s.",
                   icon=":material/check_circle:")
    if job.skipped:
        st.caption(f"Skipped {len(job.skipped)} image(s) the model already gets wrong: {', '.join(job.skipped[:8])}"
                   + (" …" if len(job.skipped) > 8 else ""))
    with st.expander("The same evaluation from the command line", icon=":material/terminal:"):
        st.code(command_line(job), language="bash", wrap_lines=True)


@st.fragment(run_every=POLL_S)
def progress(folder: str) -> None:
    """Redrawn every second while the job runs; when it has finished, the whole page reruns to show the table."""
    job = job_for(folder)
    if job is None or not job.running:
        st.rerun()
    fraction, text = job.progress()
    cols = st.columns([6, 1], vertical_alignment="center")
    cols[0].progress(min(1.0, fraction), text=text)
    cols[1].button("Stop", key=f"{PAGE}.stop", icon=":material/stop_circle:", width="stretch", on_click=job.stop.set,
                   disabled=job.stop.is_set(), help="Stop after the chunk in progress; what is stored stays.")


def case_rows(table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The papers' table as the page shows it: one row per attack setting, swept value and case."""
    from advlens.models import get_spec
    from attacks.registry import ATTACKS

    rows = []
    for r in table:
        defaults = ATTACKS[r["attack"]].defaults() if r["attack"] in ATTACKS else {}
        dataset = get_spec(r["model"]).dataset
        budget_keys = preset_keys(r["attack"], dataset) if r["attack"] in ATTACKS else {}
        params = {**r["params"], **({r["sweep_param"]: r["sweep_value"]} if r["sweep_param"] else {})}
        rows.append({
            "attack": short_label(r["attack"]) if r["attack"] in ATTACKS else r["attack"],
            "setting": ", ".join(f"{k}={v}" for k, v in r["params"].items()
                                 if defaults.get(k, object()) != v and k not in budget_keys) or "defaults",
            "budget": budget_label(r["attack"], dataset, params) if r["attack"] in ATTACKS else "",
            "swept": f"{r['sweep_param']} = {r['sweep_value']}" if r["sweep_param"] else "", "case": r["case"],
            "n": r["n"], "ASR %": r["asr"], "ℓ0": r["l0"], "ℓ1": r["l1"], "ℓ2": r["l2"], "ℓ∞": r["linf"],
            "queries": r.get("queries"), "queries (successes)": r.get("queries_success"), "ranked by": r["by"]})
    return rows


def case_panel(table: list[dict[str, Any]]) -> None:
    from advlens.evaluation.tables import to_csv, to_json, to_markdown

    section("Best, average and worst case", "Per attack setting: over all incorrect targets of each image, the "
                                            "least and the most distorted target and a random one (EAD's protocol). "
                                            "ASR over images; distortions are means over successes, [0, 1] scale.")
    rows = case_rows(table)
    if not any(r["swept"] for r in rows):
        rows = [{k: v for k, v in r.items() if k != "swept"} for r in rows]
    if all(r["queries"] is None for r in rows):  # only white-box attacks: no query counts to show
        rows = [{k: v for k, v in r.items() if not k.startswith("queries")} for r in rows]
    number = st.column_config.NumberColumn
    st.dataframe(rows, hide_index=True, width="stretch", column_config={
        "ASR %": number(format="%.1f"), "ℓ0": number(format="%.1f", help="pixels changed"),
        "ℓ1": number(format="%.3f"), "ℓ2": number(format="%.3f"), "ℓ∞": number(format="%.3f"),
        "n": number(help="images in the case"),
        "queries": number(format="%.0f", help="Black-box attacks: mean model queries per attacked example, over all "
                          "of them, failures included (for best / average / worst: every target of the images). "
                          "Empty for white-box attacks, which do not count queries."),
        "queries (successes)": number(format="%.0f", help="Mean queries over the case's successful examples (the "
                                      "ones its distortions are averaged over)."),
        "ranked by": st.column_config.TextColumn(
            help="the norm that picks the best and worst target: each attack's own")})
    cols = st.columns(3, gap="small")
    for col, (label, text, name, mime) in zip(cols, (("Table as Markdown", to_markdown(table), "table.md", "text/markdown"),
                                                     ("Table as CSV", to_csv(table), "table.csv", "text/csv"),
                                                     ("Table as JSON", to_json(table), "table.json", "application/json"))):
        col.download_button(label, text, name, mime, key=f"{PAGE}.dl.{name}", icon=":material/download:",
                            on_click="ignore", width="stretch")


def plots(table: list[dict[str, Any]]) -> None:
    from interpret.evaluation_plots import asr_distortion_figure, evaluation_sweep_figure

    section("Plots")
    st.markdown("**Success rate against distortion**", help="One point per attack setting and case, at the mean "
                                                           "distortion in the attack's own norm.")
    plot(asr_distortion_figure(table), f"{PAGE}.asr")
    st.markdown("**Against the swept parameter**")
    plot(evaluation_sweep_figure(table), f"{PAGE}.sweep", "No parameter was swept in this evaluation: choose one "
                                                           "under Sweep in the form to get these curves.")


# ------------------------------------------------------------------------------------------------ stored rows

def rows_panel(folder: Path, stored: list[Any]) -> None:
    """Every stored row; clicking one (or choosing it below) opens that image and result in Explore."""
    from advlens.models import get_spec

    section("Stored results", "One row per image, target and attack setting. Click a row to open it in Explore "
                              "(the stored result: nothing is re-run).")
    names: dict[str, list[str]] = {}
    rows = []
    for r in stored:
        classes = names.setdefault(r["model"], get_spec(r["model"]).class_names)
        rows.append({"#": r["id"], "image": r["image"], "attack": r["attack"],
                     "target": "untargeted" if r["target"] == UNTARGETED else classes[r["target"]],
                     "prediction": f"{classes[r['label']]} → {classes[r['pred_after']]}",
                     "success": "✓" if r["success"] else "✗", "ℓ0": r["l0"], "ℓ1": r["l1"], "ℓ2": r["l2"],
                     "ℓ∞": r["linf"], "queries": r["queries"], "time (s)": r["seconds"]})
    if all(r["queries"] is None for r in rows):
        rows = [{k: v for k, v in r.items() if k != "queries"} for r in rows]
    ids = [r["id"] for r in stored]
    key = f"{ROWS_KEY}.{st.session_state.get(ROWS_KEY, 0)}"  # a new key after each open clears the selection
    number = st.column_config.NumberColumn
    st.dataframe(rows, hide_index=True, width="stretch", height=min(400, 35 * (len(rows) + 1) + 3), key=key,
                 on_select=functools.partial(_clicked, str(folder), ids, key), selection_mode="single-row",
                 column_config={"ℓ1": number(format="%.3f"), "ℓ2": number(format="%.3f"), "ℓ∞": number(format="%.3f"),
                                "time (s)": number(format="%.2f")})
    labels = {r["#"]: f"#{r['#']} · {r['attack']} · {r['image']} → {r['target']} {r['success']}" for r in rows}
    pick_key = f"{PAGE}.row"
    if st.session_state.get(pick_key) not in labels:  # the first success, where there is one
        st.session_state[pick_key] = next((r["id"] for r in stored if r["success"]), ids[0])
    cols = st.columns([3, 1], vertical_alignment="bottom")
    chosen = cols[0].selectbox("Stored result", ids, key=pick_key, format_func=labels.__getitem__)
    cols[1].button("Open in Explore", key=f"{PAGE}.open_row", icon=":material/biotech:", width="stretch",
                   on_click=open_in_explore, args=(str(folder), chosen),
                   help="Show this stored result in Explore (it replaces Explore's current result).")


def _clicked(folder: str, ids: list[int], key: str) -> None:
    selection = st.session_state[key].selection.rows
    if selection:
        st.session_state[ROWS_KEY] = st.session_state.get(ROWS_KEY, 0) + 1
        open_in_explore(folder, ids[selection[0]])


def stored_run(folder: Path, row_id: int) -> Run:
    """The Explore record of a stored row: the image as loaded for the model, x₀ + the stored δ, the stored report."""
    import dataclasses

    import torch

    from advlens.evaluation.store import ResultStore
    from advlens.images import gallery, load_image
    from advlens.models import get_spec
    from advlens.report import AttackReport
    from attacks import AttackResult

    with ResultStore(folder, create=False) as store:
        saved, delta = store.report(row_id), store.perturbation(row_id)
    fields = {f.name for f in dataclasses.fields(AttackReport)}
    report = AttackReport(**{k: v for k, v in saved.items() if k in fields})
    if report.c is None:  # NaN is stored as null
        report.c = float("nan")
    spec = get_spec(report.model)
    original = load_image(report.image, spec).tensor
    adversarial = (original + torch.from_numpy(delta).reshape(original.shape[1:])[None]).clamp(0, 1)
    result = AttackResult(
        attack=report.attack, original=original, adversarial=adversarial, success=torch.tensor([report.success]),
        labels=torch.tensor([report.label]), targets=None if report.target is None else torch.tensor([report.target]),
        const=torch.tensor([report.c]), loss_history=torch.zeros(0, 1), iterations=report.iterations,
        seconds=report.seconds, device=report.device, stopped=report.stopped, params=dict(report.params))
    titles = {it.ref: it.title for it in gallery(spec.dataset)} if report.image.startswith(f"{spec.dataset}:") else {}
    return Run(id=row_id, attack=report.attack, title=short_label(report.attack), model=report.model,
               image_title=titles.get(report.image, report.image), class_names=spec.class_names, result=result,
               report=report, trace=Trace(), notes=list(report.notes),
               source=f"Opened from the evaluation in {folder} (row #{row_id}): the stored result, not re-run.")


def open_in_explore(folder: str, row_id: int) -> None:
    """A callback: the row becomes Explore's result, and Explore's model, image, attack, target and parameters
    are set to the row's, so **Run attack** there runs the same again. The page then switches to Explore."""
    from advlens.models import ModelUnavailable, get_spec
    from attacks.registry import ATTACKS

    try:
        run = stored_run(Path(folder), row_id)
    except (ValueError, ModelUnavailable, sqlite3.Error, OSError, TypeError) as err:  # StoreError, ImageError
        st.session_state[OPEN_ERROR] = f"Row #{row_id} cannot be opened: {first_line(err)}"
        return
    ds = get_spec(run.model).dataset
    st.session_state[MODEL_KEY] = run.model
    if run.image_title != run.report.image:  # a gallery image: the picker shows it
        st.session_state[image_key(ds)] = run.report.image
        st.session_state[f"image.source.{ds}"] = "gallery"
    if run.attack in ATTACKS:
        st.session_state[attack_key("explore")] = run.attack
        names = {p.name for p in ATTACKS[run.attack].params}
        for name, value in run.report.params.items():
            if name in names:
                st.session_state[param_key("explore", ds, run.attack, name)] = value
    st.session_state[widget_key("explore", f"{ds}.target")] = UNTARGETED if run.report.target is None else \
        run.report.target
    runs()["explore"] = run
    st.session_state[GOTO_EXPLORE] = True


def follow_open() -> None:
    """Called at the top of the page: after a row was opened, go to Explore."""
    if st.session_state.pop(GOTO_EXPLORE, False):
        st.switch_page("app_pages/explore.py")

