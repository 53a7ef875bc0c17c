"""From a finished attack to what its panels show: the report, the interpretability scores, IS at the display's ν.

``make_run`` and ``analyse`` touch no ``st.*`` and no session state: after a Stop they still run in the stopped
script's thread, where every Streamlit call raises.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Optional

import streamlit as st

from ui.chrome import first_line
from ui.resources import ModelChoice
from ui.state import Run, Trace

if TYPE_CHECKING:
    from torch import Tensor

    from attacks import AttackResult
    from ui.pickers import Picked

log = logging.getLogger("advlens.app")
CAM_METHOD = "gradcam"


def make_run(attack: str, title: str, choice: ModelChoice, picked: Picked, result: AttackResult,
             trace: Trace) -> Run:
    """The record of one attack on one image, with its report (advlens.report, the CLI's schema)."""
    from advlens.report import build_report

    model = choice.model
    assert model is not None, "an attack ran, so its model is loaded"
    report = build_report(result, model, model_name=choice.name, image=picked.ref, notes=picked.image.notes)
    return Run(id=int(time.time() * 1000) % 10**9, attack=attack, title=title, model=choice.name,
               image_title=picked.title, class_names=choice.spec.class_names, result=result, report=report,
               trace=trace, notes=list(picked.image.notes))


def analyse(choice: ModelChoice, result: AttackResult, *, quartet: bool = True
            ) -> tuple[Optional[dict], Optional[str]]:
    """ASM, CAMs and IS-vs-ν of one result (advlens.explain); a failure is one sentence, not a crash."""
    try:
        from advlens.explain import interpretability_scores

        model = choice.model
        assert model is not None
        scores = interpretability_scores(model, choice.spec, result.to(model.device), quartet=quartet,
                                         cam_method=CAM_METHOD)
        return scores, None
    except Exception as err:
        log.exception("interpretability scores failed")
        return None, f"The interpretability panels could not be computed: {first_line(err)}"


def ensure_scores(run: Run, choice: ModelChoice, *, quartet: bool = True) -> None:
    """Compute a run's interpretability scores if they are missing (e.g. a click interrupted the first try)."""
    if run.scores is not None or run.analysis_error is not None:
        return
    if choice.model is None or choice.name != run.model:
        return
    with st.spinner("Computing the ASM and the class activation maps…"):
        run.scores, run.analysis_error = analyse(choice, run.result, quartet=quartet)


def scores_at(run: Run, nu: float) -> Optional[dict]:
    """The run's scores with B_ASM, IS-ASM and IS-CAM taken at threshold ν (the display's knob) instead of the
    ν they were computed at; None when there are none. The IS(ν) curve is unchanged."""
    if run.scores is None:
        return None
    from interpret.scores import cam_interpretability, interpretability_score, percentile_mask

    delta = run.delta
    mask = percentile_mask(run.scores["asm"], nu)
    return {**run.scores, "mask": mask, "is_asm": interpretability_score(delta, mask),
            "is_cam": cam_interpretability(delta, run.scores["cams"]["x0_t0"], nu)}


def is_at(run: Run, nu: float) -> tuple[Optional[float], Optional[float]]:
    """(IS-ASM, IS-CAM) of a run at ν; None where δ = 0 or the scores are missing."""
    scores = scores_at(run, nu)
    if scores is None:
        return None, None
    is_asm, is_cam = float(scores["is_asm"][0]), float(scores["is_cam"][0])
    return (None if math.isnan(is_asm) else is_asm), (None if math.isnan(is_cam) else is_cam)


def shared_scales(done: Sequence[Run]) -> dict[str, float]:
    """One colour range per panel type across several runs, so columns compare by colour: max |δ|, max ‖δ_G‖₂,
    max |δ| summed over channels."""
    from interpret.groups import group_norms
    from interpret.perturbation import magnitude

    def top(values: Sequence[Tensor]) -> float:
        return max((float(v.max()) for v in values), default=0.0)

    return {
        "delta": top([r.delta.abs() for r in done]),
        "groups": top([group_norms(r.delta, r.report.group_size, r.report.stride) for r in done]),
        "magnitude": top([magnitude(r.delta) for r in done]),
    }
