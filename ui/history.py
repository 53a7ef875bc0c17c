"""The session's run history: every Explore, Compare and Sweep result kept, listed, reopened, put side by side, and
kept on the server's disk so that a browser reload finds it again.

Streamlit knows no browser across reloads, so the history is keyed by a random session id in the URL
(``?session=<32 hex digits>``, added on the first visit; anything else in that place is refused, so a URL cannot
name a path). Its folder is ``$ADVLENS_SESSIONS_DIR/<id>/`` (default ``~/.cache/advlens/sessions/<id>/``), and in it
the evaluation results database (``advlens.evaluation.store``): one ``runs`` row per history entry (its kind and what
the pages need besides the reports, as JSON), one ``results`` row per attacked image with its report and compressed
δ, and a ``history_arrays`` table for the rest (the original images, loss curves, a sweep's perturbations). The last
``LIMIT`` entries are kept.

``sync`` (app.py, before and after every page) records each page result it has not seen yet, and on a session's
first run puts the newest entry of each kind back on its page. It touches nothing while an attack runs: a result
that a Stop interrupted is recorded by the next run, once ``live.await_previous_run`` has let it be stored.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import streamlit as st

from ui import links
from ui.chrome import first_line, show_error
from ui.history_store import LIMIT, History, Item
from ui.state import CompareRecord, Run, SweepRecord, runs

if TYPE_CHECKING:
    pass

log = logging.getLogger("advlens.app")

SESSION_PARAM = "session"
ENV = "ADVLENS_SESSIONS_DIR"
SID = "history.session"
KNOWN = "history.known"  # [(entry number or None, record)]: the page results already recorded (or not to record)
RESTORED = "history.restored"
GOTO = "history.goto"
ERROR = "history.error"
PAGES = {"explore": "app_pages/explore.py", "compare": "app_pages/compare.py", "sweep": "app_pages/sweep.py"}
SESSION_ID = re.compile(r"[0-9a-f]{32}")


# ------------------------------------------------------------------------------------------------ where

def sessions_root() -> Path:
    return Path(os.environ.get(ENV) or Path.home() / ".cache" / "advlens" / "sessions").expanduser()


def session_id() -> str:
    """This browser session's id: the URL's when it is one, else a new one; kept in the URL on every run."""
    sid = st.session_state.get(SID)
    if sid is None:
        given = st.query_params.get(SESSION_PARAM)
        if given is not None and not SESSION_ID.fullmatch(given):
            st.session_state[ERROR] = "The link's session id is not one this app made; a new, empty history started."
        sid = given if given is not None and SESSION_ID.fullmatch(given) else secrets.token_hex(16)
        st.session_state[SID] = sid
    if st.query_params.get(SESSION_PARAM) != sid:
        st.query_params[SESSION_PARAM] = sid
    return str(sid)


def current() -> History:
    return History(sessions_root() / session_id())


# ------------------------------------------------------------------------------------------------ the app's side

def _empty(kind: str, record: Any) -> bool:
    if kind == "explore":
        return not isinstance(record, Run)
    if kind == "compare":
        return not isinstance(record, CompareRecord) or not record.runs
    return not isinstance(record, SweepRecord) or not record.rows


def sync() -> None:
    """Record the page results not seen yet; on the session's first run, bring back the newest of each kind."""
    history = current()
    known: list[tuple[Optional[int], Any]] = st.session_state.setdefault(KNOWN, [])
    store = runs()
    if not st.session_state.get(RESTORED):
        st.session_state[RESTORED] = True
        for kind, newest in history.newest().items():
            if kind in store:
                continue
            try:
                store[kind] = history.load(newest)
            except Exception as err:  # a damaged file must not stop the page: the history starts again
                log.exception("history entry %s could not be loaded", newest)
                st.session_state[ERROR] = f"The stored result #{newest} could not be loaded: {first_line(err)}"
                continue
            known.append((newest, store[kind]))
            if kind == "explore":
                links.remember(store[kind])
    for kind in PAGES:
        record = store.get(kind)
        if record is None or any(obj is record for _, obj in known) or _empty(kind, record):
            continue
        if kind == "explore" and record.source:  # opened from an evaluation: not a run of this session
            known.append((None, record))
            continue
        try:
            number: Optional[int] = history.add(kind, record)
        except Exception as err:  # a full disk: the result stays on the page, only its copy on disk is missing
            log.exception("history entry could not be stored")
            st.session_state[ERROR] = f"This result could not be kept in the history on disk: {first_line(err)}"
            number = None
        known.append((number, record))
        if kind == "explore":
            links.remember(record)
    shown = list(store.values())
    old = [pair for pair in known[:-LIMIT] if any(pair[1] is obj for obj in shown)]
    known[:] = old + known[-LIMIT:]  # the records in memory: no more than the disk keeps, and those on the pages


def before_page() -> None:
    """app.py, after the sidebar and before the page: record and restore results, go where an opened entry
    belongs, keep the session id and the configuration in the URL, and say what a link or the disk got wrong."""
    sync()
    path = st.session_state.pop(GOTO, None)
    if path:
        st.switch_page(path)
    links.sync_url()
    links.show_problems()
    if st.session_state.get(ERROR):
        show_error(st.session_state.pop(ERROR))


def after_page(title: str) -> None:
    """app.py, after the page: record its new result at once, then the sidebar list and (on the pages that have
    results) the history table."""
    sync()
    links.sync_url()
    items = current().items()
    sidebar(items)
    if title in ("Explore", "Compare", "Sweep"):
        panel(items)


def open_entry(number: int) -> None:
    """A callback: the entry becomes its page's result (the in-memory record where this session still has it),
    Explore's widgets take a run's configuration, and the app goes to that page."""
    from advlens.evaluation.store import StoreError

    known: list[tuple[Optional[int], Any]] = st.session_state.setdefault(KNOWN, [])
    record = next((obj for n, obj in known if n == number), None)
    if record is None:
        try:
            record = current().load(number)
        except (StoreError, OSError, ValueError, KeyError) as err:
            st.session_state[ERROR] = f"Run #{number} cannot be opened: {first_line(err)}"
            return
        known.append((number, record))
    kind = "explore" if isinstance(record, Run) else "compare" if isinstance(record, CompareRecord) else "sweep"
    runs()[kind] = record
    if isinstance(record, Run):
        values, _, _ = links.read(links.config_of(record, every=True))
        st.session_state.update(values)
        links.remember(record)
    st.session_state[GOTO] = PAGES[kind]


def side_by_side(picked: list[Run]) -> None:
    """A callback: two runs as Compare's result (its columns, table and IS plot), then Compare."""
    record = CompareRecord(runs=list(picked))
    st.session_state.setdefault(KNOWN, []).append((None, record))  # a view, not a new run
    runs()["compare"] = record
    st.session_state[GOTO] = PAGES["compare"]


def load_runs(items: list[Item]) -> list[Run]:
    """The runs behind history lines (from memory where this session has them)."""
    known: list[tuple[Optional[int], Any]] = st.session_state.setdefault(KNOWN, [])
    out = []
    for it in items:
        record = next((obj for n, obj in known if n == it.entry), None) or current().load(it.entry)
        out.append(record if isinstance(record, Run) else record.runs[it.k])
    return out


def sidebar(items: list[Item], shown: int = 6) -> None:
    """The newest entries, one click each to reopen; the configuration link."""
    with st.sidebar:
        st.markdown("**History**", help=f"Every result of this session, kept on the server ({LIMIT} at most) under "
                                        "the session id in the address bar: a reload brings them back.")
        if not items:
            st.caption("Results appear here as you run attacks.")
        seen: set[int] = set()
        for it in items:
            if it.entry in seen or len(seen) >= shown:
                continue
            seen.add(it.entry)
            st.button(it.label.replace(f"{it.entry} ·", f"**{it.entry}** ·", 1), key=f"history.open.{it.entry}",
                      type="tertiary", on_click=open_entry, args=(it.entry,),
                      help=f"{it.model} · {it.settings or 'defaults'} · {it.seconds:.1f} s. Opens it on its page.")
        if st.session_state.get(links.CONFIG):
            with st.popover("Share this configuration", icon=":material/link:", width="stretch"):
                st.caption("Opens Explore with this model, image, attack, target and parameters (without your "
                           "history: the address bar's session id is yours).")
                st.code(links.share_url(), language=None, wrap_lines=True)


def panel(items: list[Item]) -> None:
    """Below the page: every entry in a table, one to open, two to put side by side."""
    from ui.panels import compare_table

    with st.expander(f"Run history · {len(items)} result{'s' * (len(items) != 1)} this session",
                     icon=":material/history:"):
        if not items:
            st.caption("Nothing yet: every result of Explore, Compare and Sweep is kept here.")
            return
        st.dataframe([{"#": it.entry, "run": it.title, "model": it.model, "image": it.image, "target": it.target,
                       "settings": it.settings or "defaults", "success": it.success, "ℓ2": it.l2,
                       "time (s)": it.seconds} for it in items], hide_index=True, width="stretch",
                     height=min(320, 35 * (len(items) + 1) + 3),
                     column_config={"ℓ2": st.column_config.NumberColumn(format="%.3f"),
                                    "time (s)": st.column_config.NumberColumn(format="%.1f")})
        entries = list(dict.fromkeys(it.entry for it in items))
        labels = {it.entry: it.label for it in reversed(items)}
        cols = st.columns([3, 1], vertical_alignment="bottom")
        if st.session_state.get("history.entry") not in entries:
            st.session_state["history.entry"] = entries[0]
        chosen = cols[0].selectbox("Entry", entries, key="history.entry", format_func=labels.__getitem__)
        cols[1].button("Open", key="history.open", icon=":material/open_in_new:", width="stretch",
                       on_click=open_entry, args=(chosen,), help="Show it on its page as it was stored.")
        single = {f"{it.entry}.{it.k}": it for it in items if it.kind != "sweep"}
        st.session_state["history.pair"] = [k for k in st.session_state.get("history.pair", []) if k in single]
        pair = st.multiselect("Side by side", list(single), key="history.pair", max_selections=2,
                              format_func=lambda k: single[k].label, placeholder="Choose two runs",
                              help="Two runs of this session (β = 0 beside β = 0.01, say): their numbers here, "
                                   "their panels in Compare.")
        if len(pair) == 2:
            try:
                picked = load_runs([single[k] for k in pair])
            except Exception as err:
                show_error(f"These runs cannot be opened: {first_line(err)}")
                return
            compare_table(picked, 90.0)
            st.button("Panels side by side in Compare", key="history.compare", icon=":material/view_column:",
                      on_click=side_by_side, args=(picked,))
