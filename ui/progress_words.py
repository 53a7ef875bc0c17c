"""The words of progress: elapsed time, rate and time left of a live run, the progress bar's line, and the
sentence that says what early abort cut short. Plain text, no Streamlit: ``ui.live`` shows them."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from attacks import IterationState
    from ui.state import Trace


def fmt_seconds(seconds: float) -> str:
    """"0.4 s", "12 s", "3 min 05 s", "1 h 02 min"."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


@dataclass
class Clock:
    """Elapsed time, rate and time left of one attack of a live run, and of the whole run when it has several."""

    started: float  # the whole live run
    run_started: float
    index: int  # this attack's place in the whole run
    count: int
    finished_s: list[float]  # seconds of the attacks already done
    abort_early: bool  # the budget is an upper bound: early abort may end a value of c sooner
    binary_steps: Optional[int]

    def words(self, state: IterationState, now: float) -> str:
        done, total = state.iteration, max(1, state.total_iterations)
        spent = max(now - self.run_started, 1e-9)
        rate = done / spent
        bound = "at most " if self.abort_early else ""
        left = (total - done) / rate if rate > 0 else 0.0
        parts = [f"iteration {done:,} of {bound}{total:,}", f"{rate:,.0f} it/s" if rate >= 10 else
                 f"{rate:.2g} it/s"]
        if self.binary_steps:
            step = state.binary_step + 1
            parts.insert(0, f"c-step {step}" + (f" of {self.binary_steps}" if step <= self.binary_steps else ""))
        if self.count == 1:
            parts.insert(0, f"{fmt_seconds(spent)} elapsed")
            parts.append(f"{bound or 'about '}{fmt_seconds(left)} left")
        else:  # the whole run: finished attacks' mean time for those still to come
            per_run = sum(self.finished_s) / len(self.finished_s) if self.finished_s else spent + left
            whole_left = left + per_run * (self.count - self.index - 1)
            bound = "at most" if self.abort_early and not self.finished_s else "about"
            parts.append(f"all {self.count}: {fmt_seconds(now - self.started)} elapsed, {bound} "
                         f"{fmt_seconds(whole_left)} left")
        return " · ".join(p for p in parts if p)


def steps_text(what: str, done: int, total: int, started: float, unit: str = "runs") -> str:
    """A progress line for work counted in whole steps (attacks of a transfer study): "what · 2 of 8 runs · 4.1 s
    elapsed · about 12 s left", the time left from the mean time of the steps done."""
    spent = time.perf_counter() - started
    left = f" · about {fmt_seconds(spent / done * (total - done))} left" if done else ""
    return f"{what} · {done} of {total} {unit} done · {fmt_seconds(spent)} elapsed{left}"


def progress_text(prefix: str, state: IterationState, timing: str = "", *, const: bool = True) -> str:
    """The progress bar's line: what runs, where it is, how fast, how long still; for a batch, the whole batch."""
    n = state.best_found.numel()
    parts = [prefix, timing or f"iteration {state.iteration}/{state.total_iterations}"]
    if n == 1 and const:
        parts.append(f"c = {float(state.const[0]):.3g}")
    for key, label in (("l1", "ℓ1"), ("l2", "ℓ2")):
        if key in state.losses:
            value = state.losses[key]
            parts.append(f"{label} = {float(value[0]):.3g}" if n == 1 else f"mean {label} = {float(value.mean()):.3g}")
    if "queries" in state.extra:
        parts.append(f"{int(state.extra['queries'].sum()):,} queries")
    found = int(state.best_found.sum())
    parts.append("adversarial found ✓" if found == n else
                 f"adversarial found for {found}/{n}" if found else "searching")
    return " · ".join(parts)


def abort_note(params: dict, iterations: int, trace: Trace, stopped: bool) -> Optional[str]:
    """One sentence when early abort ended values of c before their budget, e.g. "Early abort ended 2 of 3 values of
    c early: 4 of 30 iterations at c = 0.01, …"; None when every value ran its budget or abort was off."""
    if not params.get("abort_early") or not trace.step_starts or not isinstance(params.get("steps"), int):
        return None
    budget = [params["steps"]] * int(params.get("binary_search_steps") or 1)
    if params.get("refine") and isinstance(params.get("refine_steps"), int):
        budget += [params["refine_steps"]] * int(params.get("refine_search_steps") or 0)
    ends = trace.step_starts[1:] + [iterations]
    ran = [(end - start, budget[k] if k < len(budget) else budget[-1], trace.step_consts[k]
            if k < len(trace.step_consts) else None) for k, (start, end) in enumerate(zip(trace.step_starts, ends))]
    if stopped:
        ran = ran[:-1]  # the value of c a Stop interrupted did not end by abort
    early = [(n, of, c) for n, of, c in ran if n < of]
    if not early:
        return None
    listed = ", ".join(f"{n} of {of} iterations" + ("" if c is None else f" at c = {c:.3g}") for n, of, c in early[:4])
    more = f" and {len(early) - 4} more" if len(early) > 4 else ""
    return (f"Early abort ended {len(early)} of {len(ran)} values of c early: {listed}{more} ({iterations:,} of at "
            f"most {sum(budget):,} iterations in all). Turn off 'abort early' to run every iteration.")
