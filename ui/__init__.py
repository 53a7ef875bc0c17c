"""The Streamlit layer of advlens: the only package (with app.py and app_pages/) that imports streamlit.

Pages import the submodules they use: ``state`` (session-state keys and per-page records), ``resources`` (torch
settings, the device, models loaded in the background), ``chrome`` (header, sections, sidebar, errors, plots),
``pickers`` (image and target), ``forms`` (widgets generated from the attack registry's parameter schema),
``live`` (live runs with progress and Stop), ``analysis`` (a result's report and interpretability scores),
``figures`` (a result's plotly panels), ``panels`` (headline, metrics, downloads), ``sweeps`` (Sweep's axis and
grid), ``evaluation`` (Evaluate's form and background evaluation jobs), ``evaluation_results`` (its tables, plots
and opening a stored row in Explore) and ``colours``.
"""
