"""advlens — an interactive lab for seeing how adversarial attacks bend a neural network.

    streamlit run app.py

This file is both the server and the script. ``streamlit run`` finds the ``st.App`` at the bottom and serves it;
its lifespan (``ui.resources.lifespan``) imports torch and the attack registry before the server answers its
health check, so a first visit does not wait seconds for them. Every browser session then runs this file as its
script (Streamlit runs it as ``__main__``): page config, the five pages of ``app_pages/`` (Explore, Compare, Sweep,
Evaluate, Teach), the sidebar. Pages compose the widgets and panels of ``ui/``; the maths lives in the packages they call.
"""

from __future__ import annotations

import logging
from pathlib import Path

import streamlit as st

FAVICON = str(Path(__file__).with_name("ui") / "favicon.png")  # served by the app: a material icon is fetched from Google

PAGES = (
    ("app_pages/explore.py", "Explore", ":material/biotech:", "Attack one image and take the result apart."),
    ("app_pages/compare.py", "Compare", ":material/view_column:", "Several attacks on the same image and target."),
    ("app_pages/sweep.py", "Sweep", ":material/ssid_chart:", "Sweep any numeric parameter of an attack over a "
                                                          "handful of images (Fig. 2 of the EAD paper for β)."),
    ("app_pages/evaluate.py", "Evaluate", ":material/table_chart:", "The papers' protocol over a handful of images: best, "
                                                                "average and worst case tables in a results folder."),
    ("app_pages/defenses.py", "Defenses & transfer", ":material/shield:", "Craft on one model, judge on a defended "
                                                                          "one: transfer against κ; feature squeezing."),
    ("app_pages/perturbation.py", "Perturbation analysis", ":material/functions:", "Closed-form ℓp attacks, "
     "fooling ratio against ε, ρ̂₂ and autoencoder attacks (Balda et al.)."),
    ("app_pages/teach.py", "Teach", ":material/school:", "Proximal optimisation: soft thresholding, ISTA, FISTA and COV "
                                                     "step by step."),
)


def main() -> None:
    from ui import chrome, history, links, live, paper_presets, resources, state

    st.set_page_config(page_title="advlens · adversarial lab", page_icon=FAVICON, layout="wide",
                       initial_sidebar_state="expanded")
    resources.configure_torch()
    chrome.style()
    state.keep_widget_state()
    links.apply_url()  # a shared link's model, image, attack and parameters, before any widget is drawn
    page = st.navigation([st.Page(path, title=title, icon=icon, help=help_, default=k == 0)
                          for k, (path, title, icon, help_) in enumerate(PAGES)], position="sidebar")
    chrome.sidebar()
    paper_presets.sidebar()
    live.await_previous_run()
    history.before_page()
    try:
        page.run()
    except Exception as err:  # the last line of defence: one sentence in the page, the traceback in the server log
        logging.getLogger("advlens.app").exception("page %s failed", page.title)
        chrome.show_error(f"Something went wrong on this page: {chrome.first_line(err)}")
    history.after_page(page.title)
    resources.warm_up()


if __name__ == "__main__":  # a session's script run
    main()
else:  # imported by the server that `streamlit run app.py` starts
    from ui.resources import lifespan

    app = st.App(__file__, lifespan=lifespan)
