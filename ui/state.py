"""Where the app keeps things in ``st.session_state``, and the typed record of each page's results.

* Widget keys that start with ``keep.`` survive page switches: ``keep_widget_state`` (called by app.py on every
  run) re-assigns them, the documented way to stop Streamlit from dropping the state of widgets that are not on
  the current page.
* An attack parameter's value sits at ``param_key(page, dataset, attack, name)``; a value several attacks share
  (Compare) uses the attack name ``SHARED``; Sweep's grid bounds sit at ``sweep_key``.
* Results live in ``runs()[page]`` as that page's record. ``attack_runs()`` counts calls into the engine, so a
  test (or a curious user) can check that a display knob never re-runs an attack.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

import streamlit as st

if TYPE_CHECKING:
    from torch import Tensor

    from advlens.report import AttackReport
    from attacks import AttackResult

KEEP = "keep."
RUNS = "runs"
COUNTER = "attack_runs"
BUSY = "attack_busy"  # a threading.Event, set when the session's last live run has stored its result
SHARED = "shared"


def keep(key: str, default: Any) -> str:
    """A widget key that keeps its value across pages, initialised once to ``default``."""
    full = key if key.startswith(KEEP) else KEEP + key
    if full not in st.session_state:
        st.session_state[full] = default
    return full


def keep_widget_state() -> None:
    """Called by app.py before the page runs: re-assigning a widget's key keeps it when its page is not shown."""
    for key in list(st.session_state.keys()):
        if isinstance(key, str) and key.startswith(KEEP):
            st.session_state[key] = st.session_state[key]


def param_key(page: str, dataset: str, attack: str, name: str) -> str:
    """Where the value of one attack parameter lives: per page, dataset (budgets differ) and attack."""
    return f"{KEEP}{page}.{dataset}.{attack}.{name}"


MODEL_KEY = KEEP + "model"  # the sidebar's model


def image_key(dataset: str) -> str:
    """The gallery image chosen for a dataset (shared by every page)."""
    return f"{KEEP}image.{dataset}"


def widget_key(page: str, name: str) -> str:
    """A page's own widget that is not an attack parameter: display knobs (cmap, opacity, nu, channel), Teach's
    sliders, Sweep's strip selector."""
    return f"{KEEP}{page}.{name}"


def page_widget(page: str, name: str, default: Any) -> str:
    """``widget_key(page, name)``, kept across pages and initialised once to ``default``."""
    return keep(widget_key(page, name), default)


def attack_key(page: str) -> str:
    """The page's choice of attack (Explore's segmented control, Sweep's select box)."""
    return f"{KEEP}{page}.attack"


def sweep_key(dataset: str, attack: str, name: str, part: str) -> str:
    """Sweep's grid for parameter ``name``: ``part`` is "from", "to" or "count"."""
    return param_key("sweep", dataset, attack, f"{name}:{part}")


def sweep_axis_key(dataset: str, attack: str) -> str:
    """The parameter Sweep sweeps for ``attack``."""
    return param_key("sweep", dataset, attack, ":axis")


def sweep_images_key(dataset: str) -> str:
    """How many gallery images Sweep attacks."""
    return f"{KEEP}sweep.{dataset}.images"


def runs() -> dict[str, Any]:
    """The session's stored results, by page. Pages take this dict before a live run and store into it
    directly: after a Stop, the stopped script may not touch ``st.session_state`` any more (every access raises)."""
    if RUNS not in st.session_state:
        st.session_state[RUNS] = {}
    return st.session_state[RUNS]


def attack_runs() -> int:
    return int(st.session_state.get(COUNTER, 0))


def count_run() -> None:
    st.session_state[COUNTER] = attack_runs() + 1


# ------------------------------------------------------------------------------------------------ records

@dataclass
class Trace:
    """What the live callback saw that the result does not keep: where each binary-search step began."""

    step_starts: list[int] = field(default_factory=list)
    step_consts: list[float] = field(default_factory=list)  # c (of the first image) in each binary-search step
    stopped_by_user: bool = False
    stop_reason: str = ""  # why a live run ended early: a key of ui.live.STOP_WORDS
    queries: list[int] = field(default_factory=list)  # a black-box attack's query count after each iteration


@dataclass
class Run:
    """One attack result and everything its panels draw from (Explore's result, one Compare column)."""

    id: int
    attack: str  # registry name
    title: str
    model: str  # registry name of the model
    image_title: str
    class_names: list[str]
    result: AttackResult  # on the CPU
    report: AttackReport  # the one report: metrics, predictions, groups (its explanation is left empty)
    trace: Trace
    notes: list[str] = field(default_factory=list)
    scores: Optional[dict] = None  # interpretability scores (ASM, CAMs, IS curve), computed once
    analysis_error: Optional[str] = None
    source: str = ""  # where a result not run on this page came from (a row of an evaluation), in words

    @property
    def delta(self) -> Tensor:
        return self.result.perturbation

    @property
    def explained_target(self) -> Optional[int]:
        return None if self.scores is None else int(self.scores["targets"][0])


@dataclass
class CompareRecord:
    runs: list[Run] = field(default_factory=list)


@dataclass
class SweepRow:
    value: Any
    series: str  # a choice of the attack's variant parameter (e.g. EAD's decision rule), or "" for one series
    result: AttackResult
    metrics: dict[str, float]  # l0, l1, l2, linf, asr: interpret.metrics.summarise


@dataclass
class SweepRecord:
    attack: str
    param: str  # the swept parameter
    values: list[Any]
    series_param: Optional[str]  # the parameter whose choices make the series, if any
    series: list[str]
    titles: list[str]  # the images
    class_names: list[str]
    labels: Tensor
    targets: Tensor
    original: Tensor
    fixed: dict[str, Any]  # every other parameter, as run
    rows: list[SweepRow] = field(default_factory=list)
    model: str = ""  # registry name of the model the sweep ran on
    refs: list[str] = field(default_factory=list)  # the images' gallery refs, in the order of ``titles``


@dataclass
class TeachRecord:
    image: str
    model: str
    params: dict[str, Any]
    curves: dict[str, dict[str, Any]] = field(default_factory=dict)  # optimiser → objective, l1, success
