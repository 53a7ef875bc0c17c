"""Paper presets: one click sets the model, image, attacks and budget that reproduce a figure or table of the
seeds, and opens the page that runs it. Nothing runs until the page's own button is pressed; each preset says
how long that takes on the project's 2-core CPU machine (measured by ``benchmarks/paper_presets.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from ui.state import (
    MODEL_KEY,
    SHARED,
    attack_key,
    image_key,
    param_key,
    sweep_axis_key,
    sweep_images_key,
    sweep_key,
    widget_key,
)

PENDING = "paper_presets.pending"  # the preset just pressed: its page is opened on the next script run
SHOWN = "paper_presets.shown"  # the preset whose note its page shows


@dataclass(frozen=True)
class PaperPreset:
    name: str
    source: str  # the figure or table it reproduces
    page: str  # app_pages/<page>.py
    button: str  # what to press there
    look_for: str  # one sentence: what the result shows
    seconds: str  # the run's time on the 2-core CPU machine
    state: dict[str, Any] = field(default_factory=dict)  # session-state keys → values (model and image included)


def _fig2() -> dict[str, Any]:
    ead = ("mnist", "ead")
    return {MODEL_KEY: "mnist-cnn", attack_key("sweep"): "ead", sweep_axis_key(*ead): "beta",
            sweep_key(*ead, "beta", "from"): 1e-5, sweep_key(*ead, "beta", "to"): 1e-1,
            sweep_key(*ead, "beta", "count"): 5, sweep_images_key("mnist"): 5,
            param_key("sweep", *ead, "binary_search_steps"): 6, param_key("sweep", *ead, "steps"): 500}


def _table1() -> dict[str, Any]:
    return {MODEL_KEY: "mnist-cnn", image_key("mnist"): "mnist:3",
            widget_key("compare", "lineup"): ["EAD-FISTA · EN rule", "COV"],
            # the app's MNIST CPU budget, written out so the preset means the same whatever was changed before
            **{param_key("compare", "mnist", SHARED, k): v
               for k, v in dict(beta=1e-2, binary_search_steps=3, steps=100, initial_const=1.0).items()}}


def _strattack() -> dict[str, Any]:
    return {MODEL_KEY: "mnist-cnn", image_key("mnist"): "mnist:7", attack_key("explore"): "strattack"}


PRESETS = (
    PaperPreset("EN vs L1 rule over β", "EAD paper, Fig. 2", "sweep", "Run sweep",
                "Both rules reach 100% success; for the same β the L1 rule has the lower ℓ1 and the higher ℓ2 "
                "and ℓ∞, and ℓ1 falls as β grows (6 × 500 iterations, enough for the trend of the figure).",
                "about 2 min", _fig2()),
    PaperPreset("COV vs EAD at β = 0.01", "EAD paper, Table 1", "compare", "Run both",
                "Both succeed, but EAD changes far fewer pixels (ℓ0) at a lower ℓ1: soft thresholding sets most of δ "
                "exactly to zero, the change of variables cannot.", "about 2 s", _table1()),
    PaperPreset("StrAttack's sparse groups", "StrAttack paper, Figs. 1 and 4", "explore", "Run attack",
                "The group-sparsity grid: most 2×2 groups untouched, the rest concentrated on the strokes that turn "
                "a 7 into the target; the ASM outline sits on the same strokes.", "about 1 s", _strattack()),
)


def apply(preset: PaperPreset) -> None:
    """A button's callback: set the widgets' keys (callbacks run before the widgets exist) and ask for the page."""
    for key, value in preset.state.items():
        st.session_state[key] = value
    st.session_state[PENDING] = preset


def sidebar() -> None:
    """The presets in the sidebar, and the page switch a preset asked for."""
    with st.sidebar.expander("Paper presets", icon=":material/menu_book:"):
        for k, preset in enumerate(PRESETS):
            st.button(f"{preset.source}: {preset.name}", key=f"paper_preset.{k}", on_click=apply, args=(preset,),
                      width="stretch", help=f"Opens {preset.page.title()} with the model, image, attacks and "
                                            f"budget set; press **{preset.button}** there ({preset.seconds} on "
                                            f"a 2-core CPU). {preset.look_for}")
    preset = st.session_state.pop(PENDING, None)
    if isinstance(preset, PaperPreset):
        st.session_state[SHOWN] = preset
        st.switch_page(f"app_pages/{preset.page}.py")


def note(page: str) -> None:
    """On the page a preset opened: what was set, what to press, how long it takes, what to look for."""
    preset = st.session_state.get(SHOWN)
    if isinstance(preset, PaperPreset) and preset.page == page:
        st.info(f"**{preset.source}: {preset.name}** is set up. Press **{preset.button}** ({preset.seconds} on a "
                f"2-core CPU). {preset.look_for}", icon=":material/menu_book:")
