"""Perturbation analysis (Balda, Behboodi & Mathar): dual norms, fooling ratio vs ε, ρ̂₂, autoencoder attacks."""

from __future__ import annotations

import math

import streamlit as st

from interpret import dual_norm, robustness_plots
from ui import chrome, state
from ui import perturbation as pt

PAGE = "perturbation"
NETWORKS = {"mnist-fc": "FC 784-150-100-10", "mnist-lenet5": "LeNet-5", "mnist-cnn": "C&W CNN"}

chrome.page_header("Perturbation analysis", "FGSM, the normalised gradient and the one-pixel attack are corners of "
                   "one problem: maximise the linearised loss ηᵀg over the ℓp ball $\\|\\eta\\|_p \\le \\varepsilon$. Its answer is "
                   "closed form through the dual norm (eq. 6), and iterating it gives Algorithm 1-T.")

# ------------------------------------------------------------------------------------------------ 1 · dual norms
chrome.section("1 · One problem, many norms", "$\\max\\, \\eta^\\top g$ s.t. $\\|\\eta\\|_p \\le \\varepsilon$ has the value "
               "$\\varepsilon \\|g\\|_q$, $q = p/(p-1)$.")
left, right = st.columns([2, 3], gap="large")
with left:
    angle = st.slider("Direction of the gradient g (degrees)", 0, 360, key=state.page_widget(PAGE, "angle", 25))
    eps2 = st.slider("ε", 0.2, 1.0, key=state.page_widget(PAGE, "eps2", 1.0), step=0.05)
    g = (math.cos(math.radians(angle)), math.sin(math.radians(angle)))
    st.latex(r"\eta^\star = \varepsilon\,\frac{\operatorname{sign}(g)\odot|g|^{q-1}}{\|g\|_q^{q-1}}")
    st.markdown("- **ℓ∞** (q = 1): a corner, ε·sign(g) — FGSM when g is the cross-entropy's gradient.\n"
                "- **ℓ2**: the normalised gradient ε·g/‖g‖₂.\n"
                "- **ℓ1** (q = ∞): one coordinate, the largest $|g_i|$ — a one-pixel attack on an image.")
with right:
    chrome.plot(dual_norm.dual_norm_figure(g, eps=eps2), f"{PAGE}.dual")
with st.expander("Proposition 1: the least-norm step, as printed and corrected"):
    margin0 = st.slider("Margin L(x, 0)", 0.05, 2.0, key=state.page_widget(PAGE, "prop1_L", 0.5), step=0.05)
    rows = []
    for p in dual_norm.P_VALUES:
        unit = dual_norm.maximiser(g, p, 1.0)  # sign(g)⊙|g|^{q−1}/‖g‖_q^{q−1}, ‖unit‖_p = 1
        gq = float(unit @ g)  # = ‖g‖_q
        for label, eta in (("printed (eq. 9)", -margin0 * unit), ("corrected", -margin0 * unit / gq)):
            rows.append({"p": dual_norm.p_label(p), "form": label, "L + ηᵀg": f"{margin0 + float(eta @ g):+.3f}",
                         "‖η‖ₚ": f"{margin0 * (1 if label.startswith('printed') else 1 / gq):.3f}"})
    st.table(rows)
    st.caption("The printed denominator $\\|g\\|_q^{q-1}$ gives $L + \\eta^\\top g = L(1 - \\|g\\|_q)$, zero only "
               "when $\\|g\\|_q = 1$; with $\\|g\\|_q^q$ the constraint holds with equality and "
               "$\\|\\eta\\|_p = L/\\|g\\|_q$, Theorem 1's least norm.")

# ------------------------------------------------------------------------------------------------ 2 · fooling ratio
chrome.section("2 · Fooling ratio against ε (Fig. 3)", "Over the correctly classified held-out digits; no box "
               "clipping, as the paper. The one-step methods redraw live as ε moves.")
c1, c2, c3 = st.columns(3)
with c1:
    model_name = st.selectbox("Network", pt.CLASSIFIERS, key=state.page_widget(PAGE, "model", "mnist-fc"),
                              format_func=NETWORKS.__getitem__)
with c2:
    n = st.select_slider("Digits", [50, 100, 200, 500], key=state.page_widget(PAGE, "n", 100))
with c3:
    slow = st.multiselect("Iterative methods (computed once)", ["Alg1-5", "Alg1-10", "PGD", "DeepFool"],
                          key=state.page_widget(PAGE, "slow", ["Alg1-10"]))
eps = st.slider("ε (ℓ∞)", 0.0, pt.EPS_MAX[model_name], key=state.page_widget(PAGE, f"eps.{model_name}",
                                                                                pt.EPS_MAX[model_name] / 2),
                step=pt.EPS_MAX[model_name] / 100, format="%.3f")
grid, curves = pt.curves(model_name, n, tuple(pt.LIVE) + tuple(slow))
live = pt.live_ratios(model_name, n, eps)
left, right = st.columns([3, 1], gap="large")
with left:
    chrome.plot(dual_norm.fooling_figure(grid, curves, marked=eps), f"{PAGE}.fooling")
with right:
    st.markdown(f"**At ε = {eps:.3f}**")
    st.table({"method": list(live), "fooled (%)": [f"{v:.1f}" for v in live.values()]})
    st.caption("FGSM follows the cross-entropy, Algorithm 1 the margin f_k − max f_l, Algorithm 2 only f_k.")

# ------------------------------------------------------------------------------------------------ 3 · ρ̂₂
chrome.section("3 · How far is the boundary? ρ̂₂ (Table 3)", "Per digit, L(x,0)/‖∇L(x,0)‖₁ is the least ε at "
               "which the linearised problem can be fooled (Theorem 1); its mean is ρ̂₂. One gradient per digit; beside it, "
               "the ℓ∞ perturbation DeepFool finds for the same digit.")
ratios = pt.rho2(n)
left, right = st.columns(2, gap="large")
with left:
    chrome.plot(dual_norm.rho2_histogram(ratios), f"{PAGE}.rho2")
with right:
    bounds = pt.theorem1(n)
    chrome.plot(robustness_plots.theorem1_figure({k: (v["bound"], v["deepfool"]) for k, v in bounds.items()}),
                f"{PAGE}.theorem1")
    left_out = sum(v["unfooled"] for v in bounds.values())
    st.caption("Theorem 1 per digit: no ℓ∞ perturbation below L/‖∇L‖₁ fools the linearised network, so DeepFool's "
               "‖r̂‖∞ should lie on or above the diagonal; below it, the network's curvature helped DeepFool."
               + (f" {left_out} digit(s) DeepFool did not fool within 50 iterations are left out." if left_out else ""))

# ------------------------------------------------------------------------------------------------ 4 · regression
chrome.section("4 · Attacking an autoencoder (Fig. 2, Fig. 4)", "max ‖f(x+η) − y‖² with no margin to cross. "
               "Rows: original, adversarial, random noise of the same norm; the attacked pixels are circled.")
c1, c2, c3, c4 = st.columns(4)
with c1:
    method = st.selectbox("Attack", list(pt.REGRESSION), key=state.page_widget(PAGE, "reg_method", "quadratic-linf"))
with c2:
    index = st.number_input("Digit (mnist:N)", 0, 999, key=state.page_widget(PAGE, "reg_index", 0))
with c3:
    default_eps = {"inf": 0.1, "2": 2.0, "1": 1.0}[pt.REGRESSION[method][0]]
    reg_eps = st.number_input("ε", 0.001, 10.0, key=state.page_widget(PAGE, f"reg_eps.{method}", default_eps),
                              format="%.3f")
with c4:
    reference = st.radio("Reference y", ["fx", "x"], key=state.page_widget(PAGE, "reg_ref", "fx"),
                         format_func=lambda r: "y = f(x) (the paper's)" if r == "fx" else "y = x", horizontal=True)
t = pt.triplet(method, int(index), float(reg_eps), reference)
left, right = st.columns([2, 3], gap="large")
with left:
    chrome.plot(dual_norm.triplet_figure(t["inputs"], t["outputs"], ["original", "adversarial", "random"],
                                         marked=t["marked"]), f"{PAGE}.triplet")
    st.table({"row": ["original", "adversarial", "random"],
              "input PSNR (dB)": [f"{v:.1f}" for v in t["psnr_in"]],
              "output PSNR (dB)": [f"{v:.1f}" for v in t["psnr_out"]]})
with right:
    family = st.radio("Fig. 4 curves over 20 digits", ["inf", "2", "pixel"], horizontal=True,
                      key=state.page_widget(PAGE, "reg_family", "inf"),
                      format_func=lambda f: {"inf": "ℓ∞", "2": "ℓ2", "pixel": "pixels"}[f])
    chrome.plot(dual_norm.psnr_figure(pt.psnr_curves(family, reference)), f"{PAGE}.psnr")
