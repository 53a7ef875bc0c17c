"""Sweep: any numeric parameter of any attack over a handful of images; for EAD's β (the default) both decision
rules, as in Fig. 2 of the EAD paper."""

from __future__ import annotations

import streamlit as st
import torch

from ui import chrome, forms, live, panels, paper_presets, pickers, resources, state, sweeps
from ui.colours import series_style, short_label

PAGE = "sweep"
PANELS = (("l0", "ℓ0 (pixels)"), ("l1", "ℓ1"), ("l2", "ℓ2"), ("linf", "ℓ∞"), ("asr", "success rate (%)"),
          ("seconds", "time per attack (s)"))

chrome.page_header("Sweep", "How one parameter shapes an attack's adversarial examples, on a handful of images with "
                            "a fixed random target each. For EAD both decision rules run at every value: the L1 rule "
                            "keeps the sparsest success, the EN rule the least elastic-net distortion (Fig. 2 of "
                            "the EAD paper, with β).")
paper_presets.note(PAGE)


def series_name(attack: str, param: str | None, value: str) -> str:
    from attacks.registry import get_attack

    return forms.variant_label(get_attack(attack).param(param), value) if param else "all images"


choice = resources.current_model()
usable = not resources.known_failure(choice)
if usable:
    from attacks.registry import ATTACKS

    ds = choice.spec.dataset
    top = st.columns([3, 2], gap="large")
    with top[0]:
        chrome.section("What to sweep")
        attack = st.selectbox("Attack", list(ATTACKS), key=state.keep(state.attack_key(PAGE), "ead"),
                              format_func=short_label)
        param = sweeps.axis(ds, attack)
        request = sweeps.sweep_form(choice, attack, param)
    with top[1]:
        chrome.section("Images")
        items = pickers.thumb_items(resources.gallery_items(ds))[: sweeps.image_count(ds)]
        st.image([pickers.thumbnail(it.ref, choice.name) for it in items],
                 caption=[pickers.short_title(it.title) for it in items], width=72)
        st.caption(f"One attack per value (and per decision rule, for EAD) on a batch of {len(items)} "
                   f"image{'s' if len(items) > 1 else ''}; "
                   + ("on a CPU each takes seconds with the starting budget." if ds == "mnist" else
                      "on a CPU each takes tens of seconds on this model (the whole sweep minutes): the progress line says how long."))
    live_area = st.container()
    if request is not None and "error" in request:
        chrome.show_error(request["error"])
    elif request is not None and (model := resources.require_model(choice)) is not None:
        from attacks.targets import random_targets
        from interpret.metrics import summarise

        loaded = [resources.load_ref(it.ref, choice.name) for it in items]
        x = torch.cat([img.tensor for img in loaded])
        labels = torch.tensor([img.label for img in loaded])
        targets = random_targets(labels, choice.spec.num_classes, torch.Generator().manual_seed(0))
        record = state.SweepRecord(attack=attack, param=param.name, values=request["values"],
                                   series_param=request["series_param"], series=request["series"],
                                   titles=[it.title for it in items], class_names=choice.spec.class_names,
                                   labels=labels, targets=targets, original=x, fixed=request["params"],
                                   model=choice.name, refs=[it.ref for it in items])
        state.runs()[PAGE] = record
        runs = [(v, s) for v in record.values for s in record.series]
        with live.LiveRunner(live_area, key=PAGE, count=len(runs)) as runner:
            for value, series in runs:
                extra = {record.series_param: series} if record.series_param else {}
                title = f"{param.title} = {chrome.fmt_num(value)}"
                if extra:
                    title += f" · {series_name(attack, record.series_param, series)}"
                out = runner.run(attack, model, x, labels, targets,
                                 {**request["params"], param.name: value, **extra}, title=title)
                if out is not None:
                    result = out[0]
                    record.rows.append(state.SweepRow(value, series, result, {
                        "seconds": result.seconds, **summarise(result.perturbation, result.success)}))


@st.fragment
def results(sweep: state.SweepRecord) -> None:
    from attacks.registry import get_attack
    from interpret.plots import sweep_figure
    from interpret.render import crisp

    title = get_attack(sweep.attack).param(sweep.param).title
    names = {s: series_name(sweep.attack, sweep.series_param, s) for s in sweep.series}
    chrome.section(f"Distortion against {title}", f"{short_label(sweep.attack)} · {len(sweep.titles)} images "
                                                  "· means over successful examples, [0, 1] intensity scale")
    if (stopped := live.stop_note(PAGE)) is not None:
        st.caption(f":material/stop_circle: {stopped} {len(sweep.rows)} of {len(sweep.values) * len(sweep.series)} "
                   "runs are shown, the last one cut short.")
    rows = {(r.value, r.series): r.metrics for r in sweep.rows}
    series = {names[s]: [rows.get((v, s)) for v in sweep.values] for s in sweep.series}
    styles = {names[s]: series_style(k) for k, s in enumerate(sweep.series)}
    chrome.plot(sweep_figure([chrome.fmt_num(v) for v in sweep.values], series, PANELS, symbol=title, styles=styles),
                f"{PAGE}.curves")

    chrome.section("Adversarial images", "One row per value; ✓ the target was reached, ✗ the original is shown.")
    shown = sweep.series[0]
    if len(sweep.series) > 1:
        key = state.page_widget(PAGE, "strip_series", sweep.series[0])
        shown = st.segmented_control("Series", sweep.series, key=key, format_func=lambda s: names[s],
                                     required=True) or sweep.series[0]
    head = st.columns([1, 6], vertical_alignment="center")
    head[0].caption("original")
    head[1].image([crisp(x, 84) for x in sweep.original], width=84,
                  caption=[f"{sweep.class_names[int(y)]} → target {sweep.class_names[int(t)]}"
                           for y, t in zip(sweep.labels, sweep.targets)])
    for r in (r for r in sweep.rows if r.series == shown):
        row = st.columns([1, 6], vertical_alignment="center")
        row[0].markdown(f"**{title} = {chrome.fmt_num(r.value)}**  \n{r.metrics['asr']:.0f}% success")
        row[1].image([crisp(x, 84) for x in r.result.adversarial], width=84,
                     caption=["✓" if ok else "✗" for ok in r.result.success.tolist()])
        if (note := sweeps.failure_note(sweep, r)) is not None:
            row[1].caption(f":material/info: {note}")

    table = sweeps.sweep_rows(sweep, title, names)
    with st.expander("Numbers", icon=":material/table:"):
        st.dataframe(table, hide_index=True, width="stretch")
    model = choice.model if choice.name == sweep.model else None
    reports = (lambda: sweeps.reports_json(sweep, model)) if model is not None else None
    panels.table_downloads(table, reports, f"advlens_sweep_{sweep.attack}_{sweep.param}", PAGE)


stored = state.runs().get(PAGE)
if stored is not None and stored.rows:
    results(stored)
elif usable:
    st.info("No sweep yet: choose the attack, the parameter and its range, then press **Run sweep**.",
            icon=":material/arrow_upward:")
