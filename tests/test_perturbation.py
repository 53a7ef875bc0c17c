"""Perturbation analysis (Balda, Behboodi & Mathar): the closed forms, Proposition 1, the classification orderings
on held-out digits, the robustness measures and the regression attacks on the bundled MNIST autoencoder."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.optimize import linprog, minimize

from advlens.cli import main
from advlens.models import load_model, load_regressor
from advlens.perturbation_cli import load_digits
from attacks import regression as R
from attacks.closed_form import alg1, dual, lp_maximiser, lp_norm, min_norm_step, parse_p
from attacks.deepfool import deepfool
from attacks.gradient import fgm
from interpret.robustness import deepfool_norms, fooling_curves, rho2_terms

P_VALUES = ["1", "1.5", "2", "3", "inf"]
EPS_GRID = [0.05, 0.1, 0.2, 0.3]  # ℓ∞, on the C&W network (its DeepFool ε₉₉ is about 0.3)


@pytest.fixture(scope="module")
def heldout100():
    return load_digits(list(range(100)))


@pytest.mark.parametrize("norm", P_VALUES)
def test_eq6_is_the_maximiser_of_the_linear_form_on_the_lp_ball(norm):
    """Eq. 6 against a numerical maximisation of ηᵀg over ‖η‖_p ≤ ε (an LP for p = 1, ∞; SLSQP otherwise)."""
    p, eps = parse_p(norm), 0.7
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        g = torch.randn(1, 6, generator=gen, dtype=torch.float64)
        eta = lp_maximiser(g, eps, p)
        closed = float((eta * g).sum())
        assert float(lp_norm(eta, p)) == pytest.approx(eps, rel=1e-9)
        assert closed == pytest.approx(eps * float(lp_norm(g, dual(p))), rel=1e-9)  # the dual norm, ε‖g‖_q
        gn = g[0].numpy()
        if math.isinf(p):  # an LP: the box |η_i| ≤ ε
            best = -linprog(-gn, bounds=[(-eps, eps)] * 6).fun
        elif p == 1:  # an LP in η = a − b, a, b ≥ 0, Σ(a + b) ≤ ε
            res = linprog(np.concatenate([-gn, gn]), A_ub=np.ones((1, 12)), b_ub=[eps], bounds=[(0, None)] * 12)
            best = -res.fun
        else:  # smooth: SLSQP from several starts
            best = -np.inf
            rng = np.random.default_rng(0)
            for _ in range(4):
                res = minimize(lambda v: -v @ gn, rng.uniform(-1, 1, 6) * eps / 6, method="SLSQP",
                               constraints=[{"type": "ineq", "fun": lambda v: eps - (np.abs(v) ** p).sum() ** (1 / p)}],
                               options={"maxiter": 500, "ftol": 1e-12})
                if (np.abs(res.x) ** p).sum() ** (1 / p) <= eps * (1 + 1e-6):
                    best = max(best, -res.fun)
        assert best <= closed + 1e-6  # nothing feasible does better than eq. 6
        assert best >= closed - 1e-3 * abs(closed)  # and the optimiser finds the same value


@pytest.mark.parametrize("norm", P_VALUES)
def test_proposition1_corrected_meets_its_constraint_with_equality(norm):
    p = parse_p(norm)
    g = torch.randn(4, 1, 5, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    value = torch.tensor([0.3, 1.0, 2.5, 0.01], dtype=torch.float64)
    eta = min_norm_step(g, value, p)
    linear = value + (eta * g).flatten(1).sum(1)
    assert torch.allclose(linear, torch.zeros(4, dtype=torch.float64), atol=1e-9)  # L + ηᵀg = 0
    assert torch.allclose(lp_norm(eta, p), value / lp_norm(g, dual(p)))  # Theorem 1's least norm, attained
    printed = min_norm_step(g, value, p, corrected=False)
    assert not torch.allclose(value + (printed * g).flatten(1).sum(1), torch.zeros(4, dtype=torch.float64))


def test_orderings_on_100_heldout_digits_of_the_cw_network(heldout100):
    """At every ε: Alg1-10 ≥ Alg1 ≥ random noise (fooling ratio over the correctly classified)."""
    x, y = heldout100
    model = load_model("mnist-cnn")
    curves = fooling_curves(model, x, y, EPS_GRID, methods=("Alg1", "Alg1-10", "random"))
    assert (curves["Alg1-10"] >= curves["Alg1"]).all(), curves
    assert (curves["Alg1"] >= curves["random"]).all(), curves
    assert curves["Alg1-10"][-1] > curves["random"][-1] + 50


def test_deepfool_fools_every_digit_at_a_finite_epsilon(heldout100):
    x, y = heldout100
    model = load_model("mnist-cnn")
    with torch.no_grad():
        correct = model(x).argmax(1) == y
    norms, ok = deepfool_norms(model, x[correct], y[correct])
    assert bool(ok.all()) and bool(torch.isfinite(norms).all())
    assert float(norms.max()) < 1.0  # 100% fooled at ε = max‖r̂‖∞, well inside the pixel range


def test_rho2_is_positive_and_lower_for_the_fc_network_than_lenet5(heldout100):
    x, y = heldout100
    rho2 = {}
    for name in ("mnist-fc", "mnist-lenet5"):
        model = load_model(name)
        with torch.no_grad():
            correct = model(x).argmax(1) == y
        ratios = rho2_terms(model, x[correct], y[correct])
        assert bool((ratios > 0).all())
        rho2[name] = float(ratios.mean())
    assert rho2["mnist-fc"] < rho2["mnist-lenet5"]  # Table 3's ordering (0.034 < 0.061 in the paper)


def test_registered_alg1_with_ce_and_the_box_is_fgsm(mnist_model, mnist_digits):
    """The paper's FGSM inside the framework (CE loss, p = ∞, T = 1) coincides with the baselines' FGM."""
    x, labels, _ = mnist_digits
    ours = alg1(mnist_model, x[:4], labels[:4], norm="inf", epsilon=0.1, iterations=1, loss="ce", clip=True)
    theirs = fgm(mnist_model, x[:4], labels[:4], norm="inf", epsilon=0.1)
    assert torch.allclose(ours.adversarial, theirs.adversarial, atol=1e-6)
    assert torch.equal(ours.success, theirs.success)


def test_deepfool_minimal_perturbation_is_near_the_boundary(mnist_model, mnist_digits):
    """ℓ2 DeepFool: fooled (unclipped), and ‖r̂‖ shrunk by 10% no longer fools most digits."""
    x, labels, _ = mnist_digits
    r = deepfool(mnist_model, x[:8], labels[:8], norm="2", overshoot_mode="total")
    assert bool(r.params["faithful_success"].all())
    eta = (r.adversarial - r.original)
    with torch.no_grad():
        shrunk = mnist_model(r.original + 0.5 * eta).argmax(1)
    assert (shrunk == labels[:8]).float().mean() >= 0.5


@pytest.fixture(scope="module")
def autoencoder():
    x, _ = load_digits(list(range(20)))
    return load_regressor("mnist-ae"), x


def test_power_iteration_matches_eigvalsh_of_the_explicit_jtj(autoencoder):
    model, x = autoencoder
    x = x[:5]
    v, lam, _ = R.power_iteration(model, x, iters=60)
    j = R.jacobian(model, x)
    top = torch.linalg.eigvalsh(j.transpose(1, 2) @ j)[:, -1]
    assert torch.allclose(lam, top, rtol=1e-3)
    assert torch.allclose(v.flatten(1).norm(dim=1), torch.ones(5), atol=1e-5)


def test_quadratic_l2_beats_random_noise_of_the_same_input_psnr(autoencoder):
    model, x = autoencoder
    for eps in (0.5, 1.5):
        adv, rand = R.quadratic_l2(model, x, eps), R.random_l2(x, eps)
        assert torch.allclose(R.psnr(x + adv, x), R.psnr(x + rand, x), atol=1e-3)  # the same input PSNR
        with torch.no_grad():
            y = model(x)
            assert R.psnr(model(x + adv), y).mean() < R.psnr(model(x + rand), y).mean() - 5


def test_quadratic_l1_changes_exactly_one_pixel(autoencoder):
    model, x = autoencoder
    eta = R.quadratic_l1(model, x[:6], 0.8)
    assert (eta.flatten(1) != 0).sum(1).tolist() == [1] * 6
    assert torch.allclose(eta.abs().amax((1, 2, 3)), torch.full((6,), 0.8))


def test_linear_attack_needs_dithering_when_the_reference_is_fx(autoencoder):
    """With y = f(x) the regression loss has zero gradient at η = 0 (Sec. 3.2): no dithering, no attack."""
    model, x = autoencoder
    assert R.linear_lp(model, x[:3], 0.1, dither=0.0).abs().max() == 0
    assert R.linear_lp(model, x[:3], 0.1, dither=0.5).abs().amax((1, 2, 3)).min() > 0
    assert R.linear_lp(model, x[:3], 0.1, ref="x", dither=0.0).abs().max() > 0


def test_robustness_command_prints_the_measures_as_json(capsys):
    assert main(["robustness", "--model", "mnist-fc", "--images", "mnist:0-19", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"rho1", "rho2", "deepfool_eps99", "n"} <= set(out) and out["n"] == 20
    assert 0 < out["rho2"] < out["deepfool_eps99"]


@pytest.mark.parametrize("argv", [
    ["robustness", "--model", "mnist-fc", "--images", "mnist:5-2000"],
    ["robustness", "--model", "mnist-ae", "--images", "mnist:0-3"],
    ["robustness", "--model", "nope", "--images", "mnist:0-3"],
    ["fooling", "--model", "mnist-fc", "--images", "mnist:0-3", "--eps", "a:b"],
    ["fooling", "--model", "mnist-fc", "--images", "mnist:0-3", "--methods", "FGSM,magic"],
    ["regress", "--images", "mnist:0-1", "--attacks", "magic"],
])
def test_bad_arguments_are_one_sentence(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("advlens: error: ") and len(err.strip().splitlines()) == 1


def test_dual_norm_picture_draws_eq6_on_each_ball():
    from interpret import dual_norm

    g = (0.8, -0.3)
    fig = dual_norm.dual_norm_figure(g, eps=0.5)
    assert len(fig.data) == 2 * len(dual_norm.P_VALUES)
    for p in dual_norm.P_VALUES:
        eta = dual_norm.maximiser(g, p, 0.5)
        ours = lp_maximiser(torch.tensor([g], dtype=torch.float64), 0.5, p)[0].numpy()
        assert np.allclose(eta, ours)
        boundary = dual_norm.ball_boundary(p, 0.5)
        assert np.allclose(lp_norm(torch.from_numpy(boundary), p).numpy(), 0.5)
    assert dual_norm.maximiser(g, 1.0, 0.5).tolist() == [0.5, 0.0]  # ℓ1: one coordinate
