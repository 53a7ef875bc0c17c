"""Sweep: β on a log grid, or κ, over a handful of images; EN rule against L1 rule (Fig. 2 of the EAD paper)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch
from plotly.subplots import make_subplots

from advlens import ui
from attacks.targets import random_targets
from interpret.metrics import summarise

PAGE = "sweep"
GRIDS = {
    "beta": (0.0, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1),
    "kappa": (0.0, 2.0, 5.0, 10.0, 20.0, 40.0),
}
DEFAULT_VALUES = {"beta": (1e-4, 1e-3, 1e-2, 0.1), "kappa": (0.0, 5.0, 10.0, 20.0)}
SYMBOL = {"beta": "β", "kappa": "κ"}
RULES = {"en": "EN rule", "l1": "L1 rule"}
RULE_STYLE = {"en": dict(color="#d62728", dash="solid"), "l1": dict(color="#1f77b4", dash="dash")}
PANELS = (("l0", "ℓ0 (pixels)"), ("l1", "ℓ1"), ("l2", "ℓ2"), ("linf", "ℓ∞"), ("asr", "success rate (%)"),
          ("seconds", "time per attack (s)"))

ui.page_header("Sweep", "How β (the ℓ1 weight) or κ (the confidence) shapes EAD's adversarial examples, on a "
                        "handful of images with a fixed random target each. Both decision rules run at every value: "
                        "the L1 rule keeps the sparsest success, the EN rule the least elastic-net distortion "
                        "(Fig. 2 of the EAD paper).")

choice = ui.current_model()
if ui.require_model(choice):
    spec, ds = choice.spec, choice.spec.dataset
    ead = ui.param_defaults("ead", spec)
    top = st.columns([3, 2], gap="large")
    with top[0]:
        ui.section("What to sweep")
        swept = st.segmented_control("Swept parameter", list(GRIDS), key=ui.keep(f"{PAGE}.swept", "beta"),
                                     format_func=lambda p: f"{SYMBOL[p]} · {ui.PARAMS[p].label.split('· ')[1]}",
                                     required=True) or "beta"
        with st.form(f"{PAGE}-form", border=True):
            values_key = ui.keep(f"{PAGE}.{ds}.values.{swept}", list(DEFAULT_VALUES[swept]))
            st.multiselect(f"Values of {SYMBOL[swept]}", GRIDS[swept], key=values_key, format_func=ui.fmt_num,
                           help="Each value runs EAD twice per image batch, once per decision rule.")
            cols = st.columns(2, gap="medium")
            with cols[0]:
                n_key = ui.keep(f"{PAGE}.{ds}.images", 5)
                st.slider("Images", 1, 10, key=n_key, help="The first image of each class in the gallery, with a "
                                                           "random incorrect target (seed 0).")
                fixed = "kappa" if swept == "beta" else "beta"
                ui.param_widget(PAGE, ds, fixed, ead[fixed])
                optimiser_key = ui.keep(f"{PAGE}.optimiser", "ead")
                st.radio("Optimiser", ("ead", "ead-ista"), key=optimiser_key, horizontal=True,
                         format_func=lambda n: ui.ATTACK_SHORT[n])
            with cols[1]:
                for name in ("initial_const", "binary_search_steps", "steps"):
                    ui.param_widget(PAGE, ds, name, ead[name])
            submitted = st.form_submit_button("Run sweep", type="primary", icon=":material/play_arrow:")
    with top[1]:
        ui.section("Images")
        items = ui.thumb_items(ui.gallery_items(ds))[: int(st.session_state[n_key])]
        st.image([ui.thumbnail(it.ref, choice.name) for it in items], caption=[ui.short_title(it.title) for it in items],
                 width=72)
        n_runs = 2 * len(st.session_state[values_key])
        st.caption(f"{n_runs} attacks on a batch of {len(items)} image{'s' if len(items) > 1 else ''}; on CPU each "
                   "takes a few seconds with the starting budget.")

    live_area = st.container()
    if submitted:
        values = sorted(st.session_state[values_key])
        if not values:
            ui.show_error(f"Choose at least one value of {SYMBOL[swept]} to sweep.")
        else:
            loaded = [ui.load_ref(it.ref, choice.name) for it in items]
            x = torch.cat([img.tensor for img in loaded])
            labels = torch.tensor([img.label for img in loaded])
            targets = random_targets(labels, spec.num_classes, torch.Generator().manual_seed(0))
            base = ui.read_params(PAGE, ds, (fixed, "initial_const", "binary_search_steps", "steps"))
            optimiser = st.session_state[optimiser_key]
            rows: list[dict] = []
            ui.runs()[PAGE] = {"swept": swept, "values": values, "rows": rows, "titles": [it.title for it in items],
                               "class_names": spec.class_names, "labels": labels, "targets": targets,
                               "original": x, "optimiser": optimiser, "fixed": {fixed: base[fixed]}}
            with ui.LiveRunner(live_area, key=PAGE, count=2 * len(values)) as live:
                for value in values:
                    for rule in RULES:
                        title = f"{SYMBOL[swept]} = {ui.fmt_num(value)} · {RULES[rule]}"
                        out = live.run(optimiser, choice.model, x, labels, targets,
                                       {**base, swept: value, "decision_rule": rule}, title=title)
                        if out is not None:
                            result = out[0]
                            rows.append({"value": value, "rule": rule, "result": result,
                                         "seconds": result.seconds, "stopped": result.stopped,
                                         **summarise(result.perturbation, result.success)})


@st.fragment
def results(sweep: dict) -> None:
    swept, rows = sweep["swept"], sweep["rows"]
    if not rows:
        return
    sym = SYMBOL[swept]
    fixed = ", ".join(f"{SYMBOL[k]} = {ui.fmt_num(v)}" for k, v in sweep["fixed"].items())
    ui.section("Distortion against " + sym, f"{ui.ATTACK_SHORT[sweep['optimiser']]} · {len(sweep['titles'])} images "
                                             f"· {fixed} · means over successful examples, [0, 1] intensity scale")
    fig = make_subplots(rows=2, cols=3, subplot_titles=[t for _, t in PANELS], horizontal_spacing=0.08,
                        vertical_spacing=0.16)
    labels = [ui.fmt_num(v) for v in sweep["values"]]
    for rule, name in RULES.items():
        mine = {r["value"]: r for r in rows if r["rule"] == rule}
        for k, (metric, _) in enumerate(PANELS):
            fig.add_trace(go.Scatter(
                x=labels, y=[mine[v][metric] if v in mine else None for v in sweep["values"]], name=name,
                mode="lines+markers", line=RULE_STYLE[rule], legendgroup=rule, showlegend=k == 0,
                hovertemplate=f"{sym} = %{{x}}<br>%{{y:.4g}}<extra>{name}</extra>"), k // 3 + 1, k % 3 + 1)
    fig.update_xaxes(type="category")
    fig.update_xaxes(title_text=sym, row=2)
    fig.update_yaxes(rangemode="tozero")
    fig.update_layout(height=580, legend=dict(orientation="h", y=-0.14, x=0.5, xanchor="center"),
                      margin=dict(l=8, r=8, t=30, b=8))
    ui.plot(fig, f"{PAGE}.curves")

    ui.section("Adversarial images", "One row per value; ✓ the target was reached, ✗ the original is shown.")
    rule = st.segmented_control("Decision rule", list(RULES), key=ui.keep(f"{PAGE}.strip_rule", "en"),
                                format_func=RULES.get, required=True) or "en"
    names, targets, labels = sweep["class_names"], sweep["targets"], sweep["labels"]
    head = st.columns([1, 6], vertical_alignment="center")
    head[0].caption("original")
    head[1].image([ui.crisp(x, 84) for x in sweep["original"]],
                  caption=[f"{names[int(y)]} → target {names[int(t)]}" for y, t in zip(labels, targets)], width=84)
    for r in (r for r in rows if r["rule"] == rule):
        result = r["result"]
        row = st.columns([1, 6], vertical_alignment="center")
        row[0].markdown(f"**{sym} = {ui.fmt_num(r['value'])}**  \n{r['asr']:.0f}% success")
        row[1].image([ui.crisp(x, 84) for x in result.adversarial],
                     caption=["✓" if ok else "✗" for ok in result.success.tolist()], width=84)

    with st.expander("Numbers", icon=":material/table:"):
        frame = pd.DataFrame([{sym: ui.fmt_num(r["value"]), "rule": RULES[r["rule"]], "success %": r["asr"],
                               "ℓ0 (px)": r["l0"], "ℓ1": r["l1"], "ℓ2": r["l2"], "ℓ∞": r["linf"],
                               "time (s)": r["seconds"]} for r in rows])
        st.dataframe(frame, hide_index=True, width="stretch")


stored = ui.runs().get(PAGE)
if stored:
    results(stored)
elif choice.model is not None:
    st.info("No sweep yet: choose the values and press **Run sweep**.", icon=":material/arrow_upward:")
