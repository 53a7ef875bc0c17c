"""What every session shares, loaded once per server: torch settings, the device, the models, the gallery and
the images converted for a model.

Cold start: ``lifespan`` (app.py's st.App) runs ``preload`` before the server answers its health check: torch and
the attack registry are imported and the default model is loaded when the first browser session runs the script.
Any other model loads in a background thread (``ModelLoad``) when a page first needs it; the page draws its image
picker and form first and shows "Loading …" while it waits. ``warm_up`` imports what only results need (plotly,
the CAM library) a few seconds after the first page is drawn, so it does not compete with the browser drawing it.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

import streamlit as st

from ui.errors import first_line, show_error
from ui.state import MODEL_KEY

if TYPE_CHECKING:
    import torch

    from advlens.images import GalleryImage, LoadedImage
    from advlens.models import ModelSpec
    from attacks import PixelModel

log = logging.getLogger("advlens.app")
WARM_UP_DELAY_S = 3.0  # long enough for the browser to draw the first page, shorter than choosing an attack


@functools.cache
def configure_torch() -> None:
    """Once per process. Small models run fastest on one CPU thread; a 2-core machine shared with a browser is
    best left one."""
    import torch

    if os.environ.get("ADVLENS_THREADS"):
        torch.set_num_threads(max(1, int(os.environ["ADVLENS_THREADS"])))
    elif not torch.cuda.is_available():
        torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))


def preload() -> None:
    """What every first page needs: the imports (torch alone takes seconds), the torch settings, the default
    model on the default device."""
    import advlens.images
    import advlens.presets  # noqa: F401
    import attacks.registry  # noqa: F401
    from advlens.engine import default_device
    from advlens.models import DEFAULT_MODEL

    configure_torch()
    start_loading(DEFAULT_MODEL, str(default_device())).finished.wait()


@asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """st.App's start-up hook: ``preload`` in a worker thread, before the server takes connections."""
    await asyncio.to_thread(preload)
    yield


@st.cache_resource(show_spinner=False)
def warm_up(delay_s: float = WARM_UP_DELAY_S) -> threading.Thread:
    """Import, in the background and once per server, what only results need: plotly and the explainer; the
    first result then does not wait for them."""
    def work() -> None:
        try:
            import plotly.graph_objects  # noqa: F401

            import advlens.explain  # noqa: F401
            import interpret.plots  # noqa: F401
        except Exception:  # the panels report it when they need it
            log.exception("warm-up import failed")

    thread = threading.Timer(delay_s, work)
    thread.name, thread.daemon = "advlens-warm-up", True
    thread.start()
    return thread


@st.cache_resource(show_spinner=False)
def device() -> torch.device:
    from advlens.engine import default_device

    return default_device()


def device_label() -> str:
    import torch

    dev = device()
    if dev.type == "cuda":
        return f"CUDA · {torch.cuda.get_device_name(dev)}"
    return f"CPU · {torch.get_num_threads()} thread{'s' if torch.get_num_threads() > 1 else ''}"


# ------------------------------------------------------------------------------------------------ models

@dataclass
class ModelLoad:
    """A model loading in a background thread: ``model`` once done, or ``error`` (one sentence)."""

    name: str
    model: Optional[PixelModel] = None
    error: Optional[str] = None
    finished: threading.Event = field(default_factory=threading.Event)

    def run(self, device_name: str) -> None:
        from advlens.models import ModelUnavailable, load_model

        try:
            self.model = load_model(self.name, device_name)
        except ModelUnavailable as err:
            self.error = str(err)
        except Exception as err:  # a broken weights file or library: still one sentence, never a traceback
            log.exception("loading %s failed", self.name)
            self.error = f"The model {self.name} could not be loaded here ({type(err).__name__}: {first_line(err)})."
        finally:
            self.finished.set()


_LOADS: dict[tuple[str, str], ModelLoad] = {}
_LOADS_LOCK = threading.Lock()


def start_loading(name: str, device_name: str) -> ModelLoad:
    """The model's load, started once per server and shared by every session and rerun (also from ``preload``,
    outside any session: hence a plain dict rather than st.cache_resource)."""
    with _LOADS_LOCK:
        load = _LOADS.get((name, device_name))
        if load is None:
            load = _LOADS[(name, device_name)] = ModelLoad(name)
            threading.Thread(target=load.run, args=(device_name,), name=f"advlens-load-{name}", daemon=True).start()
    return load


def forget_models() -> None:
    """Drop every loaded model (for tests that swap a model's registry entry)."""
    with _LOADS_LOCK:
        _LOADS.clear()


@dataclass
class ModelChoice:
    name: str
    spec: ModelSpec
    load: ModelLoad

    @property
    def ready(self) -> bool:
        return self.load.finished.is_set()

    @property
    def model(self) -> Optional[PixelModel]:
        return self.load.model if self.ready else None

    @property
    def error(self) -> Optional[str]:
        return self.load.error if self.ready else None


def current_model() -> ModelChoice:
    """The sidebar's model, its load started (not waited for)."""
    from advlens.models import DEFAULT_MODEL, REGISTRY

    name = st.session_state.get(MODEL_KEY, DEFAULT_MODEL)
    if name not in REGISTRY:
        name = DEFAULT_MODEL
    return ModelChoice(name, REGISTRY[name], start_loading(name, str(device())))


def require_model(choice: ModelChoice) -> Optional[PixelModel]:
    """The model, waited for with a visible status; if it cannot be loaded, None, having said why (one sentence)
    and what still works."""
    if not choice.ready:
        slot = st.empty()
        with slot.container():
            with st.status(f"Loading {choice.spec.title}… (once per server)", expanded=False):
                choice.load.finished.wait()
        slot.empty()
    if choice.model is None:
        show_error(choice.error or f"The model {choice.name} is not available.")
        st.info("Pick another model in the sidebar: the bundled MNIST CNN and EfficientNet-Lite0 always work "
                "offline. Earlier results stay below.", icon=":material/info:")
    return choice.model


def known_failure(choice: ModelChoice) -> bool:
    """True, having said why, when the model's load has already failed (a page then skips its forms)."""
    return choice.ready and choice.model is None and require_model(choice) is None


# ------------------------------------------------------------------------------------------------ images

@st.cache_data(show_spinner=False, max_entries=8)
def gallery_items(dataset: str) -> list[GalleryImage]:
    from advlens.images import gallery

    return gallery(dataset)


@st.cache_data(show_spinner=False, max_entries=256)
def load_ref(ref: str, model_name: str) -> LoadedImage:
    from advlens.images import load_image
    from advlens.models import REGISTRY

    return load_image(ref, REGISTRY[model_name])


@st.cache_data(show_spinner=False, max_entries=32)
def _load_bytes(digest: str, data: bytes, model_name: str) -> tuple[Optional[LoadedImage], Optional[str]]:
    from advlens.images import ImageError, load_image
    from advlens.models import REGISTRY

    try:
        return load_image(data, REGISTRY[model_name]), None
    except ImageError as err:
        return None, str(err)


def load_upload(data: bytes, model_name: str) -> tuple[Optional[LoadedImage], Optional[str]]:
    """An uploaded file as an image for the model, or the one-sentence reason it cannot be used."""
    return _load_bytes(hashlib.sha256(data).hexdigest(), data, model_name)
