"""Teach: proximal optimisation for a class — soft thresholding, ISTA / FISTA / COV in 2-D, then on a real image."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
from torch import nn

from advlens import engine, ui
from attacks import PixelModel
from attacks.ead import elastic_net, project_shrink
from attacks.losses import hinge_loss, logit_margin
from interpret.metrics import distortion

PAGE = "teach"
OPTIMISERS = (("ead-ista", "ISTA"), ("ead", "FISTA"), ("cov", "COV (tanh + Adam)"))
COLOURS = {"ead-ista": "#ff7f0e", "ead": "#d62728", "cov": "#9467bd"}
FONT = dict(size=15)  # readable on a projector

ui.page_header("Teach", "Why EAD is solved by proximal steps, not plain gradient descent: the soft-threshold "
                        "operator, the three optimisers on a two-pixel problem you can step through, and the same "
                        "three on a real digit.")

# ------------------------------------------------------------------------------------------------ 1 · soft threshold
ui.section("1 · The soft-threshold operator")
left, right = st.columns([2, 3], gap="large")
with left:
    st.markdown("The ℓ1 term is not differentiable at zero, so EAD takes a gradient step on the smooth part "
                "g(x) = c·f(x) + ‖x − x₀‖₂² and then applies the **proximal operator** of β‖·‖₁: shrink every "
                "coordinate's change towards the clean pixel by β, and set it to exactly zero when it is smaller.")
    st.latex(r"\begin{aligned}S_\beta(z)_i &= x_{0,i} + \operatorname{sign}(z_i - x_{0,i})\\"
             r"&\quad\cdot\max(|z_i - x_{0,i}| - \beta,\ 0)\end{aligned}")
    st.caption("…then clipped to the pixel box [0, 1].")
    lam = st.slider("Threshold β (λ)", 0.0, 0.2, key=ui.keep(f"{PAGE}.lambda", 0.03), step=0.005, format="%.3f",
                    help="The shrinkage threshold, in pixel intensity on the [0, 1] scale.")
    z = st.slider("Candidate pixel z after the gradient step", 0.0, 1.0, key=ui.keep(f"{PAGE}.z", 0.57),
                  step=0.01, format="%.2f")
    x0 = 0.50
    shrunk = float(project_shrink(torch.tensor([z]), torch.tensor([x0]), lam)[0])
    st.markdown(f"**Worked example.** Clean pixel x₀ = {x0:.2f}, candidate z = {z:.2f}, threshold {lam:.3f}:  \n"
                f"z − x₀ = {z - x0:+.2f} → shrink by {lam:.3f} → change {shrunk - x0:+.3f} → "
                f"**new pixel {shrunk:.3f}**")
    st.caption("The explainer's numbers: 0.57 with threshold 0.03 around 0.50 becomes 0.54, pulled towards the "
               "clean value. Any candidate within ±β of x₀ lands exactly on x₀: that is where sparsity comes from.")
with right:
    grid_t = torch.linspace(0, 1, 401)
    grid, out = grid_t.numpy(), project_shrink(grid_t, torch.full_like(grid_t, x0), lam).numpy()
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=grid, y=grid, mode="lines", name="no shrinkage (z)",
                             line=dict(color="#bbb", dash="dot")))
    fig.add_trace(go.Scatter(x=grid, y=out, mode="lines", name="S_β(z), clipped to [0, 1]",
                             line=dict(color="#d62728", width=3)))
    fig.add_vrect(x0=max(0, x0 - lam), x1=min(1, x0 + lam), fillcolor="#d62728", opacity=0.08, line_width=0,
                  annotation_text="dead zone: δ = 0", annotation_position="top left")
    fig.add_trace(go.Scatter(x=[z], y=[shrunk], mode="markers+text", name="worked example",
                             marker=dict(size=12, color="#1f77b4"), text=[f"  {z:.2f} → {shrunk:.3f}"],
                             textposition="middle right"))
    fig.update_layout(height=420, xaxis_title="candidate pixel z (intensity)", yaxis_title="pixel after the step",
                      legend=dict(orientation="h", y=-0.2), margin=dict(l=8, r=8, t=8, b=8), font=FONT)
    fig.update_xaxes(range=[0, 1], constrain="domain")
    fig.update_yaxes(range=[0, 1], scaleanchor="x", constrain="domain")
    ui.plot(fig, f"{PAGE}.shrink")

st.markdown("##### Why ℓ1 at all? Two perturbations with the same ℓ2 energy")
cols = st.columns([3, 2], gap="large")
deltas = {"δA = (0.1, 0.1, 0.1, 0.1)": torch.tensor([[0.1, 0.1, 0.1, 0.1]]),
          "δB = (0.2, 0, 0, 0)": torch.tensor([[0.2, 0.0, 0.0, 0.0]])}
with cols[1]:
    beta_demo = st.slider("β for the elastic net", 0.0, 1.0, key=ui.keep(f"{PAGE}.beta_demo", 0.1), step=0.05)
rows = []
for name, d in deltas.items():
    l1, l2sq, en = elastic_net(d, beta_demo)
    rows.append({"perturbation": name, "‖δ‖₁": float(l1[0]), "‖δ‖₂²": float(l2sq[0]),
                 "‖δ‖₀": int(distortion(d.view(1, 1, 1, 4))["l0"][0]), f"β‖δ‖₁ + ‖δ‖₂² (β = {beta_demo:g})": float(en[0])})
with cols[0]:
    st.dataframe(rows, hide_index=True, width="stretch", column_config={
        "‖δ‖₁": st.column_config.NumberColumn(format="%.2f"), "‖δ‖₂²": st.column_config.NumberColumn(format="%.2f"),
        f"β‖δ‖₁ + ‖δ‖₂² (β = {beta_demo:g})": st.column_config.NumberColumn(format="%.3f")})
with cols[1]:
    st.markdown("Both have ‖δ‖₂² = 0.04, so C&W (β = 0) cannot tell them apart. The ℓ1 norm is 0.4 against 0.2, "
                "so for any β > 0 the elastic net prefers δB: one pixel changed instead of four.")

# ------------------------------------------------------------------------------------------------ 2 · toy problem
ui.section("2 · ISTA, FISTA and COV on a two-pixel image")


def toy_model() -> PixelModel:
    """A two-pixel, two-class linear 'network': class 1 wins when 6·x₁ + 3·x₂ > 4."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(2, 2))
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([[0.0, 0.0], [6.0, 3.0]]))
        net[1].bias.copy_(torch.tensor([0.0, -4.0]))
    return PixelModel(net, (0.0,), (1.0,))


TOY_X0 = (0.35, 0.30)
TOY_KAPPA = 0.5


@st.cache_data(show_spinner=False, max_entries=64)
def toy_paths(beta: float, c: float, steps: int, lr: float) -> dict[str, np.ndarray]:
    """The iterates x⁽ᵏ⁾ of each optimiser: the real attack code on the two-pixel model."""
    model = toy_model()
    x0 = torch.tensor([[[list(TOY_X0)]]])
    paths = {}
    for name, _ in OPTIMISERS:
        seen: list[torch.Tensor] = []
        extra = {"scaled_threshold": True} if name != "cov" else {}
        engine.run_attack(name, model, x0, torch.tensor([0]), torch.tensor([1]),
                          callback=lambda s: seen.append(s.current[0, 0, 0].detach().clone()),
                          beta=beta, kappa=TOY_KAPPA, initial_const=c, binary_search_steps=1, steps=steps,
                          learning_rate=lr, abort_early=False, **extra)
        paths[name] = torch.stack([x0[0, 0, 0]] + seen).numpy()
    return paths


@st.cache_data(show_spinner=False, max_entries=64)
def toy_objective(beta: float, c: float, lo: tuple[float, float], hi: tuple[float, float], n: int = 121
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """c·f(x) + β‖x − x₀‖₁ + ‖x − x₀‖₂² on a grid, from the same loss functions the attacks use."""
    model = toy_model()
    xs, ys = torch.linspace(lo[0], hi[0], n), torch.linspace(lo[1], hi[1], n)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    points = torch.stack([gx.flatten(), gy.flatten()], 1).view(-1, 1, 1, 2)
    with torch.no_grad():
        f = hinge_loss(logit_margin(model(points), torch.zeros(len(points), dtype=torch.long),
                                    torch.ones(len(points), dtype=torch.long)), TOY_KAPPA)
    _, _, en = elastic_net(points - torch.tensor(TOY_X0).view(1, 1, 1, 2), beta)
    return xs.numpy(), ys.numpy(), (c * f + en).view(n, n).numpy()


left, right = st.columns([2, 3], gap="large")
with left:
    st.markdown("A linear model on two pixels (x₁, x₂) says class 0 at x₀ = (0.35, 0.30); the attack wants class 1, "
                f"which wins past the line 6x₁ + 3x₂ = 4 (κ = {TOY_KAPPA} beyond it). The contours are the EAD "
                "objective; the paths are the iterates of the real attack code on this model.")
    st.latex(r"\begin{aligned}\min_x\ & c\, f(x, t)\\ &+ \beta\|x - x_0\|_1 + \|x - x_0\|_2^2\end{aligned}")
    toy_beta = st.slider("β", 0.0, 2.0, key=ui.keep(f"{PAGE}.toy_beta", 1.0), step=0.1,
                         help="Large β: the proximal methods move only x₁ (x₂ stays exactly at 0.30); COV hovers "
                              "near it but never lands on it.")
    toy_c = st.slider("c", 0.1, 2.0, key=ui.keep(f"{PAGE}.toy_c", 0.5), step=0.1)
    toy_lr = st.slider("Step size α₀", 0.01, 0.2, key=ui.keep(f"{PAGE}.toy_lr", 0.05), step=0.01)
    toy_steps = st.slider("Iterations", 10, 120, key=ui.keep(f"{PAGE}.toy_steps", 60), step=10)
    st.caption("ISTA: x⁽ᵏ⁺¹⁾ = S_{αβ}(x⁽ᵏ⁾ − α∇g(x⁽ᵏ⁾)).  FISTA adds momentum: the gradient is taken at "
               "y⁽ᵏ⁾ = x⁽ᵏ⁾ + k/(k+3)·(x⁽ᵏ⁾ − x⁽ᵏ⁻¹⁾).  COV writes x = (tanh w + 1)/2 and runs Adam on the whole "
               "objective, ℓ1 included. Threshold here is the textbook α·β.")
paths = toy_paths(toy_beta, toy_c, toy_steps, toy_lr)
lo, hi = (0.2, 0.1), (0.8, 0.7)
gx, gy, obj = toy_objective(toy_beta, toy_c, lo, hi)


def toy_figure() -> go.Figure:
    fig = go.Figure()
    fig.add_trace(go.Contour(x=gx, y=gy, z=obj, colorscale="Greys", reversescale=True, ncontours=28, opacity=0.55,
                             contours=dict(showlines=True), line=dict(width=0.6), showscale=False,
                             hovertemplate="x₁ %{x:.3f}, x₂ %{y:.3f}<br>objective %{z:.4f}<extra></extra>"))
    line_x = np.array([lo[0], hi[0]])
    fig.add_trace(go.Scatter(x=line_x, y=(4 - 6 * line_x) / 3, mode="lines", name="decision boundary",
                             line=dict(color="#2e7d32", dash="dash")))
    fig.add_trace(go.Scatter(x=[TOY_X0[0]], y=[TOY_X0[1]], mode="markers+text", text=["x₀"],
                             textposition="bottom left", marker=dict(size=12, color="black"), name="x₀"))
    for name, title in OPTIMISERS:
        p = paths[name]
        fig.add_trace(go.Scatter(x=p[:, 0], y=p[:, 1], mode="lines+markers", name=title,
                                 line=dict(color=COLOURS[name], width=2), marker=dict(size=5)))
    first = len(fig.data) - len(OPTIMISERS)
    n = max(len(p) for p in paths.values())
    frames = [go.Frame(name=str(k), traces=list(range(first, first + len(OPTIMISERS))),
                       data=[go.Scatter(x=paths[name][: k + 1, 0], y=paths[name][: k + 1, 1])
                             for name, _ in OPTIMISERS]) for k in range(n)]
    fig.frames = frames
    fig.update_layout(
        height=620, font=FONT, margin=dict(l=8, r=8, t=8, b=110), legend=dict(orientation="h", y=1.02, x=0,
                                                                         yanchor="bottom"),
        xaxis=dict(title="pixel x₁", range=[lo[0], hi[0]], constrain="domain"),
        yaxis=dict(title="pixel x₂", range=[lo[1], hi[1]], scaleanchor="x", constrain="domain"),
        updatemenus=[dict(type="buttons", direction="left", x=0, y=-0.13, xanchor="left", yanchor="top",
                          showactive=False, buttons=[
                              dict(label="▶ Play", method="animate",
                                   args=[None, dict(frame=dict(duration=120, redraw=False), fromcurrent=False,
                                                    transition=dict(duration=0))]),
                              dict(label="Pause", method="animate",
                                   args=[[None], dict(frame=dict(duration=0, redraw=False), mode="immediate")])])],
        sliders=[dict(active=n - 1, x=0.2, y=-0.1, len=0.8, currentvalue=dict(prefix="iteration k = ",
                                                                              xanchor="right", font=dict(size=13)),
                      steps=[dict(label=str(k), method="animate",
                                  args=[[str(k)], dict(mode="immediate", frame=dict(duration=0, redraw=False),
                                                       transition=dict(duration=0))]) for k in range(n)])],
    )
    return fig


with right:
    ui.plot(toy_figure(), f"{PAGE}.toy")
    ends = " · ".join(f"{title.split(' ')[0]}: ({paths[name][-1, 0]:.3f}, {paths[name][-1, 1]:.4f})"
                      for name, title in OPTIMISERS)
    st.caption(f"Press ▶ or drag the slider. Final iterates (x₁, x₂): {ends}")

# ------------------------------------------------------------------------------------------------ 3 · real image
ui.section("3 · The same three optimisers on a real image")
choice = ui.current_model()
if ui.require_model(choice):
    spec, ds = choice.spec, choice.spec.dataset
    left, right = st.columns([2, 3], gap="large")
    with left:
        picked = ui.image_picker(PAGE, choice, with_upload=False)
        st.markdown("One value of c (no binary search), the same β, step size and number of iterations for all "
                    "three; early abort off, so the curves have equal length.")
        with st.form(f"{PAGE}-form", border=True):
            cols = st.columns(2, gap="small")
            with cols[0]:
                ui.param_widget(PAGE, ds, "beta", 1e-2)
                ui.param_widget(PAGE, ds, "initial_const", 10.0)
            with cols[1]:
                ui.param_widget(PAGE, ds, "steps", 150 if ui.device().type == "cpu" else 500)
                ui.param_widget(PAGE, ds, "learning_rate", 1e-2)
            submitted = st.form_submit_button("Run the three optimisers", type="primary",
                                              icon=":material/play_arrow:")
    live_area = right.container()
    if submitted and picked is not None:
        values = ui.read_params(PAGE, ds, ("beta", "initial_const", "steps", "learning_rate"))
        labels = torch.tensor([picked.label])
        targets = None if picked.runner_up is None else torch.tensor([picked.runner_up])
        curves: dict = {"image": picked.title, "params": values, "model": choice.name, "curves": {}}
        ui.runs()[PAGE] = curves
        with ui.LiveRunner(live_area, key=PAGE, count=len(OPTIMISERS)) as live:
            for name, title in OPTIMISERS:
                seen: dict[str, list] = {"objective": [], "l1": []}

                def observe(state, seen=seen) -> None:
                    seen["objective"].append(state.losses["objective"][0].detach())
                    seen["l1"].append(state.losses["l1"][0].detach())

                out = live.run(name, choice.model, picked.image.tensor, labels, targets,
                               {**values, "binary_search_steps": 1, "abort_early": False}, title=title,
                               observe=observe)
                if out is not None and seen["objective"]:
                    curves["curves"][name] = {k: torch.stack(v).cpu().numpy() for k, v in seen.items()}
                    curves["curves"][name]["success"] = bool(out[0].success[0])

    stored = ui.runs().get(PAGE)
    with right:
        if stored and stored["curves"]:
            fig = go.Figure()
            for name, title in OPTIMISERS:
                if name not in stored["curves"]:
                    continue
                cur = stored["curves"][name]
                k = np.arange(1, len(cur["objective"]) + 1)
                fig.add_trace(go.Scatter(x=k, y=cur["objective"], name=title, mode="lines", legendgroup=name,
                                         line=dict(color=COLOURS[name], width=2.5),
                                         hovertemplate="k = %{x}: objective %{y:.4g}<extra>" + title + "</extra>"))
                fig.add_trace(go.Scatter(x=k, y=cur["l1"], name=f"{title} ‖δ‖₁", mode="lines", yaxis="y2",
                                         legendgroup=name, showlegend=False,
                                         line=dict(color=COLOURS[name], width=1.5, dash="dot"),
                                         hovertemplate="k = %{x}: ‖δ‖₁ %{y:.4g}<extra>" + title + "</extra>"))
            fig.update_layout(height=480, font=FONT, margin=dict(l=8, r=8, t=8, b=8),
                              legend=dict(orientation="h", y=-0.16), xaxis_title="iteration k",
                              yaxis=dict(title="objective (solid, log scale)", type="log", dtick="D2",
                                         tickformat="~g"),
                              yaxis2=dict(title="‖δ‖₁ on the [0, 1] scale (dotted)", overlaying="y", side="right",
                                          showgrid=False, tickmode="auto", nticks=6, rangemode="tozero"))
            ui.plot(fig, f"{PAGE}.real")
            p = stored["params"]
            ok = ", ".join(f"{t.split(' ')[0]} {'✓' if stored['curves'][n]['success'] else '✗'}"
                           for n, t in OPTIMISERS if n in stored["curves"])
            st.caption(f"{stored['image']} · c = {p['initial_const']:g}, β = {p['beta']:g}, α₀ = "
                       f"{p['learning_rate']:g} · reached the target: {ok}. FISTA usually gets lowest fastest; "
                       "COV's ‖δ‖₁ stays high because its steps never set a pixel exactly back to x₀.")
        elif not submitted:
            st.info("Press **Run the three optimisers** to draw their loss and ℓ1 per iteration.",
                    icon=":material/arrow_back:")
