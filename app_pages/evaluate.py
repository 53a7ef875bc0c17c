"""Evaluate: the papers' protocol on a handful of images (any registered attacks, every target), run in the
background into a results folder, or an existing folder opened; the best/average/worst table, the plots, and
any stored row opened in Explore."""

from __future__ import annotations

import streamlit as st

from ui import chrome, evaluation, evaluation_results, resources

evaluation_results.follow_open()
chrome.page_header("Evaluate", "The papers' protocol over a handful of images: every chosen attack against every "
                               "target, stored in a results folder as it runs (resumable, the same database as "
                               "`advlens evaluate`). The run goes on in the background while you use other pages.")

choice = resources.current_model()
if not resources.known_failure(choice):
    left, right = st.columns([3, 2], gap="large")
    with left:
        chrome.section("New evaluation", f"On {choice.spec.title} · {resources.device_label()}")
        form = evaluation.new_form(choice, resources.device().type)
    with right:
        chrome.section("Open results")
        evaluation_results.open_form()
    if form is not None:
        try:
            job = evaluation.start_job(evaluation.build_request(form, choice, resources.device()), resources.device())
        except ValueError as err:  # bad input (ImageError and the store's errors included): one sentence
            chrome.show_error(err)
        else:
            evaluation_results.show_folder(job.folder)

folder = evaluation_results.shown_folder()
if folder is not None:
    evaluation_results.results(folder)
else:
    st.info("No results yet: start an evaluation (two digits with the quick budget take seconds to a minute on a "
            "CPU) or open a results folder.", icon=":material/arrow_upward:")
