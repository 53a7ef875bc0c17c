"""Evaluate's form and its background runs: the papers' protocol (``advlens.evaluation.evaluate``) on a handful of
images, started from the page and running on after the script run that started it.

An evaluation runs in a thread registered in ``_JOBS``, a process-wide dict keyed by the results folder, so a
rerun, a visit to another page or a reload (the folder is in the URL as ``?results=``) finds it again; its
progress comes from ``on_rows``, which ``evaluate`` calls after every chunk it commits. Whatever the page draws
is read from the folder, so nothing shown depends on the thread still being there.

Budgets: "quick" is the app's CPU preset (``advlens.presets``: a few binary-search steps × ~100 iterations, so a
two-image run takes seconds to a minute), "papers'" the attacks' own defaults (what ``advlens evaluate`` runs),
"custom" the values in the form.
"""

from __future__ import annotations

import getpass
import logging
import math
import shlex
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import streamlit as st

from ui.chrome import first_line
from ui.colours import short_label
from ui.forms import param_widgets, read_params, starts
from ui.progress_words import fmt_seconds
from ui.resources import ModelChoice
from ui.state import keep, widget_key

if TYPE_CHECKING:
    import torch

    from advlens.evaluation import AttackSpec, Outcome, Plan

log = logging.getLogger("advlens.app")
PAGE = "evaluate"
BUDGETS = ("quick", "papers'", "custom")
DEFAULT_ATTACKS = ("ead", "pgd")  # about 16 s and 2 s on two digits × 9 targets with "quick", one CPU thread
TARGET_HELP = {"all": "every incorrect class: the best, average and worst case of the papers' tables",
               "random": "one random incorrect class per image (fixed by the seed)",
               "next": "the class after the true one", "least-likely": "the class the model finds least likely",
               "untargeted": "any other class"}
NO_SWEEP = ""
SEED = 0


def default_folder() -> str:
    """A new folder under the user's own results directory in the system's temporary folder."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name (a container without a passwd entry)
        user = "user"
    return str(Path(tempfile.gettempdir()) / f"advlens-{user}" / "evaluations" / time.strftime("%Y%m%d-%H%M%S"))


# ------------------------------------------------------------------------------------------------ budgets

def preset_keys(attack: str, dataset: str) -> dict[str, tuple[Any, Any]]:
    """The parameters the quick preset shortens: name → (quick value, the attack's default)."""
    from advlens.presets import starting_params
    from attacks.registry import get_attack

    defaults, quick = get_attack(attack).defaults(), starting_params(attack, dataset, "cpu")
    return {k: (v, defaults[k]) for k, v in quick.items() if v != defaults[k]}


def budget_values(attack: str, dataset: str, budget: str) -> dict[str, Any]:
    """What the budget choice fixes for ``attack``; "custom" fixes nothing (the form's values run)."""
    if budget == "custom":
        return {}
    return {k: quick if budget == "quick" else default for k, (quick, default) in preset_keys(attack, dataset).items()}


def budget_label(attack: str, dataset: str, params: dict[str, Any]) -> str:
    """How a stored setting's budget reads: "quick · 3 × 100 iterations", "papers' · 9 × 1000 iterations"…"""
    owned = preset_keys(attack, dataset)
    name = "its own" if not owned else next(
        (b for b in BUDGETS[:2] if all(params.get(k) == v for k, v in budget_values(attack, dataset, b).items())),
        "custom")
    if "binary_search_steps" in params and "steps" in params:
        return f"{name} · {params['binary_search_steps']} × {params['steps']} iterations"
    return f"{name} · {params['steps']} steps" if "steps" in params else name


# ------------------------------------------------------------------------------------------------ the form

def numeric_params(attacks: list[str]) -> list[Any]:
    """Numeric parameters every chosen attack takes: the ones a sweep can vary."""
    from attacks.registry import get_attack

    if not attacks:
        return []
    common = [p for p in get_attack(attacks[0]).params if p.numeric]
    return [p for p in common if all(p.name in {q.name for q in get_attack(a).params} for a in attacks[1:])]


def new_form(choice: ModelChoice, device_type: str) -> Optional[dict[str, Any]]:
    """Attacks and budget (outside the form: the parameter tabs follow them), then images, targets, an optional
    sweep, each attack's parameters and the results folder in a form. The raw values when submitted, else None."""
    from advlens.evaluation.spec import TARGET_MODES
    from attacks.registry import ATTACKS, get_attack

    ds = choice.spec.dataset
    attacks = st.multiselect("Attacks", list(ATTACKS), key=keep(widget_key(PAGE, "attacks"), list(DEFAULT_ATTACKS)),
                             format_func=short_label, help="Any registered attacks; each runs on every case.")
    budget = st.segmented_control(
        "Budget", BUDGETS, key=keep(widget_key(PAGE, "budget"), "quick" if device_type == "cpu" else "papers'"),
        required=True, help="quick: the app's CPU preset (a few binary-search steps × ~100 iterations: seconds per "
                            "attack on two digits). papers': the attacks' own defaults (9 × 1000 for EAD and C&W: what "
                            "`advlens evaluate` runs; minutes on a CPU). custom: the values in each attack's tab.") \
        or "quick"
    with st.form(f"{PAGE}-form", border=True):
        cols = st.columns([3, 2], gap="medium")
        cols[0].text_input("Images", key=keep(widget_key(PAGE, f"{ds}.images"), f"{ds}:0-1"),
                           help=f"A number (the first N gallery images), refs ({ds}:7), ranges ({ds}:0-9), image "
                                "files or a folder of them, comma-separated. Images the model already gets wrong are "
                                "skipped.")
        cols[1].selectbox("Targets", TARGET_MODES, key=keep(widget_key(PAGE, "targets"), "all"),
                          help="; ".join(f"{m}: {h}" for m, h in TARGET_HELP.items()) + ".")
        sweepable = numeric_params(attacks)
        titles = {p.name: p.title for p in sweepable}
        sweep_key = keep(widget_key(PAGE, "sweep"), NO_SWEEP)
        if st.session_state[sweep_key] not in (NO_SWEEP, *titles):
            st.session_state[sweep_key] = NO_SWEEP
        cols = st.columns([3, 2], gap="medium")
        cols[0].selectbox("Sweep (optional)", [NO_SWEEP, *titles], key=sweep_key,
                          format_func=lambda n: titles.get(n, "no sweep"),
                          help="A numeric parameter every chosen attack takes: each attack runs once per value.")
        cols[1].text_input("Values", key=keep(widget_key(PAGE, "sweep_values"), ""), placeholder="e.g. 0, 10, 20",
                           help="The swept parameter's values, comma-separated.")
        if attacks:
            for attack, tab in zip(attacks, st.tabs([short_label(a) for a in attacks])):
                fixed = budget_values(attack, ds, budget)
                with tab:
                    shown = [p for p in get_attack(attack).params if p.name not in fixed]
                    param_widgets(PAGE, ds, attack, shown, starts(attack, ds))
                    if fixed:
                        st.caption(f"Budget {budget}: " + ", ".join(f"{k} = {v}" for k, v in fixed.items()) + ".")
        st.text_input("Results folder", key=keep(widget_key(PAGE, "out"), default_folder()),
                      help="Where results.db goes (created if needed). Starting again into the same folder adds to it: "
                           "rows already stored are not run again.")
        submitted = st.form_submit_button("Start evaluation", type="primary", icon=":material/play_arrow:")
    if not submitted:
        return None
    return {"attacks": list(attacks), "budget": budget, "images": st.session_state[widget_key(PAGE, f"{ds}.images")],
            "targets": st.session_state[widget_key(PAGE, "targets")], "sweep": st.session_state[sweep_key],
            "sweep_values": st.session_state[widget_key(PAGE, "sweep_values")],
            "folder": st.session_state[widget_key(PAGE, "out")],
            "params": {a: read_params(PAGE, ds, a, [p for p in get_attack(a).params
                                                    if p.name not in budget_values(a, ds, budget)]) for a in attacks}}


# ------------------------------------------------------------------------------------------------ the request

@dataclass
class Request:
    """An evaluation, checked: everything ``evaluate`` takes, and the command line that runs the same."""

    model: str
    specs: list[AttackSpec]  # one per attack and swept value
    images: list[str]
    targets: str
    folder: Path
    budget: str
    chunk: int
    command: list[str]

    @property
    def summary(self) -> str:
        n, k = len(self.images), len(self.specs)
        return (f"{n} image{'s' if n != 1 else ''} × {k} attack setting{'s' if k != 1 else ''} · targets "
                f"{self.targets} · {self.budget} budget · {self.model}")


def _cli_value(value: Any) -> str:
    if value is None:
        return "none"
    return str(value).lower() if isinstance(value, bool) else str(value)


def build_request(form: dict[str, Any], choice: ModelChoice, device: torch.device) -> Request:
    """The form's values checked before anything is loaded or written; a ValueError (one sentence) otherwise."""
    from advlens.evaluation.plan import default_chunk
    from advlens.evaluation.spec import AttackSpec, parse_images, parse_sweep
    from advlens.evaluation.store import DB_NAME, check_readable, check_writable
    from advlens.images import load_image
    from attacks.params import check_params
    from attacks.registry import get_attack

    ds, spec = choice.spec.dataset, choice.spec
    if not form["attacks"]:
        raise ValueError("Choose at least one attack to evaluate.")
    text = str(form["images"]).strip()
    if text.isdigit():
        if int(text) < 1:
            raise ValueError("Attack at least one image.")
        text = f"{ds}:0-{int(text) - 1}"
    if not text:
        raise ValueError(f"Name the images: a number (the first N of the gallery), refs like {ds}:7, ranges like "
                         f"{ds}:0-9, image files or a folder of them.")
    images = parse_images(text)
    for ref in images:
        load_image(ref, spec)  # an ImageError (one sentence) for a ref or file that cannot be used
    folder_text = str(form["folder"] or "").strip()
    if not folder_text:
        raise ValueError("Give a results folder: where results.db is written.")
    folder = Path(folder_text).expanduser().resolve()
    check_writable(folder)  # a StoreError is a ValueError: one sentence
    check_readable(folder / DB_NAME)

    base = []
    for attack in form["attacks"]:
        entry = get_attack(attack)
        given = {**form["params"].get(attack, {}), **budget_values(attack, ds, form["budget"])}
        base.append(AttackSpec(attack, check_params(entry.params, given, entry.title)))
    sweep = None
    if form["sweep"]:
        values = [v.strip() for v in str(form["sweep_values"]).split(",") if v.strip()]
        if not values:
            raise ValueError(f"Give the values of {form['sweep']} to sweep, e.g. 0, 10, 20 (or choose no sweep).")
        sweep = f"{form['sweep']}={','.join(values)}"
    specs = parse_sweep(sweep, base)
    for s in specs:
        check_params(get_attack(s.attack).params, s.params, get_attack(s.attack).title)

    per_image = spec.num_classes - 1 if form["targets"] == "all" else 1
    pixels = spec.channels * spec.input_size[0] * spec.input_size[1]
    chunk = min(default_chunk(pixels, device), per_image * max(1, math.ceil(len(images) / 10)))
    command = ["advlens", "evaluate", "--model", choice.name]
    for s in base:
        defaults = get_attack(s.attack).defaults()
        changed = ",".join(f"{k}={_cli_value(v)}" for k, v in s.given.items() if defaults.get(k) != v
                           and k != (form["sweep"] or None))
        command += ["--attack", s.attack + (f":{changed}" if changed else "")]
    command += ["--images", text, "--targets", form["targets"], *(["--sweep", sweep] if sweep else []),
                "--seed", str(SEED), "--device", device.type, "--chunk", str(chunk), "--out", str(folder)]
    return Request(choice.name, specs, images, form["targets"], folder, form["budget"], chunk, command)


# ------------------------------------------------------------------------------------------------ background runs

class Stopped(Exception):
    """Raised from ``on_rows`` when Stop was pressed: ``evaluate`` ends after the chunk it just committed."""


@dataclass
class Job:
    """One evaluation running (or run) in a background thread of this server."""

    folder: Path
    summary: str
    command: list[str]
    total: Optional[int] = None  # rows this run has to compute (None while the plan is made)
    done: int = 0
    cases: int = 0  # cases in the plan, stored ones included
    skipped: list[str] = field(default_factory=list)
    outcome: Optional[Outcome] = None
    error: Optional[str] = None
    started: float = field(default_factory=time.perf_counter)
    stop: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)

    @property
    def running(self) -> bool:
        return not self.finished.is_set()

    @property
    def stopped(self) -> bool:
        return self.stop.is_set() and self.outcome is None and self.error is None

    def planned(self, plan: Plan) -> None:
        self.cases, self.skipped = plan.cases, list(plan.skipped)

    def rows(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        if self.stop.is_set() and done < total:
            raise Stopped

    def progress(self) -> tuple[float, str]:
        """(fraction, words) for the progress bar."""
        if self.total is None:
            return 0.0, "Loading the model and planning the cases…"
        if self.total == 0:
            return 1.0, "Every row is already stored."
        elapsed = time.perf_counter() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = f" · about {fmt_seconds((self.total - self.done) / rate)} left" if rate > 0 else ""
        stopping = " · stopping after this chunk" if self.stop.is_set() else ""
        return self.done / self.total, (f"{self.done}/{self.total} rows · {fmt_seconds(elapsed)} elapsed · "
                                        f"{rate:.2f} rows/s{left}{stopping}")


_JOBS: dict[Path, Job] = {}
_JOBS_LOCK = threading.Lock()


def job_for(folder: Path | str) -> Optional[Job]:
    """The latest evaluation this server started into ``folder``, running or not."""
    with _JOBS_LOCK:
        return _JOBS.get(Path(folder).expanduser().resolve())


def start_job(request: Request, device: torch.device) -> Job:
    """Start ``request`` in a background thread; a ValueError if an evaluation is already running there."""
    with _JOBS_LOCK:
        old = _JOBS.get(request.folder)
        if old is not None and old.running:
            raise ValueError(f"An evaluation is already running in {request.folder}: wait for it, stop it, or choose "
                             "another results folder.")
        job = _JOBS[request.folder] = Job(request.folder, request.summary, request.command)
    threading.Thread(target=_work, args=(job, request, device), name=f"advlens-evaluate-{request.folder.name}",
                     daemon=True).start()
    return job


def _work(job: Job, request: Request, device: torch.device) -> None:
    from advlens.evaluation import evaluate
    from advlens.models import ModelUnavailable

    try:
        job.outcome = evaluate(request.model, request.specs, request.images, request.targets, request.folder,
                               seed=SEED, device=device, chunk=request.chunk, command=request.command,
                               on_rows=job.rows, on_plan=job.planned)
    except Stopped:
        pass
    except (ValueError, ModelUnavailable, OSError) as err:  # bad input found late, a full disk: one sentence
        job.error = first_line(err)
    except Exception as err:  # never a traceback in the page; the log keeps it
        log.exception("evaluation into %s failed", request.folder)
        job.error = f"The evaluation failed: {first_line(err)}"
    finally:
        job.finished.set()


def command_line(job: Job) -> str:
    return shlex.join(job.command)
