"""Live attack runs: progress with an ETA, the current iterate redrawn, and a Stop button that keeps the best result.

All of the app's coupling to Streamlit's script control flow (its private exception types, and the session it
asks for a rerun after its own toolbar Stop) is in this module.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import streamlit as st

from ui.chrome import first_line, show_error
from ui.progress_words import Clock, abort_note, progress_text
from ui.state import BUSY, Trace, count_run

if TYPE_CHECKING:
    from torch import Tensor

    from attacks import AttackResult, IterationState, PixelModel
    from ui.state import Run

log = logging.getLogger("advlens.app")
STOPS = "live.stops"  # page → Stop: why that page's last live run ended early (shown once, kept on its trace)
FRAMES_SHOWN = 8  # images of a batch redrawn while it runs

STOP_WORDS = {
    "you": "Stopped by you: the best result found so far is kept.",
    "toolbar": "Stopped by you with Streamlit's own Stop (top right): the best result found so far is kept.",
    "page": "Stopped because the page was changed during the run (in Streamlit a click on any control ends a running "
            "attack): the best result found so far is kept. Press Run again to start over.",
}


@dataclass
class Stop:
    reason: str  # a key of STOP_WORDS
    title: str  # what was running
    trace: Optional[Trace]  # the interrupted attack's, where it had one: its stop_reason follows ``reason``
    told: bool = False  # the toast has been shown

    def settle(self, reason: str) -> None:
        self.reason = reason
        if self.trace is not None:
            self.trace.stop_reason = reason


def is_script_control(exc: BaseException) -> bool:
    """Streamlit's rerun/stop requests arrive as exceptions raised at the next st.* call of the script."""
    try:
        from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException
    except ImportError:  # pragma: no cover - older layouts
        return type(exc).__name__ in ("RerunException", "StopException")
    return isinstance(exc, ScriptControlException)


def _pressed_key(key: str) -> str:
    return f"live.stop-pressed.{key}"


def _press_stop(key: str) -> None:
    """The Stop button's callback: Streamlit runs it at the start of the run the click starts."""
    st.session_state[_pressed_key(key)] = True


def await_previous_run(timeout_s: float = 120.0) -> None:
    """Called before every page: wait until an interrupted attack of this session has stored its best result, then
    say once (a toast) why it stopped."""
    busy = st.session_state.get(BUSY)
    if isinstance(busy, threading.Event) and not busy.is_set():
        with st.spinner("Stopping the attack and keeping the best result found so far…"):
            busy.wait(timeout_s)
    for key, stop in list(st.session_state.get(STOPS, {}).items()):
        if st.session_state.pop(_pressed_key(key), False):
            stop.settle("you")
        if not stop.told:
            stop.told = True
            st.toast(f"{stop.title}: {STOP_WORDS[stop.reason]}", icon=":material/stop_circle:")


def stop_note(key: str) -> Optional[str]:
    """Why the page's last live run ended early, in one sentence; None if it ran to the end."""
    stop = st.session_state.get(STOPS, {}).get(key)
    return None if stop is None else STOP_WORDS[stop.reason]


def _toolbar_stop_rerun() -> Optional[Callable[[], None]]:
    """After Streamlit's own Stop no new run starts, so the page would keep the last frame of the live box (its Stop
    button still live-looking) until the next click. Returns what asks the session for a rerun of the same page, as
    a click would; None when a click already started one (with fast reruns) or the session cannot be reached."""
    try:
        from streamlit.proto.ClientState_pb2 import ClientState
        from streamlit.runtime import Runtime
        from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

        ctx = get_script_run_ctx(suppress_warning=True)
        if ctx is None or not Runtime.exists():
            return None
        info = Runtime.instance()._session_mgr.get_session_info(ctx.session_id)
        if info is None:
            return None
        session, runner = info.session, info.session._scriptrunner
        if runner is None or runner._requests is not ctx.script_requests:
            return None  # a click stopped this run and its own run has started
        state = ClientState()
        state.CopyFrom(session._client_state)  # the page now shown, as the last run resolved it
        state.ClearField("widget_states")  # no widget changed: nothing is clicked again
        state.ClearField("fragment_id")
        return lambda: session._call_soon_on_event_loop(lambda: session.request_rerun(state))
    except Exception:  # Streamlit's internals moved: the page shows the result on the next click, as before
        log.debug("could not rerun after a toolbar stop", exc_info=True)
        return None


class LiveRunner:
    """Runs attacks with a progress bar (elapsed, done of total, rate, time left), a redrawn perturbation and Stop.

    A click while the script is busy (on Stop, or on anything else) makes Streamlit stop the running script at
    its next ``st.*`` call (by raising a StopException, or a RerunException where fast reruns are off) and, with
    fast reruns (the default), start the new run at once in another thread. Streamlit's own Stop (the toolbar's,
    top right) raises the same StopException but starts no new run. The callback's progress update is such an
    ``st.*`` call: it catches the exception and tells the attack to stop, and the attack returns the best result so
    far. The page stores it, and the runner re-raises the exception when its ``with`` block ends. Until then an
    Event in session state is clear, and the new run waits for it (``await_previous_run``, from app.py), so it
    shows the stored result. After the toolbar's Stop the runner asks for that new run itself. Why the run
    stopped (our Stop, the toolbar's, or a click elsewhere) is kept in ``STOPS`` and on the run's trace.

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
        self.started = time.perf_counter()
        self.finished_s: list[float] = []  # seconds of each finished run: the whole run's ETA

    def __enter__(self) -> LiveRunner:
        self.busy = threading.Event()
        st.session_state[BUSY] = self.busy
        self.stops: dict[str, Stop] = st.session_state.setdefault(STOPS, {})
        self.stops.pop(self.key, None)
        st.session_state.pop(_pressed_key(self.key), None)
        self.started = time.perf_counter()
        self.slot = self.where.empty()
        with self.slot.container(border=True):
            head = st.columns([6, 1], vertical_alignment="center")
            self.bar = head[0].progress(0.0, text="Starting…")
            head[1].button("Stop", key=f"stop.{self.key}", icon=":material/stop_circle:", width="stretch",
                           on_click=_press_stop, args=(self.key,),
                           help="Stop the attack now and keep the best adversarial example found so far.")
            self.frame_slot = st.empty() if self.frames else None
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None and self.interrupt is None:
                try:
                    self.slot.empty()
                except BaseException as err:  # a click that arrived after the last attack: nothing was cut short
                    if not is_script_control(err):
                        raise
                    self.interrupt = err
            elif exc_type is not None and self.interrupt is None and is_script_control(exc):
                self.interrupt = exc  # a click while the page stored the result (it computes the rest next run)
        finally:
            self.busy.set()
        if self.interrupt is not None:
            rerun = _toolbar_stop_rerun() if type(self.interrupt).__name__ == "StopException" else None
            if rerun is not None:
                if self.key in self.stops:
                    self.stops[self.key].settle("toolbar")
                rerun()
            if exc_type is None:
                raise self.interrupt

    def _interrupted(self, exc: BaseException, trace: Trace, title: str) -> None:
        """The attack stopped; keep why: a click elsewhere, until the next run finds that our Stop's callback ran
        (``await_previous_run``) or ``__exit__`` finds Streamlit's own Stop."""
        self.interrupt = exc
        trace.stopped_by_user = True
        trace.stop_reason = "page"
        self.stops[self.key] = Stop("page", title, trace)

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
        clock = Clock(self.started, time.perf_counter(), index, self.count, self.finished_s,
                      bool(params.get("abort_early")), params.get("binary_search_steps"))
        prefix = f"{index + 1}/{self.count} · {title}" if self.count > 1 else title

        def callback(state: IterationState) -> Optional[bool]:
            if observe is not None:
                observe(state)
            if "queries" in state.extra:  # kept on the CPU by the attack: reading it never waits for the device
                trace.queries.append(int(state.extra["queries"][0]))
            if state.binary_step != last["step"]:
                last["step"] = state.binary_step
                trace.step_starts.append(state.iteration - 1)
                trace.step_consts.append(float(state.const[0]))  # one read per value of c
            now = time.perf_counter()
            final = state.iteration >= state.total_iterations
            if not final and now - last["progress"] < self.progress_every_s:
                return None
            last["progress"] = now
            try:
                frac = min(1.0, (index + state.iteration / max(1, state.total_iterations)) / self.count)
                self.bar.progress(frac, text=progress_text(prefix, state, clock.words(state, now),
                                                           const="binary_search_steps" in params))
                if self.frame_slot is not None and (now - last["frames"] >= self.frames_every_s or final):
                    last["frames"] = now
                    self._draw_frames(state)
            except BaseException as exc:
                if is_script_control(exc):
                    self._interrupted(exc, trace, prefix)
                    return True
                raise
            return None

        self._origin, self._batch = x[:FRAMES_SHOWN].detach().cpu(), x.shape[0]
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
        finally:
            self.finished_s.append(time.perf_counter() - clock.run_started)
        return result.to("cpu"), trace

    def _draw_frames(self, state: IterationState) -> None:
        from interpret.perturbation import amplified
        from interpret.render import crisp

        current = state.current[:FRAMES_SHOWN].detach().cpu()
        if self.frame_slot is None:
            return
        deltas = amplified(current - self._origin[: current.shape[0]])
        if current.shape[0] == 1:
            with self.frame_slot.container(horizontal=True, gap="medium"):
                st.image(crisp(current[0], 160), caption="current iterate", width=140)
                st.image(crisp(deltas[0], 160), caption="δ (grey = 0, amplified)", width=140)
            return
        with self.frame_slot.container():
            st.image([crisp(img, 160) for img in current], width=64)
            st.image([crisp(img, 160) for img in deltas], width=64)
            shown = f"{current.shape[0]} images" if current.shape[0] == self._batch else \
                f"first {current.shape[0]} of {self._batch} images"
            st.caption(f"The current iterates of the batch's {shown}, and their δ (grey = 0, amplified)")


# ------------------------------------------------------------------------------------------------ under a result

def run_notes(run: Run) -> None:
    """Under a result's headline: why it stopped early, and what early abort cut short."""
    if run.report.stopped and run.trace.stop_reason:
        st.caption(f":material/stop_circle: {STOP_WORDS[run.trace.stop_reason]}")
    note = abort_note(run.report.params, run.report.iterations, run.trace, run.report.stopped)
    if note:
        st.caption(f":material/fast_forward: {note}")
