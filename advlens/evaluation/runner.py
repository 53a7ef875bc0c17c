"""Running a plan: each chunk through the attack registry on a backend, each finished chunk into the store.

:func:`run_chunk` is the whole of a worker's job, the same in-process and on Ray. The driver alone writes the
database, so a worker lost mid-chunk only means that chunk is done again on the next run.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Optional, Protocol, TextIO

import torch

from advlens.evaluation.plan import Chunk, Plan
from advlens.evaluation.store import UNTARGETED, ResultStore, encode_array
from advlens.report import build_report, top_classes
from attacks import PixelModel
from attacks.registry import get_attack


def run_chunk(model: PixelModel, model_name: str, chunk: Chunk) -> list[dict[str, Any]]:
    """Attack every case of ``chunk`` in one batch; one store row per case. With ``chunk.craft_on`` the attack runs
    on those models and ``model`` judges the examples (transfer)."""
    torch.manual_seed(chunk.seed)
    device = model.device
    x = chunk.inputs().to(device)
    labels = torch.tensor(chunk.labels, device=device)
    targets = None if chunk.targets is None else torch.tensor(chunk.targets, device=device)
    source_success = None
    if chunk.craft_on:
        from advlens.crafting import cached_source, judge

        source = cached_source(tuple(chunk.craft_on), model_name, str(device))
        result, source_success = judge(get_attack(chunk.attack)(source, x, labels, targets, **chunk.params), model)
    else:
        result = get_attack(chunk.attack)(model, x, labels, targets, **chunk.params)
    delta = result.perturbation.detach().float().cpu()
    tops = (top_classes(model, result.original), top_classes(model, result.adversarial))
    rows = []
    for i, (image, target) in enumerate(chunk.keys()):
        report = build_report(result, model, model_name=model_name, image=image, notes=chunk.notes[i], index=i,
                              tops=tops)
        report.seconds = result.seconds / len(chunk)  # the chunk's time, shared evenly by its cases
        if source_success is not None:
            report.craft_on, report.source_success = list(chunk.craft_on or ()), bool(source_success[i])
        queries = report.queries  # a black-box attack's count (ZOO); None for a white-box one
        rows.append({
            "model": model_name, "image": image, "target": target, "attack": chunk.attack, "params": chunk.key,
            "label": report.label, "success": int(report.success), "pred_after": report.pred_after,
            "l0": report.l0, "l0_coords": report.l0_coords, "l1": report.l1, "l2": report.l2, "linf": report.linf,
            "c": report.c, "iterations": report.iterations, "queries": None if queries is None else int(queries),
            "seconds": report.seconds, "device": report.device, "report": report.to_json(),
            "perturbation": encode_array(delta[i].numpy()),
        })
    return rows


class Backend(Protocol):
    """Runs chunks and yields each one's rows as it finishes (in any order)."""

    name: str

    def run(self, chunks: list[Chunk]) -> Iterator[list[dict[str, Any]]]: ...

    def close(self) -> None: ...


@dataclass
class InProcess:
    model: PixelModel
    model_name: str
    name: str = "in-process"

    def run(self, chunks: list[Chunk]) -> Iterator[list[dict[str, Any]]]:
        for chunk in chunks:
            yield run_chunk(self.model, self.model_name, chunk)

    def close(self) -> None:
        pass


def pending(plan: Plan, store: ResultStore) -> list[Chunk]:
    """The chunks (or the parts of chunks) whose rows are not stored yet."""
    stored: dict[tuple[str, str], set[tuple[str, int]]] = {}
    todo = []
    for chunk in plan.chunks:
        have = stored.setdefault((chunk.attack, chunk.key), store.stored_keys(plan.model, chunk.attack, chunk.key))
        missing = [i for i, key in enumerate(chunk.keys()) if key not in have]
        if len(missing) == len(chunk):
            todo.append(chunk)
        elif missing:
            todo.append(chunk.subset(missing))
    return todo


class Progress:
    """One line on stderr: rows done, rows per second, time left."""

    def __init__(self, total: int, stream: Optional[TextIO] = None, every: float = 2.0) -> None:
        stream = sys.stderr if stream is None else stream  # the stream of now, not of import time (pytest swaps it)
        self.total, self.done, self.stream, self.every = total, 0, stream, every
        self.start = self.last = time.perf_counter()
        self.tty = stream.isatty()

    def update(self, rows: int) -> None:
        self.done += rows
        now = time.perf_counter()
        if self.tty or now - self.last >= self.every or self.done >= self.total:
            self.last = now
            self.stream.write(("\r" if self.tty else "") + self.line() + ("" if self.tty else "\n"))
            self.stream.flush()

    def line(self) -> str:
        elapsed = time.perf_counter() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        eta = "?" if left != left else time.strftime("%H:%M:%S", time.gmtime(left))
        width = 24
        filled = int(width * self.done / self.total) if self.total else width
        return f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} rows · {rate:.2f} rows/s · ETA {eta}"

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


class RowsProgress:
    """``evaluate``'s ``on_rows`` callback as a :class:`Progress` line, made at the first report (when the total is
    known); ``close`` ends the line if there was one."""

    def __init__(self) -> None:
        self.progress: Optional[Progress] = None

    def __call__(self, done: int, total: int) -> None:
        if self.progress is None:
            self.progress = Progress(total)
        self.progress.update(done - self.progress.done)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()


INTERRUPTED = "\ninterrupted: every finished chunk is stored; run the same command to resume."


@dataclass
class Outcome:
    planned: int  # cases in the plan
    stored_before: int  # of them, already in the store when the run began
    added: int  # rows this run wrote
    seconds: float


def run_plan(plan: Plan, store: ResultStore, backend: Backend, *, run: Optional[int] = None,
             on_rows: Optional[Callable[[int, int], None]] = None) -> Outcome:
    """Run what is not stored yet; each finished chunk is committed before the next is awaited.

    ``on_rows(done, total)`` is called after every commit (the CLI's progress bar, the app's).
    """
    start = time.perf_counter()
    store.add_requests(plan.requests)
    todo = pending(plan, store)
    total = sum(len(c) for c in todo)
    added = done = 0
    if on_rows:
        on_rows(0, total)
    for rows in backend.run(todo):
        added += store.add_results(rows, run)
        done += len(rows)
        if on_rows:
            on_rows(done, total)
    return Outcome(plan.cases, plan.cases - total, added, time.perf_counter() - start)


__all__ = ["UNTARGETED", "Backend", "InProcess", "Outcome", "Progress", "pending", "run_chunk", "run_plan"]
