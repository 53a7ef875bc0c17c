"""The papers' per-image summary in the app: one attack on every incorrect target of one image in one batch, with
the best, average and worst case over the targets (EAD paper, Sec. 4.1; ``interpret.metrics.case_summary``), and
any target's result reopened in Explore's panels."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Optional

import streamlit as st

from ui import analysis, chrome, live
from ui.state import Run, runs

MAX_CLASSES = 20  # all targets of an ImageNet image would be 999 attacks: that is an evaluation, not a panel
AVERAGE_SEED = 0  # the average case's random incorrect class, fixed as the evaluation's seed fixes it


@dataclass
class AllTargets:
    """One attack on every incorrect target of one image."""

    runs: list[Run]  # one per target, in target order
    summary: dict[str, dict[str, float]]  # case → ASR and mean distortions over successes
    by: str  # the distortion that ranks the targets
    average_target: int


def store_key(page: str) -> str:
    return f"{page}.all-targets"


def average_row(label: int, num_classes: int) -> tuple[int, int]:
    """(target, its row among the incorrect classes) of the average case: a seeded random incorrect class."""
    import torch

    from attacks.targets import random_targets

    generator = torch.Generator().manual_seed(AVERAGE_SEED)
    target = int(random_targets(torch.tensor([label]), num_classes, generator)[0])
    return target, target - int(target > label)


def summarise(attack: str, done: list[Run], label: int, num_classes: int) -> AllTargets:
    import torch

    from attacks.registry import ATTACKS
    from interpret.metrics import case_summary

    by = ATTACKS[attack].ranking_metric(done[0].report.params)
    target, row = average_row(label, num_classes)
    delta = torch.cat([r.delta for r in done])
    success = torch.cat([r.result.success for r in done])
    summary = case_summary(delta, success, len(done), by=by, average_pick=torch.tensor([row]))
    return AllTargets(runs=done, summary=summary, by=by, average_target=target)


def section(page: str, stored: Run, choice: Any, picked: Any) -> None:
    """Under a result: run its attack with its parameters on all targets of its image, then the table."""
    from attacks.registry import ATTACKS

    chrome.section("All targets of this image")
    classes = len(choice.spec.class_names)
    entry = ATTACKS[stored.attack]
    if classes > MAX_CLASSES:
        st.caption(f"All {classes - 1} targets of one image is a dataset-scale run on this model: use the Evaluate "
                   "page (targets: random or next) for the papers' cases.")
        return
    if entry.family == "random baseline" or picked is None or stored.image_title != picked.title \
            or stored.model != choice.name or stored.source:
        st.caption(f"Run a targeted attack on the image above first; then all {classes - 1} targets can be "
                   "attacked at once with the same parameters.")
        return
    st.caption(f"{entry.title} with the parameters of the result above on all {classes - 1} incorrect classes of "
               f"{stored.image_title}, in one batch. Best case: the least distorted target that succeeds; average "
               "case: a random target (seeded); worst case: the most distorted target, a failure if any target fails.")
    if st.button(f"Run on all {classes - 1} targets", key=f"{page}.all-targets.run", icon=":material/grid_view:"):
        _run(page, stored, choice, picked, classes)
    summary = runs().get(store_key(page))
    if isinstance(summary, AllTargets) and summary.runs[0].image_title == stored.image_title \
            and summary.runs[0].attack == stored.attack:
        _table(page, summary)


_NAMES = {"l0": "ℓ0", "l1": "ℓ1", "l2": "ℓ2", "linf": "ℓ∞"}


def _run(page: str, stored: Run, choice: Any, picked: Any, classes: int) -> None:
    from attacks.registry import ATTACKS
    from attacks.targets import all_targets

    x, labels, targets = all_targets(stored.result.original[:1], stored.result.labels[:1], classes)
    names = {p.name for p in ATTACKS[stored.attack].params}  # the report also records fixed arguments (optimiser)
    params = {k: v for k, v in stored.report.params.items() if k in names}
    with live.LiveRunner(st.container(), key=f"{page}.all-targets") as runner:
        out = runner.run(stored.attack, choice.model, x, labels, targets, params, title=f"{stored.title} · all targets")
    if out is None:
        return
    result, trace = out
    done = [analysis.make_run(stored.attack, stored.title, choice, picked, result.select(i), trace)
            for i in range(result.original.shape[0])]
    done = [replace(run, id=done[0].id + i) for i, run in enumerate(done)]  # made within one ms: ids must differ
    runs()[store_key(page)] = summarise(stored.attack, done, int(labels[0]), classes)


def _table(page: str, summary: AllTargets) -> None:
    import pandas as pd

    names = summary.runs[0].class_names
    rows = [{"target": f"{int(r.report.target)} · {names[int(r.report.target)]}"
             if r.report.target is not None else "—", "success": bool(r.report.success),
             **{_NAMES[k]: _metric(r, k) for k in _NAMES}} for r in summary.runs]
    cases = [{"case": case + (f" (target {summary.average_target})" if case == "average" else ""),
              "ASR (%)": v["asr"], **{_NAMES[k]: v.get(k, float("nan")) for k in _NAMES}}
             for case, v in summary.summary.items()]
    left, right = st.columns([3, 4], gap="large")
    with left:
        st.markdown(f"**Best, average and worst case** · ranked by {_NAMES[summary.by]}",
                    help="Distortions are means over successes, as the papers average them; with one image each "
                         "case is one target.")
        st.dataframe(pd.DataFrame(cases), hide_index=True, width="stretch")
    with right:
        st.markdown("**Every target**")
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    labels = [row["target"] for row in rows]

    def open_target() -> None:  # a callback, so it acts once per choice and never overrides a later run
        pick = st.session_state.get(f"{page}.all-targets.open")
        if pick in labels:
            runs()[page] = summary.runs[labels.index(pick)]

    st.selectbox("Open a target's result in the panels above", labels, index=None, key=f"{page}.all-targets.open",
                 placeholder="choose a target", on_change=open_target)


def _metric(run: Run, key: str) -> Optional[float]:
    value = getattr(run.report, key, None)
    return None if value is None else float(value)
