"""Shared widgets and state for the Streamlit app: one place for everything the pages have in common.

Pages compose these helpers and call the packages; nothing here does attack or interpretability maths. What lives
here: the model picker and device line (cached models), the image picker (gallery, thumbnails, upload), the attack
parameter form, the live runner (progress bar, redrawn perturbation, Stop button), the result record kept in
``st.session_state``, the result panels (plotly figures from ``interpret.figures``) and the downloads.

State conventions:

* widget keys that start with ``keep.`` survive page switches (``app.py`` re-assigns them every run, the
  documented way to stop Streamlit from cleaning up the state of widgets that are not on the current page);
* results live in ``st.session_state["runs"][page]``; ``st.session_state["attack_runs"]`` counts calls into the
  engine, so a test (or a curious user) can check that a display knob never re-runs an attack.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch
from PIL import Image
from plotly.subplots import make_subplots
from torch import Tensor

from advlens import engine, models
from advlens.images import GalleryImage, ImageError, LoadedImage, gallery, load_image, to_uint8
from attacks import AttackResult, IterationState
from interpret import figures
from interpret.metrics import distortion

log = logging.getLogger("advlens.app")

KEEP = "keep."
RUNS = "runs"
COUNTER = "attack_runs"
BUSY = "attack_busy"  # a threading.Event, set when the session's last live run has stored its result

CMAPS = ("inferno", "viridis", "magma", "cividis", "turbo", "jet", "hot")
LOG_C = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
LOG_BETA = (0.0, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3)
LOG_LR = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)

ATTACK_SHORT = {"cw": "C&W L2", "ead": "EAD-FISTA", "ead-ista": "EAD-ISTA", "cov": "COV", "strattack": "StrAttack"}
ATTACK_BLURB = {
    "cw": "Carlini & Wagner: min ‖δ‖₂² + c·f(x₀ + δ) in tanh space with Adam; keeps the least-ℓ2 success.",
    "ead": "Elastic-net attack: min c·f + β‖δ‖₁ + ‖δ‖₂² on the pixel box, by FISTA with soft-thresholding "
           "(Chen et al. 2018).",
    "ead-ista": "The same elastic-net objective by plain ISTA (no momentum): slower, the textbook proximal method.",
    "cov": "The elastic net through tanh + Adam: subgradient steps never land on zero, the reason EAD uses ISTA.",
    "strattack": "Structured attack: min c·f + γ‖δ‖₂² + τ Σ_G ‖δ_G‖₂ with ‖δ‖∞ ≤ ε, by ADMM; perturbs few "
                 "groups of pixels (Xu et al. 2019).",
}

# Colours used for the same thing everywhere: true class, target class, the attacks of the Compare page.
TRUE_COLOUR, TARGET_COLOUR, OTHER_COLOUR = "#2e7d32", "#c62828", "#9e9e9e"
ATTACK_COLOURS = {"cw": "#1f77b4", "ead": "#d62728", "ead-ista": "#ff7f0e", "cov": "#9467bd", "strattack": "#2ca02c"}


# ================================================================================================ setup, state

def configure_torch() -> None:
    """Small models run fastest on one CPU thread; a 2-core machine shared with a browser is best left one."""
    if not torch.cuda.is_available() and not os.environ.get("ADVLENS_THREADS"):
        torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    elif os.environ.get("ADVLENS_THREADS"):
        torch.set_num_threads(max(1, int(os.environ["ADVLENS_THREADS"])))


@st.cache_resource(show_spinner=False)
def warm_up() -> threading.Thread:
    """Import the CAM library in the background once per server: its first import (torchvision, OpenCV) takes
    seconds, and would otherwise delay the first result."""
    def work() -> None:
        try:
            import pytorch_grad_cam  # noqa: F401

            import advlens.explain  # noqa: F401
        except Exception:  # the panels report it when they need it
            log.exception("warm-up import failed")

    thread = threading.Thread(target=work, name="advlens-warm-up", daemon=True)
    thread.start()
    return thread


@st.cache_resource(show_spinner=False)
def device() -> torch.device:
    return engine.default_device()


def device_label() -> str:
    dev = device()
    if dev.type == "cuda":
        return f"CUDA · {torch.cuda.get_device_name(dev)}"
    return f"CPU · {torch.get_num_threads()} thread{'s' if torch.get_num_threads() > 1 else ''}"


@st.cache_resource(show_spinner="Loading the model (once per server)…")
def _load_model(name: str, device_name: str) -> tuple[Optional[models.PixelModel], Optional[str]]:
    """The model, shared by every session and rerun; or the one-sentence reason it cannot be loaded here."""
    try:
        return models.load_model(name, device_name), None
    except models.ModelUnavailable as err:
        return None, str(err)
    except Exception as err:  # a broken weights file or library: still one sentence, never a traceback
        log.exception("loading %s failed", name)
        return None, f"The model {name} could not be loaded here ({type(err).__name__}: {first_line(err)})."


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


def runs() -> dict:
    """The session's stored results. Pages take this dict before a live run and store into it directly: after a
    Stop, the stopped script may not touch ``st.session_state`` any more (every access raises)."""
    if RUNS not in st.session_state:
        st.session_state[RUNS] = {}
    return st.session_state[RUNS]


def attack_runs() -> int:
    return int(st.session_state.get(COUNTER, 0))


def _count_run() -> None:
    st.session_state[COUNTER] = attack_runs() + 1


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def show_error(err: BaseException | str) -> None:
    """One clear sentence in the page; the traceback (if any) goes to the server log only."""
    st.error(err if isinstance(err, str) else first_line(err), icon=":material/error:")


CSS = """
<style>
[data-testid="stMetricValue"] { font-size: 1.3rem; }
[data-testid="stMetric"] { padding: 0.45rem 0.55rem; }
[data-testid="stMetricLabel"] p { font-size: 0.82rem; }
</style>
"""


def style() -> None:
    """Denser metric cards than Streamlit's default, so seven fit in a row at 1280 px."""
    st.html(CSS)


def page_header(title: str, intro: str) -> None:
    st.title(title, anchor=False)
    st.caption(intro)


# ================================================================================================ model, device

@dataclass
class ModelChoice:
    name: str
    spec: models.ModelSpec
    model: Optional[models.PixelModel]
    error: Optional[str]


def sidebar() -> None:
    """The model picker and the device line, the same on every page."""
    with st.sidebar:
        names = list(models.REGISTRY)
        key = keep("model", models.DEFAULT_MODEL)
        if st.session_state[key] not in names:
            st.session_state[key] = models.DEFAULT_MODEL
        st.selectbox(
            "Model", names, key=key,
            format_func=lambda n: models.REGISTRY[n].title + ("" if models.REGISTRY[n].offline else " · download"),
            help="The network under attack. Models load once per server and are shared by all pages and sessions. "
                 "ResNet-50 and Inception-v3 need torchvision weights that are not bundled.",
        )
        spec = models.REGISTRY[st.session_state[key]]
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
        runs_so_far = attack_runs()
        if runs_so_far:
            st.caption(f"Attacks run this session: {runs_so_far}")


def current_model() -> ModelChoice:
    name = st.session_state.get(KEEP + "model", models.DEFAULT_MODEL)
    if name not in models.REGISTRY:
        name = models.DEFAULT_MODEL
    spec = models.REGISTRY[name]
    model, error = _load_model(name, str(device()))
    return ModelChoice(name, spec, model, error)


def require_model(choice: ModelChoice) -> bool:
    """Show why the model is unavailable (one sentence) and say what still works; True if it is usable."""
    if choice.model is not None:
        return True
    show_error(choice.error or f"The model {choice.name} is not available.")
    st.info("Pick another model in the sidebar: the bundled MNIST CNN and EfficientNet-Lite0 always work "
            "offline. Earlier results stay below.", icon=":material/info:")
    return False


# ================================================================================================ budgets, params

def budget(spec: models.ModelSpec) -> dict:
    """Starting budget: the papers' on CUDA; small enough for seconds (MNIST) or a minute (ImageNet) on CPU."""
    if device().type == "cuda":
        return dict(binary_search_steps=9, steps=1000, initial_const=1e-3 if spec.dataset == "mnist" else 0.1)
    if spec.dataset == "mnist":
        return dict(binary_search_steps=3, steps=100, initial_const=1.0)
    return dict(binary_search_steps=2, steps=30, initial_const=1.0)


def attack_defaults(name: str) -> dict:
    """The defaults of the attack function behind an engine name, for the parameters users may set."""
    info = engine.get_attack(name)
    fn: Optional[Callable] = info.run
    if name == "strattack":
        try:
            from attacks.strattack import strattack as fn
        except ImportError:
            fn = None
    sig = inspect.signature(fn).parameters if fn is not None else {}
    return {p: sig[p].default for p in info.params if p in sig and sig[p].default is not inspect.Parameter.empty}


def attack_available(name: str) -> Optional[str]:
    """None if the attack can run here, else one sentence why not."""
    if name == "strattack":
        try:
            import attacks.strattack  # noqa: F401
        except ImportError:
            return "StrAttack is not installed in this build of advlens."
    return None


@dataclass(frozen=True)
class ParamUI:
    label: str
    help: str
    kind: str  # "log", "int", "float", "bool", "rule"
    options: tuple = ()
    lo: Optional[float] = None
    hi: Optional[float] = None
    step: Optional[float] = None
    fmt: Optional[str] = None


PARAMS: dict[str, ParamUI] = {
    "beta": ParamUI("β · ℓ1 weight", "Weight of ‖δ‖₁ in the elastic-net objective c·f + β‖δ‖₁ + ‖δ‖₂². Larger β "
                    "→ sparser perturbations (fewer pixels changed); β = 0 is C&W's ℓ2 objective.", "log", LOG_BETA),
    "kappa": ParamUI("κ · confidence (logits)", "How far past the decision boundary the adversarial example must "
                     "land, in logits: f = max(max_{j≠t} Z_j − Z_t, −κ). Larger κ → more confident, larger δ.",
                     "float", step=1.0, fmt="%.1f"),
    "initial_const": ParamUI("c · initial constant", "Weight of the attack loss f. The binary search multiplies "
                             "it by 10 until an adversarial example is found, then bisects.", "log", LOG_C),
    "binary_search_steps": ParamUI("Binary-search steps", "How many values of c to try.", "int", lo=1, hi=20,
                                   step=1),
    "steps": ParamUI("Iterations per step", "Optimiser iterations for each value of c (early abort may stop "
                     "sooner).", "int", lo=1, hi=10000, step=50),
    "learning_rate": ParamUI("Step size α₀", "EAD: the ISTA/FISTA step size (decays as √(1 − k/K)). C&W and "
                             "COV: Adam's learning rate.", "log", LOG_LR),
    "decision_rule": ParamUI("Decision rule", "Which successful iterate EAD keeps: the least elastic-net "
                             "distortion (EN) or the least ℓ1 distortion (L1).", "rule"),
    "scaled_threshold": ParamUI("Textbook threshold α·β", "Soft-threshold by α_k·β (the proximal operator of "
                                "α_k·β‖·‖₁) instead of the paper's β.", "bool"),
    "abort_early": ParamUI("Abort early", "Stop a binary-search step when the batch's summed objective has not "
                           "fallen by 0.01% since the last of ten checks per step.", "bool"),
    "group_size": ParamUI("Group size r (px)", "StrAttack's r×r groups (2 for MNIST, 13 for ImageNet in the "
                          "paper).", "int", lo=1, hi=64, step=1),
    "stride": ParamUI("Group stride S (px)", "Stride of the group grid; S < r gives overlapping groups.", "int",
                      lo=1, hi=64, step=1),
    "epsilon": ParamUI("ε · ℓ∞ bound", "Largest change of any pixel, on the [0, 1] intensity scale (1 = no "
                       "bound).", "float", step=0.05, fmt="%.3f"),
    "rho": ParamUI("ρ · ADMM penalty", "Augmented-Lagrangian penalty of StrAttack's ADMM.", "float", step=0.5,
                   fmt="%.2f"),
    "tau": ParamUI("τ · group-sparsity weight", "Weight of Σ_G ‖δ_G‖₂: larger τ → fewer groups touched.", "float",
                   step=0.5, fmt="%.2f"),
    "gamma": ParamUI("γ · ℓ2 weight", "Weight of ‖δ‖₂² in StrAttack's objective.", "float", step=0.5,
                     fmt="%.2f"),
    "refine": ParamUI("Refine (Prop. 3)", "A second ADMM stage on the σ-sparse support of the first result: "
                      "sparser δ, but 8 × 400 more iterations.", "bool"),
}

OBJECTIVE_PARAMS = ("beta", "kappa", "learning_rate", "decision_rule", "scaled_threshold", "epsilon", "tau",
                    "gamma", "rho")
BUDGET_PARAMS = ("initial_const", "binary_search_steps", "steps", "abort_early", "refine")
GROUP_PARAMS = ("group_size", "stride")


def param_defaults(name: str, spec: models.ModelSpec) -> dict:
    defaults = attack_defaults(name)
    defaults.update(budget(spec))
    if name in ("cw", "cov") and device().type == "cpu":
        defaults["learning_rate"] = 0.05  # Adam needs a larger step to converge within the reduced budget
    if name == "strattack":
        size, stride = _default_grouping(spec)
        defaults.setdefault("group_size", size)
        defaults["group_size"] = defaults["group_size"] or size
        defaults["stride"] = defaults.get("stride") or stride
        if device().type == "cpu":
            defaults["refine"] = False  # the refine stage alone is 8 × 400 iterations
    return {p: v for p, v in defaults.items() if p in engine.get_attack(name).params}


def _default_grouping(spec: models.ModelSpec) -> tuple[int, int]:
    from interpret.groups import default_grouping

    size, stride = default_grouping(spec.input_size)
    return int(size), int(stride)


def fmt_num(v: float) -> str:
    return "0" if v == 0 else f"{v:g}"


def param_key(page: str, dataset: str, name: str, attack: str = "") -> str:
    """Where a parameter's value lives; Adam's learning rate (C&W, COV) is kept apart from EAD's step size."""
    if name == "learning_rate" and attack in ("cw", "cov"):
        name = "learning_rate.adam"
    return f"{KEEP}{page}.{dataset}.{name}"


def param_widget(page: str, dataset: str, name: str, default: Any, *, attack: str = "") -> str:
    """One parameter widget (inside a form); its value sits under the returned session-state key."""
    ui = PARAMS[name]
    key = keep(param_key(page, dataset, name, attack), default)
    label = ui.label
    if ui.kind == "log":
        options = tuple(sorted(set(ui.options) | {float(st.session_state[key])}))
        st.select_slider(label, options=options, key=key, format_func=fmt_num, help=ui.help)
    elif ui.kind == "int":
        st.number_input(label, min_value=int(ui.lo), max_value=int(ui.hi), step=int(ui.step), key=key, help=ui.help)
    elif ui.kind == "float":  # unbounded: the engine checks the range and says what is wrong in one sentence
        st.number_input(label, step=ui.step, format=ui.fmt, key=key, help=ui.help)
    elif ui.kind == "bool":
        st.checkbox(label, key=key, help=ui.help)
    elif ui.kind == "rule":
        st.radio(label, ("en", "l1"), key=key, horizontal=True, help=ui.help,
                 format_func=lambda r: {"en": "EN: β‖δ‖₁ + ‖δ‖₂²", "l1": "L1: ‖δ‖₁"}[r])
    return key


def read_params(page: str, dataset: str, names: Sequence[str], attack: str = "") -> dict:
    return {n: st.session_state.get(param_key(page, dataset, n, attack)) for n in names}


def attack_form(page: str, attack: str, spec: models.ModelSpec, *, label: int, default_target: Optional[int],
                submit: str = "Run attack", show_target: bool = True) -> Optional[dict]:
    """The attack's parameters and the target in a form: nothing runs until the submit button is pressed.

    Returns {"params": {...}, "target": int | None} on the run where the form was submitted, else None.
    """
    info = engine.get_attack(attack)
    defaults = param_defaults(attack, spec)
    names = [p for p in info.params if p in PARAMS]
    ds = spec.dataset
    objective = [p for p in OBJECTIVE_PARAMS if p in names]
    budget_ = [p for p in BUDGET_PARAMS if p in names]
    groups = [p for p in GROUP_PARAMS if p in names]
    target_key = None
    with st.form(f"{page}-form", border=True):
        if show_target:
            target_key = target_widget(page, spec, label, default_target)
        cols = st.columns(2, gap="medium")
        with cols[0]:
            st.markdown("**Objective**")
            for p in objective:
                param_widget(page, ds, p, defaults.get(p), attack=attack)
        with cols[1]:
            st.markdown("**Budget**")
            for p in budget_:
                param_widget(page, ds, p, defaults.get(p), attack=attack)
            if groups:
                st.markdown("**Groups**")
                for p in groups:
                    param_widget(page, ds, p, defaults.get(p), attack=attack)
        submitted = st.form_submit_button(submit, type="primary", icon=":material/play_arrow:")
    if not submitted:
        return None
    target = st.session_state.get(target_key) if target_key else None
    return {"params": read_params(page, ds, names, attack), "target": None if target in (None, -1) else int(target)}


def target_widget(page: str, spec: models.ModelSpec, label: int, default_target: Optional[int]) -> str:
    names = spec.class_names
    options = [-1] + [c for c in range(spec.num_classes) if c != label]
    key = keep(f"{page}.{spec.dataset}.target", default_target if default_target is not None else -1)
    if st.session_state[key] not in options:  # the image (and so its class) changed since the target was chosen
        st.session_state[key] = default_target if default_target in options else -1
    st.selectbox("Target class t", options, key=key,
                 format_func=lambda c: "Untargeted (any other class)" if c == -1 else
                 names[c] if names[c] == str(c) else f"{c} · {names[c]}",
                 help="Targeted: the attack must make the model say t. The default is the model's runner-up class "
                      "on this image, the easiest target.")
    return key


# ================================================================================================ images

@dataclass
class Picked:
    image: LoadedImage
    title: str
    label: int  # true class t0 (the model's prediction for an unlabelled upload)
    label_known: bool
    top: list[tuple[int, float]]  # the model's top-5 on the clean image

    @property
    def runner_up(self) -> Optional[int]:
        others = [c for c, _ in self.top if c != self.label]
        return others[0] if others else None


@st.cache_data(show_spinner=False, max_entries=64)
def gallery_items(dataset: str) -> list[GalleryImage]:
    return gallery(dataset)


@st.cache_data(show_spinner=False, max_entries=256)
def load_ref(ref: str, model_name: str) -> LoadedImage:
    return load_image(ref, models.REGISTRY[model_name])


@st.cache_data(show_spinner=False, max_entries=32)
def _load_bytes(digest: str, data: bytes, model_name: str) -> tuple[Optional[LoadedImage], Optional[str]]:
    try:
        return load_image(data, models.REGISTRY[model_name]), None
    except ImageError as err:
        return None, str(err)


def load_upload(data: bytes, model_name: str) -> tuple[Optional[LoadedImage], Optional[str]]:
    """An uploaded file as an image for the model, or the one-sentence reason it cannot be used."""
    return _load_bytes(hashlib.sha256(data).hexdigest(), data, model_name)


def thumb_items(items: list[GalleryImage], per_class: int = 1, limit: int = 20) -> list[GalleryImage]:
    """A browsable subset: the first image of each class (MNIST), or the first ``limit`` (ImageNet)."""
    if items and items[0].dataset == "mnist":
        seen: dict[int, int] = {}
        out = []
        for it in items:
            if seen.get(it.label, 0) < per_class:
                seen[it.label] = seen.get(it.label, 0) + 1
                out.append(it)
        return sorted(out, key=lambda it: it.label)
    return items[:limit]


def image_picker(page: str, choice: ModelChoice, *, with_upload: bool = True, preview: bool = True
                 ) -> Optional[Picked]:
    """Gallery select box, thumbnails and upload; shows the chosen image with the model's reading of it."""
    spec = choice.spec
    ds = spec.dataset
    items = gallery_items(ds)
    refs = [it.ref for it in items]
    titles = {it.ref: it.title for it in items}
    key = keep(f"image.{ds}", refs[0])
    source_key = f"image.source.{ds}"
    if st.session_state[key] not in refs:
        st.session_state[key] = refs[0]

    def picked_gallery() -> None:
        st.session_state[source_key] = "gallery"

    st.selectbox("Image", refs, key=key, format_func=lambda r: titles.get(r, r), on_change=picked_gallery,
                 help=f"{len(refs)} bundled {ds} images" + (" (held-out digits the network never trained on)"
                                                            if ds == "mnist" else "") + ".")
    row = st.columns(2 if with_upload else 1, gap="small")
    with row[0].popover("Browse", icon=":material/grid_view:", width="stretch",
                        help="Thumbnails of the gallery: one image per class."):
        thumbs = thumb_items(items)
        per_row = 5
        for start in range(0, len(thumbs), per_row):
            cols = st.columns(per_row, gap="small")
            for col, it in zip(cols, thumbs[start:start + per_row]):
                with col:
                    st.image(thumbnail(it.ref, choice.name), width="stretch")
                    st.button(short_title(it.title), key=f"thumb.{page}.{it.ref}", width="stretch", type="tertiary",
                              on_click=_use_ref, args=(key, source_key, it.ref), help=it.title)

    upload_error = None
    if with_upload:
        with row[1].popover("Upload", icon=":material/upload:", width="stretch", help="Use an image of your own."):
            up = st.file_uploader("Upload your own image", key=f"upload.{page}.{ds}",
                                  help="PNG, JPEG, WebP, GIF, BMP or TIFF. Large images are downscaled; grayscale "
                                       "and colour are converted to what the model takes.")
        if up is not None:
            data = up.getvalue()
            loaded, upload_error = load_upload(data, choice.name)
            if upload_error:
                show_error(upload_error)
            elif st.session_state.get(f"image.upload_id.{ds}") != up.file_id:
                st.session_state[f"image.upload_id.{ds}"] = up.file_id
                st.session_state[f"image.upload.{ds}"] = (up.name, data)
                st.session_state[source_key] = "upload"

    image: Optional[LoadedImage] = None
    title = ""
    if st.session_state.get(source_key) == "upload" and f"image.upload.{ds}" in st.session_state:
        name, data = st.session_state[f"image.upload.{ds}"]
        image, err = load_upload(data, choice.name)
        title = f"upload: {name}"
        if image is None:  # the model changed and the upload no longer converts: back to the gallery
            st.session_state[source_key] = "gallery"
    if image is None:
        ref = st.session_state[key]
        try:
            image = load_ref(ref, choice.name)
        except ImageError as err:
            show_error(err)
            return None
        title = titles.get(ref, ref)
    if choice.model is None:
        return None
    top = engine.top_classes(choice.model, image.tensor.to(choice.model.device), k=5)[0]
    label_known = image.label is not None
    label = image.label if label_known else top[0][0]
    picked = Picked(image, title, label, label_known, top)
    if preview:
        show_preview(picked, spec)
    return picked


def _use_ref(key: str, source_key: str, ref: str) -> None:
    st.session_state[key] = ref
    st.session_state[source_key] = "gallery"


def short_title(title: str) -> str:
    return title.split(" (")[0][:14]


@st.cache_data(show_spinner=False, max_entries=512)
def thumbnail(ref: str, model_name: str) -> np.ndarray:
    return figures.enlarge(to_rgb(load_ref(ref, model_name).tensor[0]), 84)


def show_preview(p: Picked, spec: models.ModelSpec) -> None:
    names = spec.class_names
    cols = st.columns([1, 1], gap="small", vertical_alignment="center")
    with cols[0]:
        st.image(crisp(p.image.tensor[0]), width="stretch")
    with cols[1]:
        pred, prob = p.top[0]
        st.markdown(f"**{p.title}**")
        if p.label_known:
            ok = pred == p.label
            st.markdown(f"True class **{names[p.label]}**  \nModel says **{names[pred]}** ({prob:.1%}) "
                        + (":green[✓]" if ok else ":red[✗ misclassified]"))
        else:
            st.markdown(f"Model says **{names[pred]}** ({prob:.1%})")
            st.caption("No label: the model's prediction is taken as the true class t₀.")
    for note in p.image.notes:
        st.caption(f":material/info: {note}")


def to_rgb(x: Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] → uint8 (H, W, 3)."""
    return figures.to_uint8(figures.image_hwc(x))


def crisp(x: Tensor, min_side: int = 280) -> np.ndarray:
    """An image for st.image: small images enlarged by pixel repetition so every pixel stays a sharp square."""
    return figures.enlarge(to_rgb(x), min_side) if max(x.shape[-2:]) <= figures.SMALL_SIDE else to_rgb(x)


# ================================================================================================ live runs

def _is_script_control(exc: BaseException) -> bool:
    """Streamlit's rerun/stop requests arrive as exceptions raised at the next st.* call of the script."""
    try:
        from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException
    except ImportError:  # pragma: no cover - older layouts
        return type(exc).__name__ in ("RerunException", "StopException")
    return isinstance(exc, ScriptControlException)


@dataclass
class Trace:
    """What the live callback saw that the result does not keep: where each binary-search step began."""

    step_starts: list[int] = field(default_factory=list)
    stopped_by_user: bool = False


def await_previous_run(timeout_s: float = 120.0) -> None:
    """Called before every page: wait until an interrupted attack of this session has stored its best result."""
    busy = st.session_state.get(BUSY)
    if isinstance(busy, threading.Event) and not busy.is_set():
        with st.spinner("Stopping the attack and keeping the best result found so far…"):
            busy.wait(timeout_s)


class LiveRunner:
    """Runs attacks with a progress bar, a redrawn perturbation and a Stop button.

    A click while the script is busy (on Stop, or on anything else) makes Streamlit stop the running script at
    its next ``st.*`` call (by raising a StopException, or a RerunException where fast reruns are off) and, with
    fast reruns (the default), start the new run at once in another thread. The callback's progress update is
    such an ``st.*`` call: it catches the exception and tells the attack to stop, and the attack returns the best
    result so far. The page stores it, and the runner re-raises the exception when its ``with`` block ends. Until
    then an Event in session state is clear, and the new run waits for it (``await_previous_run``, from app.py),
    so it shows the stored result. So Stop keeps the best so far, and any other click stops the attack cleanly
    instead of losing it.

    Use::

        with LiveRunner(container, key="explore", count=1) as live:
            out = live.run("ead", model, x, labels, targets, params, title="EAD")
            if out: store(out)
    """

    def __init__(self, where: Any, *, key: str, count: int = 1, frames: bool = True,
                 progress_every_s: float = 0.25, frames_every_s: float = 0.8) -> None:
        self.where, self.key, self.count, self.frames = where, key, count, frames
        self.progress_every_s, self.frames_every_s = progress_every_s, frames_every_s
        self.interrupt: Optional[BaseException] = None
        self.index = 0

    def __enter__(self) -> "LiveRunner":
        self.busy = threading.Event()
        st.session_state[BUSY] = self.busy
        self.slot = self.where.empty()
        with self.slot.container(border=True):
            head = st.columns([6, 1], vertical_alignment="center")
            self.bar = head[0].progress(0.0, text="Starting…")
            head[1].button("Stop", key=f"stop.{self.key}", icon=":material/stop_circle:", width="stretch",
                           help="Stop the attack now and keep the best adversarial example found so far.")
            self.frame_slot = st.empty() if self.frames else None
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None and self.interrupt is None:
                try:
                    self.slot.empty()
                except BaseException as err:  # a click that arrived just now: handled like one during the run
                    if not _is_script_control(err):
                        raise
                    self.interrupt = err
        finally:
            self.busy.set()
        if exc_type is None and self.interrupt is not None:
            raise self.interrupt
        return False

    @property
    def stopped(self) -> bool:
        return self.interrupt is not None

    def run(self, name: str, model: models.PixelModel, x: Tensor, labels: Tensor, targets: Optional[Tensor],
            params: dict, *, title: str, observe: Optional[Callable[[IterationState], None]] = None
            ) -> Optional[tuple[AttackResult, Trace]]:
        """One attack; None (with the message shown) if its parameters are invalid or a Stop came earlier.

        ``observe`` sees every iteration's state (keep what it reads on the device: reading syncs).
        """
        index, self.index = self.index, self.index + 1
        if self.stopped:
            return None
        reason = attack_available(name)
        if reason:
            with self.where:
                show_error(reason)
            return None
        trace = Trace()
        last = {"progress": 0.0, "frames": 0.0, "step": -1}
        prefix = f"{index + 1}/{self.count} · {title}" if self.count > 1 else title

        def callback(state: IterationState) -> Optional[bool]:
            if observe is not None:
                observe(state)
            if state.binary_step != last["step"]:
                last["step"] = state.binary_step
                trace.step_starts.append(state.iteration - 1)
            now = time.perf_counter()
            final = state.iteration >= state.total_iterations
            if not final and now - last["progress"] < self.progress_every_s:
                return None
            last["progress"] = now
            try:
                frac = min(1.0, (index + state.iteration / max(1, state.total_iterations)) / self.count)
                self.bar.progress(frac, text=self._progress_text(prefix, state))
                if self.frame_slot is not None and (now - last["frames"] >= self.frames_every_s or final):
                    last["frames"] = now
                    self._draw_frames(state)
            except BaseException as exc:
                if _is_script_control(exc):
                    self.interrupt = exc
                    trace.stopped_by_user = True
                    return True
                raise
            return None

        self._origin = x[:1].detach().cpu()
        x = x.to(model.device)
        labels = labels.to(model.device)
        targets = None if targets is None else targets.to(model.device)
        _count_run()
        try:
            result = engine.run_attack(name, model, x, labels, targets, callback=callback, **params)
        except (ValueError, ImportError) as err:
            with self.where:
                show_error(err)
            return None
        except Exception as err:  # an attack must never put a traceback in the page
            log.exception("attack %s failed", name)
            with self.where:
                show_error(f"The attack failed: {first_line(err)}")
            return None
        return result.to("cpu"), trace

    @staticmethod
    def _progress_text(prefix: str, state: IterationState) -> str:
        losses = state.losses
        parts = [prefix, f"c-step {state.binary_step + 1}", f"iteration {state.iteration}/{state.total_iterations}",
                 f"c = {float(state.const[0]):.3g}"]
        for key, label in (("l1", "ℓ1"), ("l2", "ℓ2")):
            if key in losses:
                parts.append(f"{label} = {float(losses[key][0]):.3g}")
        found = int(state.best_found.sum())
        parts.append("adversarial found ✓" if found == state.best_found.numel() else
                     f"adversarial found for {found}/{state.best_found.numel()}" if found else "searching")
        return " · ".join(parts)

    def _draw_frames(self, state: IterationState) -> None:
        from interpret.perturbation import amplified

        current = state.current[:1].detach().cpu()
        delta = current - self._origin
        with self.frame_slot.container(horizontal=True, gap="medium"):
            st.image(crisp(current[0], 160), caption="current iterate", width=140)
            st.image(crisp(amplified(delta)[0], 160), caption="δ (grey = 0, amplified)", width=140)


# ================================================================================================ results

@dataclass
class Run:
    """One attack result and everything the panels draw from it; kept in session state across pages."""

    id: int
    attack: str
    title: str
    model: str
    image_title: str
    class_names: list[str]
    result: AttackResult  # on the CPU
    summary: dict
    trace: Trace
    grouping: tuple[int, int]
    scores: Optional[dict] = None  # interpret scores (ASM, CAMs, IS curve), computed once
    analysis_error: Optional[str] = None

    @property
    def delta(self) -> Tensor:
        return self.result.perturbation

    @property
    def explained_target(self) -> Optional[int]:
        if self.scores is not None:
            return int(self.scores["targets"][0])
        return None


def make_run(name: str, title: str, choice: ModelChoice, picked_title: str, result: AttackResult, trace: Trace,
             *, analyse: bool = True, quartet: bool = True) -> Run:
    """The record of one attack: summary, grouping and (once) the interpretability scores.

    Touches no ``st.*`` and no session state: after a Stop it still runs in the stopped script's thread, where
    every Streamlit call raises.
    """
    model, spec = choice.model, choice.spec
    summary = engine.summary(result.to(model.device), model)
    size, stride = _default_grouping(spec)
    size, stride = int(result.params.get("group_size", size)), int(result.params.get("stride", stride))
    run = Run(id=int(time.time() * 1000) % 10**9, attack=name, title=title, model=choice.name, image_title=picked_title,
              class_names=spec.class_names, result=result, summary=summary, trace=trace, grouping=(size, stride))
    if analyse:
        run.scores, run.analysis_error = analyse_run(choice, result, quartet=quartet)
    return run


def analyse_run(choice: ModelChoice, result: AttackResult, *, quartet: bool = True
                ) -> tuple[Optional[dict], Optional[str]]:
    """ASM, CAMs and IS-vs-ν of one result, via advlens.explain; a failure is one sentence, not a crash."""
    try:
        from advlens.explain import interpretability_scores

        model = choice.model
        scores = interpretability_scores(model, choice.spec, result.to(model.device), quartet=quartet)
        return scores, None
    except Exception as err:
        log.exception("interpretability scores failed")
        return None, f"The interpretability panels could not be computed: {first_line(err)}"


def ensure_scores(run: Run, choice: ModelChoice, *, quartet: bool = True) -> None:
    """Compute a run's interpretability scores if they are missing (e.g. a click interrupted the first try)."""
    if run.scores is not None or run.analysis_error is not None:
        return
    if choice.model is None or choice.name != run.model:
        return
    with st.spinner("Computing the ASM and the class activation maps…"):
        run.scores, run.analysis_error = analyse_run(choice, run.result, quartet=quartet)


def is_at(run: Run, nu: float) -> tuple[float, float]:
    """(IS-ASM, IS-CAM) of a run at threshold ν: NaN where δ = 0 or the scores are missing."""
    if run.scores is None:
        return math.nan, math.nan
    from interpret.scores import asm_interpretability, cam_interpretability

    delta = run.delta
    is_asm = float(asm_interpretability(delta, run.scores["asm"], nu)[0])
    is_cam = float(cam_interpretability(delta, run.scores["cams"]["x0_t0"], nu)[0])
    return is_asm, is_cam


def shared_scales(done: Sequence[Run]) -> dict[str, float]:
    """One colour range per panel type across several runs, so columns compare by colour: max |δ|, max ‖δ_G‖₂,
    max |δ| summed over channels."""
    from interpret.groups import group_norms
    from interpret.perturbation import magnitude

    return {
        "delta": max((float(r.delta.abs().max()) for r in done), default=0.0),
        "groups": max((float(group_norms(r.delta, *r.grouping).max()) for r in done), default=0.0),
        "magnitude": max((float(magnitude(r.delta).max()) for r in done), default=0.0),
    }


def groups_touched(run: Run) -> tuple[int, int]:
    from interpret.groups import groups_nonzero, groups_total

    size, stride = run.grouping
    return int(groups_nonzero(run.delta, size, stride)[0]), int(groups_total(tuple(run.delta.shape), size, stride))


def fmt_value(v: Any, digits: int = 3) -> str:
    return _fmt(v, digits)


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def headline(run: Run) -> None:
    """The success indicator and the one-line story: t0 → prediction (target t), cost, device."""
    s, names = run.summary, run.class_names
    before, after = names[s["pred_before"]], names[s["pred_after"]]
    goal = f"target {names[s['target']]}" if s["target"] is not None else "untargeted"
    if s["success"]:
        st.success(f"**Success** — {before} → **{after}** ({goal})", icon=":material/check_circle:")
    elif s["stopped"]:
        st.warning(f"**Stopped** after {s['iterations']} iterations, before an adversarial example was found "
                   f"({goal}); shown is the original image", icon=":material/stop_circle:")
    else:
        st.error(f"**Failed** — still {after} ({goal}); shown is the original image", icon=":material/cancel:")
    stopped = " · stopped early, best so far" if s["stopped"] else ""
    st.caption(f"{run.title} on {run.image_title} · {run.model} · {s['iterations']} iterations in "
               f"{s['seconds']:.2f} s on {s['device']} · final c = {s['c']:.3g}{stopped}")


def metric_cards(run: Run, nu: float) -> None:
    s = run.summary
    touched, total = groups_touched(run)
    is_asm, is_cam = is_at(run, nu)
    cards = [
        ("ℓ0", f"{s['l0']}", "Pixels changed (any channel)."),
        ("ℓ1", f"{s['l1']:.3g}", "Sum of |δ| over all coordinates, pixel intensities on the [0, 1] scale."),
        ("ℓ2", f"{s['l2']:.3g}", "Euclidean norm of δ, [0, 1] intensity scale."),
        ("ℓ∞", f"{s['linf']:.3g}", "Largest change of any coordinate, [0, 1] intensity scale."),
        ("Groups", f"{touched}/{total}", f"Groups with ‖δ_G‖₂ > 0 ({run.grouping[0]}×{run.grouping[0]}, "
                                         f"stride {run.grouping[1]})."),
        ("IS-ASM", _fmt(is_asm, 2), f"At ν = {nu:g}: share of δ's ℓ2 energy inside B_ASM, the pixels whose "
                                     "ASM is above its ν-th percentile (StrAttack eq. 23); 1 = all of it."),
    ]
    cols = st.columns(len(cards), gap="small")
    for col, (label, value, help_) in zip(cols, cards):
        col.metric(label, value, help=help_, border=True)


def metrics_rows(run: Run, nu: float) -> list[tuple[str, str, str]]:
    s, names = run.summary, run.class_names
    touched, total = groups_touched(run)
    is_asm, is_cam = is_at(run, nu)
    return [
        ("Success", "yes" if s["success"] else "no", "target reached (targeted) / t₀ left"),
        ("Prediction", f"{names[s['pred_before']]} → {names[s['pred_after']]}", "before → after"),
        ("Target", names[s["target"]] if s["target"] is not None else "untargeted", ""),
        ("ℓ0", f"{s['l0']}", "pixels changed"),
        ("ℓ0 coords", f"{s['l0_coords']}", "pixel × channel values changed"),
        ("ℓ1", f"{s['l1']:.4f}", "Σ|δ|, [0, 1] scale"),
        ("ℓ2", f"{s['l2']:.4f}", "‖δ‖₂, [0, 1] scale"),
        ("ℓ∞", f"{s['linf']:.4f}", "max |δ|, [0, 1] scale"),
        ("Groups", f"{touched} of {total}", f"touched; {run.grouping[0]}×{run.grouping[0]} px, stride {run.grouping[1]}"),
        ("IS-ASM", _fmt(is_asm, 4), f"‖B_ASM∘δ‖₂ / ‖δ‖₂ at ν = {nu:g}"),
        ("IS-CAM", _fmt(is_cam, 4), f"top-{100 - nu:g}% of CAM(x₀, t₀)"),
        ("Final c", f"{s['c']:.4g}", "binary-search constant"),
        ("Iterations", f"{s['iterations']}", "all binary-search steps"),
        ("Time", f"{s['seconds']:.2f}", "seconds"),
        ("Device", str(s["device"]), ""),
    ]


def metrics_table(run: Run, nu: float) -> None:
    frame = pd.DataFrame(metrics_rows(run, nu), columns=["Metric", "Value", "Unit / meaning"])
    st.dataframe(frame, hide_index=True, width="stretch", height=35 * (len(frame) + 1) + 3, column_config={
        "Metric": st.column_config.TextColumn(width="small"), "Value": st.column_config.TextColumn(width="small"),
        "Unit / meaning": st.column_config.TextColumn(width="medium")})


def metrics_json(run: Run, nu: float, extra: Optional[dict] = None) -> str:
    touched, total = groups_touched(run)
    is_asm, is_cam = is_at(run, nu)
    report = {"model": run.model, "image": run.image_title, "attack": run.attack, "title": run.title,
              **run.summary, "groups_touched": touched, "groups_total": total, "group_size": run.grouping[0],
              "stride": run.grouping[1], "is_nu": nu, "is_asm": None if math.isnan(is_asm) else is_asm,
              "is_cam": None if math.isnan(is_cam) else is_cam, **(extra or {})}
    return json.dumps(_jsonable(report), indent=2)


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, Tensor):
        return _jsonable(v.tolist())
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    return v


# ------------------------------------------------------------------------------------------------ figures

def _compact(fig: go.Figure, height: int, *, title: Optional[str] = None, legend: bool = False) -> go.Figure:
    fig.update_layout(height=height, title=title, showlegend=legend,
                      margin=dict(l=8, r=8, t=30 if title else 8, b=8), font=dict(size=12))
    return fig


def colorbar_below(fig: go.Figure, title: str = "") -> go.Figure:
    """Horizontal colour bars under the image, so a narrow column keeps its width for the pixels."""
    bar = dict(orientation="h", x=0.5, xanchor="center", y=-0.02, yanchor="top", thickness=10, len=0.9,
               title=dict(text=title, side="bottom", font=dict(size=11)), tickfont=dict(size=10))
    fig.update_traces(colorbar=bar, selector=dict(type="heatmap"))
    if fig.layout.coloraxis.colorscale is not None:
        fig.update_layout(coloraxis_colorbar=bar)
    fig.update_layout(margin=dict(b=62))
    return fig


def frame_images(fig: go.Figure, height: int, width: int, panels: int = 1) -> go.Figure:
    """A thin frame around each image panel (a signed δ is mostly white, like the page around it)."""
    for k in range(1, panels + 1):
        suffix = "" if k == 1 else str(k)
        fig.add_shape(type="rect", x0=-0.5, x1=width - 0.5, y0=-0.5, y1=height - 0.5, xref=f"x{suffix}",
                      yref=f"y{suffix}", line=dict(color="#c8c8c8", width=1))
    return fig


def _plot(fig: go.Figure, key: str) -> None:
    st.plotly_chart(fig, width="stretch", key=key, config={"displaylogo": False, "modeBarButtonsToRemove": [
        "select2d", "lasso2d", "autoScale2d"]})


def image_panel(x: Tensor, caption: str, width: int = 250) -> None:
    """An image that fills its column up to ``width`` px (so it lines up with the plotly panels beside it)."""
    with st.container(width=width):
        st.image(crisp(x), caption=caption, width="stretch")


def delta_figure(delta: Tensor, channel: str, height: int = 300, limit: Optional[float] = None) -> go.Figure:
    """Signed δ of one image (C, H, W): all channels side by side, or the one picked; ±``limit`` if given."""
    d = delta
    if d.shape[0] == 3 and channel in ("R", "G", "B"):
        d = d["RGB".index(channel)][None]
    fig = figures.perturbation_figure(d, title="")
    fig = _compact(fig, height)
    frame_images(fig, d.shape[-2], d.shape[-1], d.shape[0])
    if d.shape[0] == 1:
        fig.update_annotations(text="")
    if limit:
        fig.update_layout(coloraxis_cmin=-limit, coloraxis_cmax=limit)
    return colorbar_below(fig, "Δ intensity ([0, 1] scale)")


def groups_figure(run: Run, cmap: str, opacity: float, height: int = 300, zmax: Optional[float] = None) -> go.Figure:
    from interpret.groups import group_norms
    from interpret.perturbation import group_cover

    size, stride = run.grouping
    norms = group_norms(run.delta, size, stride)
    painted = group_cover(norms, size, stride, tuple(run.delta.shape[-2:]))[0]
    fig = figures.group_grid_figure(run.result.original[0], norms[0], painted, size=size, stride=stride,
                                    opacity=opacity)
    fig.update_traces(colorscale=figures.plotly_colorscale(cmap), selector=dict(type="heatmap"))
    if zmax:
        fig.update_traces(zmin=0, zmax=zmax, selector=dict(type="heatmap"))
    return colorbar_below(_compact(fig, height), "‖δ_G‖₂ per group")


def asm_figure(run: Run, nu: float, cmap: str, opacity: float, height: int = 300) -> Optional[go.Figure]:
    if run.scores is None:
        return None
    from interpret.scores import percentile_mask

    asm = run.scores["asm"]
    fig = figures.overlay_figure(run.result.original[0], asm[0].sum(0), unit="ASM(x₀, t)", cmap=cmap,
                                 opacity=opacity, zmin=0, hide_zero=True)
    _outline(fig, percentile_mask(asm, nu)[0].any(0))
    return colorbar_below(_compact(fig, height), "ASM(x₀, t)")


def delta_vs_asm_figure(run: Run, nu: float, cmap: str, opacity: float, height: int = 260,
                        zmax: Optional[float] = None) -> Optional[go.Figure]:
    """|δ| over x₀ with the outline of B_ASM at ν: how much of the perturbation sits where the ASM says it
    matters (what IS-ASM measures)."""
    if run.scores is None:
        return None
    from interpret.perturbation import magnitude
    from interpret.scores import percentile_mask

    fig = figures.overlay_figure(run.result.original[0], magnitude(run.delta)[0], unit="|δ|", cmap=cmap,
                                 opacity=opacity, zmin=0, zmax=zmax, hide_zero=True)
    _outline(fig, percentile_mask(run.scores["asm"], nu)[0].any(0))
    return colorbar_below(_compact(fig, height), "|δ| summed over channels ([0, 1] scale)")


def _outline(fig: go.Figure, mask: Tensor) -> None:
    """The outline of a Boolean (H, W) region, in cyan."""
    region = mask.double().numpy()
    if region.any():
        fig.add_trace(go.Contour(z=region, contours=dict(start=0.5, end=0.5, coloring="none"), showscale=False,
                                 line=dict(color="#00e5ff", width=1.5), hoverinfo="skip", name="B_ASM"))


def cam_figure(run: Run, opacity: float, cmap: str, height: int = 420) -> Optional[go.Figure]:
    if run.scores is None or len(run.scores["cams"]) < 4:
        return None
    from interpret.cam import CAM_UNITS

    names = run.class_names
    t = run.explained_target
    cams = {k: v[0] for k, v in run.scores["cams"].items()}
    fig = figures.cam_quartet_figure(run.result.original[0], run.result.adversarial[0], cams,
                                     label_name=names[run.summary["label"]], target_name=names[t],
                                     unit=CAM_UNITS.get("gradcam", "CAM"), opacity=opacity)
    fig.update_layout(coloraxis_colorscale=figures.plotly_colorscale(cmap),
                      coloraxis_colorbar=dict(thickness=12, title=dict(side="right")))
    fig.update_annotations(font_size=12)
    fig = _compact(fig, height)
    fig.update_layout(margin=dict(t=28))
    return fig


def top5_figure(run: Run, height: int = 260) -> go.Figure:
    s, names = run.summary, run.class_names
    label, target = s["label"], s["target"] if s["target"] is not None else s["pred_after"]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("before (x₀)", "after (x_adv)"), horizontal_spacing=0.22)
    for col, top in ((1, s["top5_before"]), (2, s["top5_after"])):
        classes = [c for c, _ in top][::-1]
        probs = [p for _, p in top][::-1]
        colours = [TRUE_COLOUR if c == label else TARGET_COLOUR if c == target else OTHER_COLOUR for c in classes]
        fig.add_trace(go.Bar(x=probs, y=[_short_name(names[c]) for c in classes], orientation="h",
                             marker_color=colours, text=[f"{p:.0%}" if p >= 0.005 else "<1%" for p in probs],
                             textposition="auto", hovertemplate="%{y}: %{x:.2%}<extra></extra>"), 1, col)
        fig.update_xaxes(range=[0, 1], tickformat=".0%", title_text="probability", row=1, col=col,
                         tickvals=[0, 0.5, 1])
        fig.update_yaxes(type="category", row=1, col=col)
    fig.update_annotations(font_size=12)
    fig = _compact(fig, height)
    fig.update_layout(margin=dict(t=28))
    return fig


def _short_name(name: str, n: int = 16) -> str:
    return name if len(name) <= n else name[: n - 1] + "…"


def loss_figure(run: Run, height: int = 260) -> go.Figure:
    history = run.result.loss_history[:, 0].double().numpy()
    fig = go.Figure(go.Scatter(x=np.arange(1, len(history) + 1), y=history, mode="lines",
                               line=dict(color=ATTACK_COLOURS.get(run.attack, "#444"), width=1.5),
                               hovertemplate="iteration %{x}: %{y:.4g}<extra></extra>"))
    for start in run.trace.step_starts[1:]:
        fig.add_vline(x=start + 0.5, line=dict(color="#bbb", width=1, dash="dot"))
    positive = history.size and (history > 0).all()
    fig.update_yaxes(type="log" if positive else "linear", title_text="objective (log)" if positive else "objective",
                     dtick="D2" if positive else None, tickformat="~g")
    fig.update_xaxes(title_text="iteration (dotted: new c)")
    return _compact(fig, height)


def display_knobs(key: str, *, channels: int, show_opacity: bool = True) -> dict:
    """Colour map, overlay opacity, ν and channel: they change the view only, never the attack."""
    cols = st.columns([1, 1, 1, 1], gap="medium")
    cmap = cols[0].selectbox("Colour map", CMAPS, key=keep(f"{key}.cmap", CMAPS[0]),
                             help="Colours of the magnitude maps (groups, ASM, CAM). Signed δ is always blue–red.")
    opacity = cols[1].slider("Overlay opacity", 0.0, 1.0, key=keep(f"{key}.opacity", 0.7), step=0.05,
                             help="How strongly the maps cover the image underneath.")
    nu = cols[2].slider("ν · IS percentile", 10, 95, key=keep(f"{key}.nu", 90), step=5,
                        help="B = pixels whose score is above its ν-th percentile; IS = ‖B∘δ‖₂ / ‖δ‖₂.")
    channel = "all"
    if channels == 3:
        channel = cols[3].segmented_control("Channel", ["all", "R", "G", "B"], key=keep(f"{key}.channel", "all"),
                                            help="Which colour channel of δ to show.") or "all"
    else:
        cols[3].caption("Channel: one (grayscale)")
    return {"cmap": cmap, "opacity": opacity, "nu": float(nu), "channel": channel}


def downloads(run: Run, nu: float, key: str) -> None:
    adv = Image.fromarray(to_uint8(run.result.adversarial[0]))
    png = io.BytesIO()
    adv.save(png, format="PNG")
    npy = io.BytesIO()
    np.save(npy, run.delta[0].numpy().astype(np.float32))
    cols = st.columns(3, gap="small")
    stem = f"advlens_{run.attack}_{run.id}"
    cols[0].download_button("Adversarial PNG", png.getvalue(), f"{stem}_adversarial.png", "image/png",
                            key=f"{key}.dl.png", icon=":material/image:", on_click="ignore", width="stretch",
                            help="The adversarial image at the model's input size, 8 bits per channel.")
    cols[1].download_button("δ as .npy", npy.getvalue(), f"{stem}_delta.npy", "application/octet-stream",
                            key=f"{key}.dl.npy", icon=":material/data_array:", on_click="ignore", width="stretch",
                            help="float32 (C, H, W): x_adv − x₀ on the [0, 1] scale, before 8-bit rounding.")
    cols[2].download_button("Metrics JSON", metrics_json(run, nu), f"{stem}_metrics.json", "application/json",
                            key=f"{key}.dl.json", icon=":material/data_object:", on_click="ignore",
                            width="stretch", help="Everything in the metrics table, plus the attack's parameters.")


def section(title: str, caption: str = "") -> None:
    st.subheader(title, anchor=False, divider="gray")
    if caption:
        st.caption(caption)


def plot(fig: Optional[go.Figure], key: str, missing: str = "Not available for this result.") -> None:
    if fig is None:
        st.info(missing, icon=":material/hourglass_empty:")
    else:
        _plot(fig, key)
