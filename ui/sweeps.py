"""Sweep's form: any numeric parameter of any registered attack, over a grid its schema bounds.

The grid is ``Param.grid`` (geometric where the parameter is log-scaled and the range starts above 0) between an
editable "from" and "to" (number boxes bounded by the schema) with a count. The attack's other parameters keep
their generated widgets. An attack with a choice of objective (EAD's decision rule) runs every value once per
choice: Fig. 2 of the EAD paper when the swept parameter is β.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import streamlit as st

from ui.chrome import fmt_num
from ui.forms import help_text, param_widgets, read_params, starts, variant_param
from ui.resources import ModelChoice
from ui.state import SweepRecord, SweepRow, keep, sweep_axis_key, sweep_images_key, sweep_key

if TYPE_CHECKING:
    from advlens.models import PixelModel
    from attacks.params import Param

PAGE = "sweep"
MAX_COUNT = 8


def default_range(param: Param, start: Any) -> tuple[float, float]:
    """Where a sweep of ``param`` starts: below the preset for a budget, a few decades around it on a log scale,
    from the lower bound to about twice it otherwise."""
    low = param.low if param.low is not None else 0.0
    high = param.high if param.high is not None else max(1.0, 2 * (start or 1.0))
    start = start if start else (param.default or 0)
    if param.group == "budget" and start:
        lo, hi = (max(low, start / 10) if param.log else low), start
    elif param.log and start:
        lo, hi = max(low, start / 10), min(high, start * 100)
    elif param.log:
        lo, hi = (low or high * 1e-4), high
    else:
        lo, hi = low, min(high, max(2 * start, low + (high - low) / 50))
    return (float(round(lo)), float(round(hi))) if param.type is int else (float(lo), float(hi))


def image_count(dataset: str) -> int:
    """How many gallery images the sweep attacks (the form's slider)."""
    return int(st.session_state[keep(sweep_images_key(dataset), 5)])


def axis(dataset: str, attack: str) -> Param:
    """The swept parameter: a numeric parameter of ``attack`` (β where it has one)."""
    from attacks.registry import get_attack

    numeric = [p for p in get_attack(attack).params if p.numeric]
    names = [p.name for p in numeric]
    key = keep(sweep_axis_key(dataset, attack), "beta" if "beta" in names else names[0])
    if st.session_state[key] not in names:
        st.session_state[key] = names[0]
    name = st.selectbox("Swept parameter", names, key=key, format_func=lambda n: numeric[names.index(n)].title,
                        help="Any numeric parameter of the attack; log-scaled ones get a geometric grid.")
    return numeric[names.index(name)]


def grid_widgets(dataset: str, attack: str, param: Param, start: Any) -> None:
    lo, hi = default_range(param, start)
    cast = int if param.type is int else float
    bounds = {k: cast(v) for k, v in (("min_value", param.low), ("max_value", param.high)) if v is not None}
    fmt = {} if param.type is int else {"format": "%g"}
    cols = st.columns(3, gap="small")
    cols[0].number_input("From", key=keep(sweep_key(dataset, attack, param.name, "from"), cast(lo)), **bounds, **fmt,
                         help=help_text(param))
    cols[1].number_input("To", key=keep(sweep_key(dataset, attack, param.name, "to"), cast(hi)), **bounds, **fmt)
    count = min(4, int(hi - lo) + 1) if param.type is int else 4
    cols[2].number_input("Values", 1, MAX_COUNT, key=keep(sweep_key(dataset, attack, param.name, "count"), count),
                         help="How many values from 'from' to 'to': evenly spaced, or geometric for a log-scaled "
                              "parameter when 'from' is above 0.")


def grid_values(dataset: str, attack: str, param: Param) -> list[Any]:
    """The values to sweep; a ValueError (one sentence) when the range is empty."""
    lo, hi, count = (st.session_state[sweep_key(dataset, attack, param.name, part)] for part in ("from", "to", "count"))
    if lo is None or hi is None or lo > hi:
        raise ValueError(f"{param.title}: 'from' ({fmt_num(lo or 0)}) must not be above 'to' ({fmt_num(hi or 0)}).")
    return [param.check(v) for v in param.grid(int(count), lo, hi)]


def sweep_form(choice: ModelChoice, attack: str, param: Param) -> Optional[dict[str, Any]]:
    """The grid, the number of images and every other parameter of the attack, in a form. On submit:
    {"values", "params" (fixed ones), "series_param"} or, when the grid is empty, {"error": sentence}."""
    from attacks.registry import get_attack

    entry, ds = get_attack(attack), choice.spec.dataset
    series = variant_param(entry)
    series = series if series is not None and series.name != param.name else None
    others = [p for p in entry.params if p.name not in (param.name, series.name if series else "")]
    preset = starts(attack, ds)
    with st.form(f"{PAGE}-form", border=True):
        grid_widgets(ds, attack, param, preset.get(param.name))
        st.slider("Images", 1, 10, key=keep(sweep_images_key(ds), 5),
                  help="The first image of each class in the gallery, with a random incorrect target (seed 0).")
        if series is not None:
            st.caption(f"Every value runs once per {series.title}: {', '.join(map(str, series.choices))}.")
        param_widgets(PAGE, ds, attack, others, preset)
        submitted = st.form_submit_button("Run sweep", type="primary", icon=":material/play_arrow:")
    if not submitted:
        return None
    try:
        values = grid_values(ds, attack, param)
    except ValueError as err:
        return {"error": str(err)}
    return {"values": values, "params": read_params(PAGE, ds, attack, others),
            "series_param": None if series is None else series.name,
            "series": [""] if series is None else list(series.choices)}


def sweep_rows(sweep: SweepRecord, title: str, names: dict[str, str]) -> list[dict[str, Any]]:
    """The sweep's table: one row per value and series, means over its images (what the CSV download holds)."""
    return [{title: fmt_num(r.value), "series": names[r.series], "success %": r.metrics["asr"],
             "ℓ0 (px)": r.metrics["l0"], "ℓ1": r.metrics["l1"], "ℓ2": r.metrics["l2"], "ℓ∞": r.metrics["linf"],
             "time (s)": r.metrics["seconds"]} for r in sweep.rows]


def reports_json(sweep: SweepRecord, model: PixelModel) -> str:
    """Every attacked image of every value as the one report (``advlens.report``), in one JSON list: each report's
    ``params`` hold the swept value and the series."""
    import json

    from advlens.report import build_report

    refs = sweep.refs or sweep.titles
    reports = [build_report(r.result, model, model_name=sweep.model, image=refs[i], index=i).to_dict()
               for r in sweep.rows for i in range(r.result.original.shape[0])]
    return json.dumps(reports, indent=2, ensure_ascii=False) + "\n"


def failure_note(sweep: SweepRecord, row: SweepRow) -> Optional[str]:
    """One sentence beside a value at which no image succeeded: the budget it had and what to change; None when
    some succeeded or a Stop cut the run short.

    Where a sample failed, ``result.const`` holds the last (largest) c it tried. EAD's soft threshold is β itself
    (eq. 9): a pixel moves only where α₀·c·|∇f| exceeds β, so at a large β a small c leaves δ exactly 0 (on
    EfficientNet-Lite0's first gallery image at β = 0.1 and α₀ = 0.01: no pixel at c = 1, 5 of 150,528 at c = 10).
    The note says so from β ≥ α₀ on.
    """
    if row.metrics["asr"] > 0 or row.result.stopped:
        return None
    params = {**sweep.fixed, sweep.param: row.value, **row.result.params}
    steps, iterations, c0 = params.get("binary_search_steps"), params.get("steps"), params.get("initial_const")
    if not isinstance(steps, int) or not isinstance(c0, (int, float)):
        return "No image succeeded at this value: raise the attack's iterations or step size and run it again."
    budget = f"{steps} binary-search step{'s' if steps > 1 else ''} × {iterations} iterations from c₀ = {c0:g}"
    fix = "raise c₀ or the binary-search steps (c grows ×10 after each failed step)"
    if params.get("abort_early"):
        fix += " and turn off 'abort early'"
    why = ""
    if "beta" in params and not params.get("scaled_threshold") and params["beta"] >= params.get("learning_rate", 0):
        why = (f"; EAD's δ stays exactly 0 until a gradient step α₀·c·|∇f| outgrows β = {fmt_num(params['beta'])} "
               "on some pixel (eq. 9), so a large β needs a large c")
    return f"No image succeeded: {budget} tried c up to {float(row.result.const.max()):g}; {fix}{why}."
