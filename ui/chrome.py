"""The frame every page shares: header, sections, CSS, the sidebar, one-sentence errors, plots and images."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Optional

import streamlit as st

from ui.errors import first_line, show_error  # noqa: F401 (part of chrome's face for the pages)
from ui.state import MODEL_KEY, attack_runs, keep

if TYPE_CHECKING:
    import plotly.graph_objects as go
    from torch import Tensor

CSS = """
<style>
[data-testid="stMetricValue"] { font-size: 1.3rem; }
[data-testid="stMetric"] { padding: 0.45rem 0.55rem; }
[data-testid="stMetricLabel"] p { font-size: 0.82rem; }
</style>
"""
PLOT_CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"]}


def style() -> None:
    """Denser metric cards than Streamlit's default, so seven fit in a row at 1280 px."""
    st.html(CSS)


def page_header(title: str, intro: str) -> None:
    st.title(title, anchor=False)
    st.caption(intro)


def section(title: str, caption: str = "") -> None:
    st.subheader(title, anchor=False, divider="gray")
    if caption:
        st.caption(caption)


def plot(fig: Optional[go.Figure], key: str, missing: str = "Not available for this result.") -> None:
    if fig is None:
        st.info(missing, icon=":material/hourglass_empty:")
    else:
        st.plotly_chart(fig, width="stretch", key=key, config=PLOT_CONFIG)


def image_panel(x: Tensor, caption: str, width: int = 250) -> None:
    """An image that fills its column up to ``width`` px (so it lines up with the plotly panels beside it)."""
    from interpret.render import crisp

    with st.container(width=width):
        st.image(crisp(x), caption=caption, width="stretch")


def fmt_num(v: float) -> str:
    return "0" if v == 0 else f"{v:g}"


def fmt_value(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def sidebar() -> None:
    """The model picker and the device line, the same on every page."""
    from advlens.models import DEFAULT_MODEL, REGISTRY
    from ui.resources import device, device_label

    with st.sidebar:
        names = list(REGISTRY)
        key = keep(MODEL_KEY, DEFAULT_MODEL)
        if st.session_state[key] not in names:
            st.session_state[key] = DEFAULT_MODEL
        st.selectbox(
            "Model", names, key=key,
            format_func=lambda n: REGISTRY[n].title + ("" if REGISTRY[n].offline else " · download"),
            help="The network under attack. Models load once per server and are shared by all pages and sessions. "
                 "ResNet-50 and Inception-v3 need torchvision weights that are not bundled.",
        )
        spec = REGISTRY[st.session_state[key]]
        h, w = spec.input_size
        st.caption(f"{spec.channels}×{h}×{w} input · {spec.num_classes} classes · "
                   f"{'bundled weights' if spec.offline else 'weights from the torchvision cache'}")
        dev = device()
        st.markdown(f"**Device** &nbsp; :{'green' if dev.type == 'cuda' else 'orange'}-badge[{device_label()}]")
        if dev.type == "cpu":
            st.caption("No GPU here: the forms start from small budgets (a few binary-search steps × ~100 "
                       "iterations) so that an MNIST attack finishes in seconds. On CUDA they start from the "
                       "papers' 9 × 1000.")
        else:
            st.caption("GPU found: the forms start from the papers' budgets (9 binary-search steps × 1000 "
                       "iterations).")
        if attack_runs():
            st.caption(f"Attacks run this session: {attack_runs()}")
