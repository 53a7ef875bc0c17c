"""Writing one benchmark's section of BENCHMARKS.md without touching the others."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def replace_section(text: str, heading: str, section: str, insert_before: Optional[str] = None) -> str:
    """``text`` with the section under ``heading`` replaced by ``section``; a new one goes before the first line
    starting with ``insert_before`` (or at the end). The rest of the file is untouched."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == heading), None)
    if start is None:
        before = next((i for i, line in enumerate(lines) if insert_before and line.startswith(insert_before)), None)
        if before is None:
            prefix = text if text.strip() else "# Benchmarks\n"
            return prefix.rstrip("\n") + "\n\n" + section
        return "".join(lines[:before]) + section + "\n" + "".join(lines[before:])
    end, fenced = len(lines), False
    for i in range(start + 1, len(lines)):
        if lines[i].lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and lines[i].startswith("## "):  # the next section of the same or a higher level
            end = i
            break
    after = "".join(lines[end:])
    return "".join(lines[:start]) + section + ("\n" + after if after else "")


def environment_line() -> str:
    """The machine, torch's threads and the versions of torch and the peer libraries, in one line."""
    import torch

    versions = []
    for dist in ("torch", "foolbox", "torchattacks", "adversarial-robustness-toolbox"):
        try:
            versions.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{dist} (not installed)")
    omp = os.environ.get("OMP_NUM_THREADS", "unset")
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch threads "
            f"{torch.get_num_threads()} (OMP_NUM_THREADS={omp}), Python {platform.python_version()}; "
            + ", ".join(versions))


def median_seconds(fn: Callable[[], Any], repeats: int = 5, warm_up: bool = False) -> float:
    """The median wall time of ``repeats`` calls of ``fn`` (after one untimed call when ``warm_up``)."""
    if warm_up:
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
