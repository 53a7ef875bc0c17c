"""Live attack runs: a progress bar, the current iterate redrawn, and a Stop button that keeps the best result.

All of the app's coupling to Streamlit's script control flow (its private exception types) is in this module.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Optional

import streamlit as st

from ui.chrome import first_line, show_error
from ui.state import BUSY, Trace, count_run

if TYPE_CHECKING:
    from torch import Tensor

    from attacks import AttackResult, IterationState, PixelModel

log = logging.getLogger("advlens.app")


def is_script_control(exc: BaseException) -> bool:
    """Streamlit's rerun/stop requests arrive as exceptions raised at the next st.* call of the script."""
    try:
        from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException
    except ImportError:  # pragma: no cover - older layouts
        return type(exc).__name__ in ("RerunException", "StopException")
    return isinstance(exc, ScriptControlException)


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

    def __enter__(self) -> LiveRunner:
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

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None and self.interrupt is None:
                try:
                    self.slot.empty()
                except BaseException as err:  # a click that arrived just now: handled like one during the run
                    if not is_script_control(err):
                        raise
                    self.interrupt = err
        finally:
            self.busy.set()
        if exc_type is None and self.interrupt is not None:
            raise self.interrupt

    @property
    def stopped(self) -> bool:
        return self.interrupt is not None

    def run(self, name: str, model: PixelModel, x: Tensor, labels: Tensor, targets: Optional[Tensor],
            params: dict, *, title: str, observe: Optional[Callable[[IterationState], None]] = None
            ) -> Optional[tuple[AttackResult, Trace]]:
        """One attack; None (with the message shown) if its parameters are invalid or a Stop came earlier.

        ``observe`` sees every iteration's state (keep what it reads on the device: reading syncs).
        """
        from advlens.engine import run_attack

        index, self.index = self.index, self.index + 1
        if self.stopped:
            return None
        trace = Trace()
        last = {"progress": 0.0, "frames": 0.0, "step": -1}
        prefix = f"{index + 1}/{self.count} · {title}" if self.count > 1 else title

        def callback(state: IterationState) -> Optional[bool]:
            if observe is not None:
                observe(state)
            if "queries" in state.extra:  # kept on the CPU by the attack: reading it never waits for the device
                trace.queries.append(int(state.extra["queries"][0]))
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
                self.bar.progress(frac, text=progress_text(prefix, state))
                if self.frame_slot is not None and (now - last["frames"] >= self.frames_every_s or final):
                    last["frames"] = now
                    self._draw_frames(state)
            except BaseException as exc:
                if is_script_control(exc):
                    self.interrupt = exc
                    trace.stopped_by_user = True
                    return True
                raise
            return None

        self._origin = x[:1].detach().cpu()
        count_run()
        try:
            result = run_attack(name, model, x.to(model.device), labels.to(model.device),
                                None if targets is None else targets.to(model.device), callback=callback, **params)
        except ValueError as err:  # a parameter out of its range: the registry's one sentence
            with self.where:
                show_error(err)
            return None
        except Exception as err:  # an attack must never put a traceback in the page
            log.exception("attack %s failed", name)
            with self.where:
                show_error(f"The attack failed: {first_line(err)}")
            return None
        return result.to("cpu"), trace

    def _draw_frames(self, state: IterationState) -> None:
        from interpret.perturbation import amplified
        from interpret.render import crisp

        current = state.current[:1].detach().cpu()
        if self.frame_slot is None:
            return
        with self.frame_slot.container(horizontal=True, gap="medium"):
            st.image(crisp(current[0], 160), caption="current iterate", width=140)
            st.image(crisp(amplified(current - self._origin)[0], 160), caption="δ (grey = 0, amplified)", width=140)


def progress_text(prefix: str, state: IterationState) -> str:
    parts = [prefix, f"c-step {state.binary_step + 1}", f"iteration {state.iteration}/{state.total_iterations}",
             f"c = {float(state.const[0]):.3g}"]
    for key, label in (("l1", "ℓ1"), ("l2", "ℓ2")):
        if key in state.losses:
            parts.append(f"{label} = {float(state.losses[key][0]):.3g}")
    if "queries" in state.extra:
        parts.append(f"{int(state.extra['queries'][0]):,} queries")
    found, total = int(state.best_found.sum()), state.best_found.numel()
    parts.append("adversarial found ✓" if found == total else
                 f"adversarial found for {found}/{total}" if found else "searching")
    return " · ".join(parts)
