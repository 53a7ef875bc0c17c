"""The session history's storage (``ui.history`` is the app's side): one session's folder holds the evaluation
results database (``advlens.evaluation.store``) with one ``runs`` row per history entry (its kind and what the
pages need besides the reports, as JSON), one ``results`` row per attacked image with its report and compressed δ,
and a ``history_arrays`` table for the rest (the original images, loss curves, a sweep's perturbations); and the
conversions between the pages' records and those rows."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import streamlit as st

from ui import links
from ui.state import CompareRecord, Run, SweepRecord, SweepRow, Trace

if TYPE_CHECKING:
    from advlens.evaluation.store import ResultStore

log = logging.getLogger("advlens.app")

LIMIT = 50  # entries kept per session
ARRAYS = """CREATE TABLE IF NOT EXISTS history_arrays (
    entry INTEGER NOT NULL REFERENCES runs(id), name TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (entry, name));"""


# ------------------------------------------------------------------------------------------------ the store

@dataclass
class Item:
    """One line of the history: a run (Explore, or one Compare column), or a whole sweep."""

    entry: int
    kind: str
    k: int  # the run's place in its entry (0 for Explore and Sweep)
    title: str
    model: str
    image: str
    target: str
    settings: str  # the parameters that differ from the attack's defaults
    success: str
    l2: Optional[float]
    seconds: float

    @property
    def label(self) -> str:
        l2 = "" if self.l2 is None else f" · ℓ2 {self.l2:.3g}"
        return f"{self.entry} · {self.title} · {self.image} → {self.target}{l2} {self.success}"


class History:
    """One session's folder."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _open(self, create: bool = False) -> Optional[ResultStore]:
        from advlens.evaluation.store import DB_NAME, ResultStore

        if not create and not (self.directory / DB_NAME).exists():
            return None
        store = ResultStore(self.directory, create=create)
        if create:
            store.conn.executescript(ARRAYS)
        return store

    # -------------------------------------------------------------------------------- writing

    def add(self, kind: str, record: Any) -> int:
        """Store one page result as a new entry; returns its number. Entries beyond ``LIMIT`` are dropped."""
        import numpy as np

        from advlens.evaluation.store import UNTARGETED, encode_array

        store = self._open(create=True)
        assert store is not None
        with store:
            if kind == "sweep":
                spec, arrays, rows = sweep_spec(record), sweep_arrays(record), []
                number = store.start_run(["advlens-app", kind], spec)
            else:
                done: list[Run] = [record] if kind == "explore" else list(record.runs)
                spec = {"kind": kind, "runs": [{"id": r.id, "title": r.title, "image_title": r.image_title,
                                                "trace": vars(r.trace)} for r in done]}
                number = store.start_run(["advlens-app", kind], spec)
                arrays = {}
                for k, r in enumerate(done):
                    arrays[f"original.{k}"] = r.result.original[0].numpy()
                    arrays[f"loss.{k}"] = r.result.loss_history.numpy()
                rows = [{"model": r.model, "image": r.report.image, "attack": r.attack,
                         "target": UNTARGETED if r.report.target is None else r.report.target,
                         "params": json.dumps({"history": number, "k": k}),  # every run its own row
                         **{c: getattr(r.report, c) for c in ("label", "pred_after", "l0", "l0_coords", "l1", "l2",
                                                              "linf", "c", "iterations", "queries", "seconds",
                                                              "device")},
                         "success": int(r.report.success), "report": r.report.to_json(),
                         "perturbation": encode_array(r.delta[0].numpy())} for k, r in enumerate(done)]
            store.add_results(rows, run=number)
            with store.conn:
                store.conn.executemany("INSERT INTO history_arrays VALUES (?, ?, ?)",
                                       [(number, name, encode_array(np.asarray(a))) for name, a in arrays.items()])
            store.finish_run(number)
            self._prune(store)
        return number

    def _prune(self, store: ResultStore) -> None:
        old = "SELECT id FROM runs ORDER BY id DESC LIMIT -1 OFFSET ?"
        with store.conn:
            store.conn.execute(f"DELETE FROM results WHERE run IN ({old})", (LIMIT,))
            store.conn.execute(f"DELETE FROM history_arrays WHERE entry IN ({old})", (LIMIT,))
            store.conn.execute(f"DELETE FROM runs WHERE id IN ({old})", (LIMIT,))

    # -------------------------------------------------------------------------------- reading

    def items(self) -> list[Item]:
        """Every run of every finished entry, newest first."""
        store = self._open()
        if store is None:
            return []
        with store:
            entries = store.conn.execute("SELECT id, spec FROM runs WHERE finished IS NOT NULL ORDER BY id DESC")
            items = []
            for number, text in entries.fetchall():
                spec = json.loads(text)
                if spec.get("kind") == "sweep":
                    items.append(sweep_item(number, spec))
                    continue
                stored = store.conn.execute("SELECT report FROM results WHERE run = ? ORDER BY id", (number,))
                for k, ((report,), meta) in enumerate(zip(stored.fetchall(), spec["runs"])):
                    items.append(run_item(number, spec["kind"], k, json.loads(report), meta))
        return items

    def newest(self) -> dict[str, int]:
        """The newest entry of each kind."""
        store = self._open()
        if store is None:
            return {}
        with store:
            rows = store.conn.execute("SELECT id, spec FROM runs WHERE finished IS NOT NULL ORDER BY id").fetchall()
        return {json.loads(spec)["kind"]: number for number, spec in rows}

    def load(self, number: int) -> Any:
        """An entry as its page's record (a Run, a CompareRecord or a SweepRecord)."""
        from advlens.evaluation.store import StoreError, decode_array

        store = self._open()
        if store is None:
            raise StoreError("This session has no history on disk.")
        with store:
            found = store.conn.execute("SELECT spec FROM runs WHERE id = ?", (number,)).fetchone()
            if found is None:
                raise StoreError(f"Run #{number} is no longer in this session's history (it keeps the last {LIMIT}).")
            spec = json.loads(found[0])
            arrays = {name: decode_array(blob) for name, blob in store.conn.execute(
                "SELECT name, data FROM history_arrays WHERE entry = ?", (number,))}
            if spec["kind"] == "sweep":
                return sweep_record(spec, arrays)
            rows = store.conn.execute("SELECT report, perturbation FROM results WHERE run = ? ORDER BY id",
                                      (number,)).fetchall()
        done = [stored_run(json.loads(report), decode_array(delta), arrays[f"original.{k}"], arrays[f"loss.{k}"], meta,
                           number) for k, ((report, delta), meta) in enumerate(zip(rows, spec["runs"]))]
        return done[0] if spec["kind"] == "explore" else CompareRecord(runs=done)


# ------------------------------------------------------------------------------------------------ records ↔ rows

def settings_text(attack: str, params: dict[str, Any]) -> str:
    from attacks.registry import ATTACKS

    entry = ATTACKS.get(attack)
    defaults = entry.defaults() if entry is not None else {}
    return ", ".join(f"{k}={links.to_text(v)}" for k, v in params.items() if k in defaults and v != defaults[k])


def run_item(number: int, kind: str, k: int, report: dict[str, Any], meta: dict[str, Any]) -> Item:
    from advlens.models import get_spec

    names = get_spec(report["model"]).class_names
    target = "untargeted" if report["target"] is None else names[report["target"]]
    prefix = "Compare · " if kind == "compare" else ""
    return Item(number, kind, k, prefix + meta["title"], report["model"], meta["image_title"], target,
                settings_text(report["attack"], report["params"]), "✓" if report["success"] else "✗",
                float(report["l2"]), float(report["seconds"]))


def stored_run(report: dict[str, Any], delta: Any, original: Any, loss: Any, meta: dict[str, Any], number: int) -> Run:
    """A Run rebuilt from its row: x₀ and the stored δ, the stored report, loss curve and trace."""
    import dataclasses

    import torch

    from advlens.models import get_spec
    from advlens.report import AttackReport
    from attacks import AttackResult

    fields = {f.name for f in dataclasses.fields(AttackReport)}
    r = AttackReport(**{k: v for k, v in report.items() if k in fields})
    r.c = float("nan") if r.c is None else r.c  # NaN is stored as null
    r.top5_before, r.top5_after = [tuple(p) for p in r.top5_before], [tuple(p) for p in r.top5_after]  # type: ignore[misc]
    x0 = torch.from_numpy(original)[None]
    result = AttackResult(
        attack=r.attack, original=x0, adversarial=(x0 + torch.from_numpy(delta).reshape(x0.shape)).clamp(0, 1),
        success=torch.tensor([r.success]), labels=torch.tensor([r.label]),
        targets=None if r.target is None else torch.tensor([r.target]), const=torch.tensor([r.c]),
        loss_history=torch.from_numpy(loss), iterations=r.iterations, seconds=r.seconds, device=r.device,
        stopped=r.stopped, params=dict(r.params))
    return Run(id=int(meta["id"]), attack=r.attack, title=meta["title"], model=r.model, image_title=meta["image_title"],
               class_names=get_spec(r.model).class_names, result=result, report=r, trace=trace_of(meta["trace"]),
               notes=list(r.notes), source=f"From this session's history (run #{number}): the stored result, not re-run.")


def trace_of(saved: dict[str, Any]) -> Trace:
    """A stored trace; fields this version does not know are dropped, missing ones take their defaults."""
    import dataclasses

    return Trace(**{f.name: saved[f.name] for f in dataclasses.fields(Trace) if f.name in saved})


def sweep_spec(record: SweepRecord) -> dict[str, Any]:
    return {"kind": "sweep", "model": record.model or links_model(), "refs": record.refs, "attack": record.attack,
            "param": record.param, "values": record.values, "series_param": record.series_param, "series": record.series,
            "titles": record.titles, "class_names": record.class_names, "labels": record.labels.tolist(),
            "targets": record.targets.tolist(), "fixed": record.fixed,
            "rows": [{"value": r.value, "series": r.series, "metrics": r.metrics, "success": r.result.success.tolist(),
                      "const": r.result.const.tolist(), "iterations": r.result.iterations, "device": r.result.device,
                      "stopped": r.result.stopped} for r in record.rows]}


def links_model() -> str:
    from ui.state import MODEL_KEY

    return str(st.session_state.get(MODEL_KEY, ""))


def sweep_arrays(record: SweepRecord) -> dict[str, Any]:
    return {"original": record.original.numpy(),
            **{f"delta.{j}": r.result.perturbation.numpy() for j, r in enumerate(record.rows)}}


def sweep_item(number: int, spec: dict[str, Any]) -> Item:
    from attacks.registry import ATTACKS
    from ui.colours import short_label

    entry = ATTACKS.get(spec["attack"])
    symbol = entry.param(spec["param"]).title if entry is not None else spec["param"]
    values = [links.to_text(v) for v in spec["values"]]
    rates = [r["metrics"]["asr"] for r in spec["rows"]]
    return Item(number, "sweep", 0, f"Sweep · {short_label(spec['attack'])}", spec["model"],
                f"{len(spec['titles'])} images", "random", f"{symbol} = {', '.join(values)}",
                f"{min(rates):.0f}–{max(rates):.0f}% ✓" if rates else "–", None,
                sum(r["metrics"].get("seconds", 0.0) for r in spec["rows"]))


def sweep_record(spec: dict[str, Any], arrays: dict[str, Any]) -> SweepRecord:
    import torch

    from attacks import AttackResult

    x = torch.from_numpy(arrays["original"])
    labels, targets = torch.tensor(spec["labels"]), torch.tensor(spec["targets"])
    record = SweepRecord(attack=spec["attack"], param=spec["param"], values=spec["values"],
                         series_param=spec["series_param"], series=spec["series"], titles=spec["titles"],
                         class_names=spec["class_names"], labels=labels, targets=targets, original=x,
                         fixed=spec["fixed"], model=spec["model"], refs=spec.get("refs", []))
    for j, row in enumerate(spec["rows"]):
        extra = {spec["series_param"]: row["series"]} if spec["series_param"] else {}
        result = AttackResult(
            attack=spec["attack"], original=x, adversarial=(x + torch.from_numpy(arrays[f"delta.{j}"])).clamp(0, 1),
            success=torch.tensor(row["success"]), labels=labels, targets=targets, const=torch.tensor(row["const"]),
            loss_history=torch.zeros(0, len(labels)), iterations=row["iterations"],
            seconds=row["metrics"].get("seconds", 0.0), device=row["device"], stopped=row["stopped"],
            params={**spec["fixed"], spec["param"]: row["value"], **extra})
        record.rows.append(SweepRow(row["value"], row["series"], result, row["metrics"]))
    return record
