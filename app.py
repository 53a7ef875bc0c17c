"""advlens — an interactive lab for seeing how adversarial attacks bend a neural network.

    streamlit run app.py

Four pages (``pages/``): Explore one attack, Compare C&W / EAD / StrAttack, Sweep β or κ, Teach proximal
optimisation. Shared widgets and state live in ``advlens/ui.py``; the attacks, models and interpretability
maths live in the packages the pages call.
"""

from __future__ import annotations

import logging

import streamlit as st

from advlens import ui

st.set_page_config(page_title="advlens · adversarial lab", page_icon=":material/blur_on:", layout="wide",
                   initial_sidebar_state="expanded")
ui.configure_torch()
ui.warm_up()
ui.style()
ui.keep_widget_state()

PAGES = [
    st.Page("pages/explore.py", title="Explore", icon=":material/biotech:", default=True,
            help="Attack one image and take the result apart."),
    st.Page("pages/compare.py", title="Compare", icon=":material/view_column:",
            help="C&W, EAD (EN and L1 rules) and StrAttack on the same image and target."),
    st.Page("pages/sweep.py", title="Sweep", icon=":material/ssid_chart:",
            help="Sweep β or κ over a handful of images (Fig. 2 of the EAD paper)."),
    st.Page("pages/teach.py", title="Teach", icon=":material/school:",
            help="Proximal optimisation: soft thresholding, ISTA, FISTA and COV step by step."),
]

page = st.navigation(PAGES, position="sidebar")
ui.sidebar()
ui.await_previous_run()
try:
    page.run()
except Exception as err:  # the last line of defence: one sentence in the page, the traceback in the server log
    logging.getLogger("advlens.app").exception("page %s failed", page.title)
    ui.show_error(f"Something went wrong on this page: {ui.first_line(err)}")
