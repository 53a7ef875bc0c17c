"""The results database: one SQLite file, one row per (model, image, target, attack, parameters).

Rows are written one chunk per transaction with ``INSERT OR IGNORE`` on that key, so a run killed at any moment
loses at most the chunk in flight, a rerun adds only what is missing, and two runs into one file never
duplicate a row. Perturbations are stored as zlib-compressed ``.npy`` bytes and read back with
``allow_pickle=False``. The schema is documented in docs/evaluation.md.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np

SCHEMA_VERSION = 1
DB_NAME = "results.db"
UNTARGETED = -1  # the target column of an untargeted row (NULLs would not be equal in the unique key)
KEY = ("model", "image", "target", "attack", "params")
METRIC_COLUMNS = ("label", "success", "pred_after", "l0", "l0_coords", "l1", "l2", "linf", "c", "iterations",
                  "queries", "seconds", "device")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, started TEXT NOT NULL, finished TEXT, command TEXT NOT NULL, spec TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY,
    model TEXT NOT NULL, image TEXT NOT NULL, target INTEGER NOT NULL, attack TEXT NOT NULL, params TEXT NOT NULL,
    label INTEGER NOT NULL, success INTEGER NOT NULL, pred_after INTEGER NOT NULL,
    l0 INTEGER NOT NULL, l0_coords INTEGER NOT NULL, l1 REAL NOT NULL, l2 REAL NOT NULL, linf REAL NOT NULL,
    c REAL, iterations INTEGER NOT NULL, queries INTEGER, seconds REAL NOT NULL, device TEXT NOT NULL,
    run INTEGER REFERENCES runs(id), report TEXT NOT NULL, perturbation BLOB NOT NULL,
    UNIQUE (model, image, target, attack, params));
CREATE TABLE IF NOT EXISTS requests (
    model TEXT NOT NULL, image TEXT NOT NULL, target INTEGER NOT NULL, attack TEXT NOT NULL, params TEXT NOT NULL,
    mode TEXT NOT NULL, average INTEGER NOT NULL, sweep_param TEXT NOT NULL, sweep_value TEXT NOT NULL,
    UNIQUE (model, image, target, attack, params, mode, sweep_param));
"""


class StoreError(ValueError):
    """The database cannot be used; the message is one sentence."""


def encode_array(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    return zlib.compress(buffer.getvalue(), 6)


def decode_array(blob: bytes) -> np.ndarray:
    return np.load(io.BytesIO(zlib.decompress(blob)), allow_pickle=False)


def check_readable(path: Path) -> None:
    """A database that exists must be ours and not newer than this code; checked without writing anything."""
    if not path.exists():
        return
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    except sqlite3.DatabaseError:
        raise StoreError(f"{path} is not an advlens results database.") from None
    if row is None or not str(row[0]).isdigit():
        raise StoreError(f"{path} is not an advlens results database.")
    if int(row[0]) > SCHEMA_VERSION:
        raise StoreError(f"{path} was written by a newer advlens (schema {row[0]}; this one reads up to "
                         f"{SCHEMA_VERSION}): upgrade advlens to use it.")


def check_writable(directory: Path) -> None:
    """``directory`` (or its nearest existing parent, where it would be created) takes a new file."""
    if directory.exists() and not directory.is_dir():
        raise StoreError(f"The results folder {directory} is a file, not a folder.")
    probe = directory
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise StoreError(f"The results folder {directory} cannot be written (no write permission on {probe}).")
    db = directory / DB_NAME
    if db.exists() and not os.access(db, os.W_OK):
        raise StoreError(f"The results folder {directory} cannot be written: {db} is read-only.")


class ResultStore:
    """The database of one results folder."""

    def __init__(self, directory: Path | str, *, create: bool = True) -> None:
        self.directory = Path(directory)
        self.path = self.directory / DB_NAME
        check_readable(self.path)
        if not create and not self.path.exists():
            raise StoreError(f"There are no results in {self.directory} (no {DB_NAME}).")
        if create:
            check_writable(self.directory)
            self.directory.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, timeout=60)
        self.conn.row_factory = sqlite3.Row
        if create:
            self.conn.execute("PRAGMA journal_mode=WAL")  # readers (the app, `report`) never block a writer
            self.conn.executescript(_SCHEMA)
            with self.conn:
                self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------------ runs

    def start_run(self, command: Sequence[str], spec: dict[str, Any]) -> int:
        with self.conn:
            cur = self.conn.execute("INSERT INTO runs (started, command, spec) VALUES (datetime('now'), ?, ?)",
                                    (json.dumps(list(command)), json.dumps(spec, sort_keys=True)))
        return int(cur.lastrowid or 0)

    def finish_run(self, run: int) -> None:
        with self.conn:
            self.conn.execute("UPDATE runs SET finished = datetime('now') WHERE id = ?", (run,))

    def add_requests(self, requests: Iterable[tuple[Any, ...]]) -> None:
        """(model, image, target, attack, params, mode, average, sweep_param, sweep_value) rows, once each."""
        with self.conn:
            self.conn.executemany("INSERT OR IGNORE INTO requests VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", requests)

    # ------------------------------------------------------------------------------------------------ results

    def stored_keys(self, model: str, attack: str, params: str) -> set[tuple[str, int]]:
        """(image, target) pairs already stored for one model, attack and parameter set."""
        rows = self.conn.execute("SELECT image, target FROM results WHERE model = ? AND attack = ? AND params = ?",
                                 (model, attack, params))
        return {(r[0], r[1]) for r in rows}

    def add_results(self, rows: Sequence[dict[str, Any]], run: Optional[int] = None) -> int:
        """One chunk, in one transaction; rows already stored are left as they are. Returns how many were new."""
        columns = (*KEY, *METRIC_COLUMNS, "run", "report", "perturbation")
        sql = f"INSERT OR IGNORE INTO results ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        with self.conn:
            before = self.conn.total_changes
            self.conn.executemany(sql, [tuple(run if c == "run" else r[c] for c in columns) for r in rows])
            return self.conn.total_changes - before

    def count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def requested(self) -> list[sqlite3.Row]:
        """Every requested row joined with its result where there is one (result columns NULL otherwise)."""
        return self.conn.execute(
            "SELECT q.mode, q.average, q.sweep_param, q.sweep_value, q.model, q.image, q.target, q.attack, q.params, "
            "r.id, r.label, r.success, r.l0, r.l0_coords, r.l1, r.l2, r.linf, r.queries, r.seconds "
            "FROM requests q LEFT JOIN results r USING (model, image, target, attack, params) "
            "ORDER BY q.model, q.attack, q.params, q.mode, q.image, q.target").fetchall()

    def results(self, where: str = "", args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Result rows (without the perturbation blob)."""
        columns = ", ".join(("id", *KEY, *METRIC_COLUMNS, "run"))
        return self.conn.execute(f"SELECT {columns} FROM results {where} ORDER BY id", tuple(args)).fetchall()

    def perturbation(self, row_id: int) -> np.ndarray:
        blob = self.conn.execute("SELECT perturbation FROM results WHERE id = ?", (row_id,)).fetchone()
        if blob is None:
            raise StoreError(f"There is no result {row_id}.")
        return decode_array(blob[0])

    def report(self, row_id: int) -> dict[str, Any]:
        text = self.conn.execute("SELECT report FROM results WHERE id = ?", (row_id,)).fetchone()
        if text is None:
            raise StoreError(f"There is no result {row_id}.")
        return dict(json.loads(text[0]))
