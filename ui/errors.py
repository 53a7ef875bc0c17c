"""Errors in the page: one clear sentence, the traceback (if any) in the server log only."""

from __future__ import annotations

import streamlit as st


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def show_error(err: BaseException | str) -> None:
    st.error(err if isinstance(err, str) else first_line(err), icon=":material/error:")
