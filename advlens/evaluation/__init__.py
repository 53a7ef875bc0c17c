"""Evaluations at dataset scale: the papers' protocol over many images, stored in SQLite, resumable, on Ray.

``evaluate`` checks everything it was given (attacks, images, the results folder, the Ray address) before it
writes anything, then runs only what the database does not hold yet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Optional

import torch

from advlens.evaluation.plan import Plan, make_plan
from advlens.evaluation.runner import Backend, InProcess, Outcome, run_plan
from advlens.evaluation.spec import AttackSpec
from advlens.evaluation.store import DB_NAME, ResultStore, check_readable, check_writable

BACKENDS = ("in-process", "ray")


def make_backend(name: str, model_name: str, device: torch.device, *, address: Optional[str] = None,
                 workers: Optional[int] = None, threads: int = 1) -> Backend:
    if name == "in-process":
        from advlens.models import load_model

        return InProcess(load_model(model_name, device), model_name)
    if name == "ray":
        from advlens.evaluation.ray_backend import RayBackend

        return RayBackend(model_name, device, address=address, workers=workers, threads=threads)
    raise ValueError(f"--backend must be one of {', '.join(BACKENDS)}; got {name!r}.")


def evaluate(model_name: str, attacks: list[AttackSpec], images: list[str], targets: str, out: Path | str, *,
             seed: int = 0, device: torch.device | str = "cpu", chunk: Optional[int] = None,
             backend: str = "in-process", address: Optional[str] = None, workers: Optional[int] = None,
             threads: int = 1, command: Sequence[str] = (), on_rows: Optional[Callable[[int, int], None]] = None,
             on_plan: Optional[Callable[[Plan], None]] = None, craft_on: Optional[Sequence[str]] = None) -> Outcome:
    """``craft_on``: transfer — every attack runs on these models (several: the mean of their logits) and
    ``model_name`` judges the examples; the rows then hold the target's success and the source's."""
    from advlens.models import load_model

    if craft_on:
        from advlens.crafting import check_compatible, parse_sources

        craft_on = parse_sources(craft_on)
        check_compatible(craft_on, model_name)
    out = Path(out)
    check_writable(out)
    check_readable(out / DB_NAME)
    device = torch.device(device)
    planner = load_model(model_name, device)
    plan = make_plan(model_name, planner, attacks, images, targets, seed, chunk,
                     craft_on=list(craft_on) if craft_on else None)
    runner = InProcess(planner, model_name) if backend == "in-process" else \
        make_backend(backend, model_name, device, address=address, workers=workers, threads=threads)
    if on_plan:
        on_plan(plan)
    try:
        with ResultStore(out) as store:
            spec: dict[str, Any] = {
                "model": model_name, "targets": targets, "seed": seed, "images": images, "backend": runner.name,
                "attacks": [{"attack": a.attack, "params": a.given, "sweep": a.sweep} for a in attacks],
            }
            if craft_on:
                spec["craft_on"] = list(craft_on)
            run = store.start_run(command, spec)
            outcome = run_plan(plan, store, runner, run=run, on_rows=on_rows)
            store.finish_run(run)
            return outcome
    finally:
        runner.close()


__all__ = ["BACKENDS", "AttackSpec", "Outcome", "Plan", "ResultStore", "evaluate", "make_backend"]
