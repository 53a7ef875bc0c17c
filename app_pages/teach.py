"""Teach: proximal optimisation for a class — soft thresholding, ISTA / FISTA / COV in 2-D, then on a real image."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from advlens.models import get_spec
from attacks import IterationState
from interpret import steps, toy, toy_plots
from ui import chrome, forms, live, pickers, resources, state

PAGE = "teach"
TITLES = dict(toy.OPTIMISERS)
COLOURS = {"ead-ista": "#ff7f0e", "ead": "#d62728", "cov": "#9467bd"}
TOY_BOX = ((0.2, 0.1), (0.8, 0.7))


@st.cache_data(show_spinner=False, max_entries=64)
def toy_paths(beta: float, c: float, steps: int, lr: float) -> dict:
    return toy.optimiser_paths(beta, c, steps, lr)


@st.cache_data(show_spinner=False, max_entries=64)
def toy_grid(beta: float, c: float) -> tuple:
    return toy.objective_grid(beta, c, *TOY_BOX)


def short(name: str) -> str:
    return TITLES[name].split(" ")[0]


def race_caption(curves: dict) -> str:
    """What §3's chart shows, computed from its curves: who got lowest, who got close first, the final ‖δ‖₁."""
    race = steps.race_summary(curves)
    lowest = min(race, key=lambda n: race[n]["best"])
    close = {n: r["first_k"] for n, r in race.items() if r["first_k"] is not None}
    first = min(close, key=lambda n: close[n])
    lows = " · ".join(f"{short(n)} {r['best']:.3g} (k = {r['best_k']})" for n, r in race.items())
    firsts = " · ".join(f"{short(n)} " + (f"k = {r['first_k']}" if r["first_k"] is not None else "never")
                        for n, r in race.items())
    l1 = " · ".join(f"{short(n)} {r['final_l1']:.3g}" for n, r in race.items())
    verdict = (f"{short(lowest)} reached the lowest objective and got within 10 % of it first" if first == lowest
               else f"{short(lowest)} reached the lowest objective; {short(first)} got within 10 % of it first")
    return (f"**{verdict}.** "
            f"Lowest objective: {lows}. First within 10 % of the lowest: {firsts}. ‖δ‖₁ at the last iteration: {l1}.")


chrome.page_header("Teach", "Why EAD is solved by proximal steps, not plain gradient descent: the soft-threshold "
                            "operator, the three optimisers on a two-pixel problem you can step through, and the same "
                            "three on a real digit.")

# ------------------------------------------------------------------------------------------------ 1 · soft threshold
chrome.section("1 · The soft-threshold operator")
left, right = st.columns([2, 3], gap="large")
with left:
    st.markdown("The ℓ1 term is not differentiable at zero, so EAD takes a gradient step on the smooth part "
                "g(x) = c·f(x) + ‖x − x₀‖₂² and then applies the **proximal operator** of β‖·‖₁: shrink every "
                "coordinate's change towards the clean pixel by β, and set it to exactly zero when it is smaller.")
    st.latex(r"\begin{aligned}S_\beta(z)_i &= x_{0,i} + \operatorname{sign}(z_i - x_{0,i})\\"
             r"&\quad\cdot\max(|z_i - x_{0,i}| - \beta,\ 0)\end{aligned}")
    st.caption("…then clipped to the pixel box [0, 1].")
    lam = st.slider("Threshold β (λ)", 0.0, 0.2, key=state.page_widget(PAGE, "lambda", 0.03), step=0.005, format="%.3f",
                    help="The shrinkage threshold, in pixel intensity on the [0, 1] scale.")
    z = st.slider("Candidate pixel z after the gradient step", 0.0, 1.0, key=state.page_widget(PAGE, "z", 0.57),
                  step=0.01, format="%.2f")
    x0 = 0.50
    shrunk = toy.shrink(z, x0, lam)
    st.markdown(f"**Worked example.** Clean pixel x₀ = {x0:.2f}, candidate z = {z:.2f}, threshold {lam:.3f}:  \n"
                f"z − x₀ = {z - x0:+.2f} → shrink by {lam:.3f} → change {shrunk - x0:+.3f} → "
                f"**new pixel {shrunk:.3f}**")
    st.caption("The explainer's numbers: 0.57 with threshold 0.03 around 0.50 becomes 0.54, pulled towards the "
               "clean value. Any candidate within ±β of x₀ lands exactly on x₀: that is where sparsity comes from.")
with right:
    chrome.plot(toy_plots.shrink_figure(*toy.shrink_curve(x0, lam), x0=x0, threshold=lam, z=z, z_shrunk=shrunk),
                f"{PAGE}.shrink")

st.markdown("##### Why ℓ1 at all? Two perturbations with the same ℓ2 energy")
cols = st.columns([3, 2], gap="large")
with cols[1]:
    beta_demo = st.slider("β for the elastic net", 0.0, 1.0, key=state.page_widget(PAGE, "beta_demo", 0.1), step=0.05)
en_label = f"β‖δ‖₁ + ‖δ‖₂² (β = {beta_demo:g})"
rows = []
for name, delta in (("δA = (0.1, 0.1, 0.1, 0.1)", (0.1, 0.1, 0.1, 0.1)), ("δB = (0.2, 0, 0, 0)", (0.2, 0, 0, 0))):
    terms = toy.elastic_net_terms(delta, beta_demo)
    rows.append({"perturbation": name, "‖δ‖₁": terms["l1"], "‖δ‖₂²": terms["l2sq"], "‖δ‖₀": terms["l0"],
                 en_label: terms["en"]})
with cols[0]:
    number = st.column_config.NumberColumn
    st.dataframe(rows, hide_index=True, width="stretch", column_config={
        "‖δ‖₁": number(format="%.2f"), "‖δ‖₂²": number(format="%.2f"), en_label: number(format="%.3f")})
with cols[1]:
    st.markdown("Both have ‖δ‖₂² = 0.04, so C&W (β = 0) cannot tell them apart. The ℓ1 norm is 0.4 against 0.2, "
                "so for any β > 0 the elastic net prefers δB: one pixel changed instead of four.")

# ------------------------------------------------------------------------------------------------ 2 · toy problem
chrome.section("2 · ISTA, FISTA and COV on a two-pixel image")
left, right = st.columns([2, 3], gap="large")
with left:
    st.markdown("A linear model on two pixels (x₁, x₂) says class 0 at x₀ = (0.35, 0.30); the attack wants class 1, "
                f"which wins past the line 6x₁ + 3x₂ = 4 (κ = {toy.KAPPA} beyond it). The contours are the EAD "
                "objective; the paths are the iterates of the real attack code on this model; the ring is the exact "
                "minimiser.")
    st.latex(r"\begin{aligned}\min_x\ & c\, f(x, t)\\ &+ \beta\|x - x_0\|_1 + \|x - x_0\|_2^2\end{aligned}")
    toy_beta = st.slider("β", 0.0, 2.0, key=state.page_widget(PAGE, "toy_beta", 1.0), step=0.1,
                         help="Large β: the proximal methods move only x₁ (x₂ stays exactly at 0.30); COV hovers "
                              "near it but never lands on it.")
    toy_c = st.slider("c", 0.1, 2.0, key=state.page_widget(PAGE, "toy_c", 0.5), step=0.1)
    toy_lr = st.slider("Step size α₀", 0.01, 0.2, key=state.page_widget(PAGE, "toy_lr", 0.05), step=0.01)
    toy_steps = st.slider("Iterations", 10, 120, key=state.page_widget(PAGE, "toy_steps", 60), step=10)
    st.caption("ISTA: x⁽ᵏ⁺¹⁾ = S_{αβ}(x⁽ᵏ⁾ − α∇g(x⁽ᵏ⁾)).  FISTA adds momentum: the gradient is taken at "
               "y⁽ᵏ⁾ = x⁽ᵏ⁾ + k/(k+3)·(x⁽ᵏ⁾ − x⁽ᵏ⁻¹⁾).  COV writes x = (tanh w + 1)/2 and runs Adam on the whole "
               "objective, ℓ1 included. Threshold here is the textbook α·β.")
paths = toy_paths(toy_beta, toy_c, toy_steps, toy_lr)
with right:
    optimum = toy.minimiser(toy_beta, toy_c)
    chrome.plot(toy_plots.paths_figure(toy_grid(toy_beta, toy_c), paths, TITLES, COLOURS, lo=TOY_BOX[0],
                                       hi=TOY_BOX[1], optimum=optimum), f"{PAGE}.toy")
    ends = " · ".join(f"{TITLES[name].split(' ')[0]}: ({p[-1, 0]:.3f}, {p[-1, 1]:.4f})" for name, p in paths.items())
    st.caption(f"Press ▶ or drag the slider. Final iterates (x₁, x₂): {ends}; minimiser x* = "
               f"({optimum[0]:.3f}, {optimum[1]:.4f}).")

# ------------------------------------------------------------------------------------------------ 3 · real image
chrome.section("3 · The same three optimisers on a real image")
choice = resources.current_model()
if not resources.known_failure(choice):
    from attacks.registry import get_attack

    ds = choice.spec.dataset
    shared = [get_attack("ead").param(n) for n in ("beta", "initial_const", "steps", "learning_rate",
                                                    "scaled_threshold")]
    starts = {"beta": 1e-2, "initial_const": 10.0, "steps": 150 if resources.device().type == "cpu" else 500,
              "learning_rate": 1e-2, "scaled_threshold": False}
    left, right = st.columns([2, 3], gap="large")
    with left:
        picked = pickers.image_picker(PAGE, choice, with_upload=False)
        st.markdown("One value of c (no binary search), the same β, step size and number of iterations for all "
                    "three; early abort off, so the curves have equal length. The curve is eq. 7's objective "
                    "c·f + β‖δ‖₁ + ‖δ‖₂² for all three. EAD thresholds by β itself every step (eq. 9), which is the "
                    "proximal step of a heavier ℓ1 weight β/αₖ than the one drawn; tick the textbook threshold "
                    "α·β (as in §2) to make ISTA and FISTA minimise exactly the drawn objective.")
        with st.form(f"{PAGE}-form", border=True):
            forms.param_widgets(PAGE, ds, "ead", shared, starts)
            submitted = st.form_submit_button("Run the three optimisers", type="primary",
                                              icon=":material/play_arrow:")
    live_area = right.container()
    model = resources.require_model(choice)
    if model is not None and picked is not None:
        pickers.show_reading(picked, choice)
        if submitted:
            values = forms.read_params(PAGE, ds, "ead", shared)
            labels = torch.tensor([picked.true_class])
            target = picked.runner_up
            record = state.TeachRecord(image=picked.title, model=choice.name, params=values)
            state.runs()[PAGE] = record
            with live.LiveRunner(live_area, key=PAGE, count=len(TITLES)) as runner:
                for name, title in TITLES.items():
                    seen: dict[str, list] = {"objective": [], "l1": []}

                    def observe(s: IterationState, seen: dict[str, list] = seen) -> None:
                        seen["objective"].append(s.losses["objective"][0].detach())
                        seen["l1"].append(s.losses["l1"][0].detach())

                    params = {**values, "binary_search_steps": 1, "abort_early": False}
                    if name == "cov":  # no proximal step, so no threshold to choose
                        params.pop("scaled_threshold")
                    out = runner.run(name, model, picked.image.tensor, labels,
                                     None if target is None else torch.tensor([target]), params, title=title,
                                     observe=observe)
                    if out is not None and seen["objective"]:
                        record.curves[name] = {k: torch.stack(v).cpu().numpy() for k, v in seen.items()}
                        record.curves[name]["success"] = bool(out[0].success[0])

    stored = state.runs().get(PAGE)
    with right:
        if stored is not None and stored.curves:
            chrome.plot(toy_plots.curves_figure(stored.curves, TITLES, COLOURS), f"{PAGE}.real")
            p = stored.params
            ok = ", ".join(f"{TITLES[n].split(' ')[0]} {'✓' if c['success'] else '✗'}"
                           for n, c in stored.curves.items())
            threshold = "textbook α·β" if p.get("scaled_threshold") else "β (eq. 9)"
            st.caption(f"{stored.image} · c = {p['initial_const']:g}, β = {p['beta']:g}, α₀ = "
                       f"{p['learning_rate']:g}, threshold {threshold} · reached the target: {ok}. "
                       + race_caption(stored.curves))
        elif not submitted:
            st.info("Press **Run the three optimisers** to draw their loss and ℓ1 per iteration.",
                    icon=":material/arrow_back:")

# ------------------------------------------------------------------------------------------------ 4 · step by step
STEP_MODEL = "mnist-cnn"
STEP_SETTINGS = {k: v for k, v in steps.DEFAULTS.items() if k != "beta"}  # β has a widget
STEP_TITLES = dict(steps.STEP_METHODS)
CHANGED_RGB = (1.0, 0.50, 0.05)  # orange: changed by any amount, however small


@st.cache_data(show_spinner="Running ISTA and COV on the digit…", max_entries=16)
def step_iterates(ref: str, beta: float) -> tuple[dict[str, steps.Iterates], np.ndarray, str]:
    """(iterates per method, x0 (C, H, W), the target's name) for one digit on the C&W MNIST network."""
    load = resources.start_loading(STEP_MODEL, str(resources.device()))
    load.finished.wait()
    if load.model is None:
        raise RuntimeError(load.error or f"The model {STEP_MODEL} is not available.")
    image = resources.load_ref(ref, STEP_MODEL)
    assert image.label is not None, "gallery digits are labelled"
    record = steps.record_methods(load.model, image.tensor, image.label, beta=beta, const=STEP_SETTINGS["const"],
                                  steps=int(STEP_SETTINGS["steps"]), learning_rate=STEP_SETTINGS["learning_rate"])
    target = steps.most_likely_wrong_class(load.model, image.tensor, image.label)
    return record, image.tensor[0].numpy(), get_spec(STEP_MODEL).class_names[target]


def mask_image(delta: np.ndarray, x0: np.ndarray) -> np.ndarray:
    """(3, H, W): the clean digit in muted greys where δ is exactly 0, orange where the pixel changed."""
    same = steps.unchanged(delta)
    grey = 0.2 + 0.6 * x0.mean(0)
    return np.stack([np.where(same, grey, colour) for colour in CHANGED_RGB])


def zeros_figure(counts: dict, k: int) -> go.Figure:
    """Pixels with δᵢ = 0 exactly per iteration, one line per method, the slider's k dotted."""
    fig = go.Figure([go.Scatter(y=c["all"], name=STEP_TITLES[n], mode="lines", line=dict(color=COLOURS[n], width=2.5))
                     for n, c in counts.items()])
    fig.add_vline(x=k, line=dict(color="#999", dash="dot"))
    fig.update_layout(height=260, margin=dict(l=8, r=8, t=8, b=8), font=toy_plots.FONT, xaxis_title="iteration k",
                      yaxis=dict(title="pixels with δᵢ = 0", rangemode="tozero"), legend=dict(orientation="h", y=-0.35))
    return fig


@st.fragment
def step_mode() -> None:
    from interpret.plots import perturbation_figure

    left, right = st.columns([2, 3], gap="large")
    with left:
        digits = resources.gallery_items("mnist")[:10]
        titles = {item.ref: item.title for item in digits}
        ref = st.selectbox("Digit", list(titles), format_func=titles.get, key=state.page_widget(PAGE, "step_digit",
                                                                                                 digits[0].ref))
        beta = st.select_slider("β", [1e-3, 3e-3, 1e-2, 3e-2], format_func=chrome.fmt_num,
                                key=state.page_widget(PAGE, "step_beta", steps.DEFAULTS["beta"]),
                                help="ISTA's per-step threshold (eq. 9) and COV's ℓ1 weight.")
    try:
        record, x0, target = step_iterates(ref, float(beta))
    except RuntimeError as err:
        chrome.show_error(str(err))
        return
    k_max = len(next(iter(record.values())).deltas) - 1
    with left:
        k = st.slider("Iteration k", 0, k_max, key=state.page_widget(PAGE, "step_k", k_max),
                      help="Redraws only: the iterates are recorded once per digit and β.")
    with right:
        st.markdown(f"Both attacks on the {get_spec(STEP_MODEL).title}, target t = {target} (the most likely wrong "
                    f"class), one value of c = {STEP_SETTINGS['const']:g}, α₀ = {STEP_SETTINGS['learning_rate']:g}, "
                    f"no early abort. ISTA thresholds by β every step (eq. 9): a pixel whose gradient step stays "
                    f"within β of x₀ is put back **exactly** on x₀. COV's Adam steps in tanh space do not land on "
                    f"δᵢ = 0: its exact zeros are pixels at the edge of the box (x₀ = 0 or 1) pushed outside it, "
                    f"which the box clips back.")
    counts = {name: steps.unchanged_counts(it.deltas, x0) for name, it in record.items()}
    pixels, inside = x0.shape[-1] * x0.shape[-2], int(steps.interior(x0).sum())
    st.markdown("**At k = " + str(k) + ": " + "; ".join(
        f"{STEP_TITLES[n].split(' ')[0]}: {int(c['all'][k])} of {pixels} pixels exactly unchanged"
        for n, c in counts.items()) + "**")
    limit = max(float(np.abs(it.deltas[k]).max()) for it in record.values()) or None
    for col, (name, it) in zip(st.columns(len(record), gap="large"), record.items()):
        c = counts[name]
        reached = it.first_success()
        with col:
            st.markdown(f"##### {STEP_TITLES[name]}")
            st.caption(f"{int(c['all'][k])} of {pixels} pixels exactly unchanged, {int(c['interior'][k])} of them "
                       f"on the stroke (0 < x₀ < 1, {inside} pixels) · {int(c['tiny'][k])} changed by less than "
                       f"0.001 (invisible, yet counted by ℓ0) · "
                       + (f"target reached at k = {reached}" if reached is not None else
                          f"target not reached in {k_max + 1} iterations"))
            delta_col, mask_col = st.columns(2, gap="small")
            with delta_col:
                chrome.plot(perturbation_figure(it.deltas[k], title="", limit=limit, height=260, colorbar="below",
                                                frame=True), f"{PAGE}.step.{name}")
            with mask_col:
                chrome.image_panel(mask_image(it.deltas[k], x0), "orange: changed · grey: δᵢ = 0 exactly")
    st.caption("δ of both methods on one colour range: the largest |δ| of either at this k.")
    st.markdown("**Exactly unchanged pixels per iteration**")
    chrome.plot(zeros_figure(counts, k), f"{PAGE}.step.zeros")


chrome.section("4 · Step by step: which pixels stay exactly unchanged")
step_mode()
