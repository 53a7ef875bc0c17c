"""Teach's two-pixel elastic-net problem (interpret.toy): the closed-form minimiser, the real ISTA / FISTA / COV
iterates on it, and the explainer's worked examples."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interpret import toy

TEACH = dict(beta=1.0, c=0.5, steps=60, learning_rate=0.05)  # the Teach page's starting sliders


@pytest.fixture(scope="module")
def paths():
    return toy.optimiser_paths(TEACH["beta"], TEACH["c"], TEACH["steps"], TEACH["learning_rate"])


def test_model_is_the_documented_line():
    model = toy.toy_model()
    x = torch.tensor([[[[0.35, 0.30]]], [[[0.60, 0.40]]]])
    logits = model(x)
    assert torch.allclose(logits[:, 0], torch.zeros(2))
    assert torch.allclose(logits[:, 1], torch.tensor([6 * 0.35 + 3 * 0.30 - 4, 6 * 0.6 + 3 * 0.4 - 4]))
    assert logits[0].argmax() == 0 and logits[1].argmax() == 1  # x0 is class 0; past 6x1 + 3x2 = 4, class 1
    assert toy.boundary_x2(np.array([0.5]))[0] == pytest.approx((4 - 3.0) / 3)


def test_large_beta_minimiser_moves_only_x1():
    """β = 1, c = 0.5, κ = 0.5: x* lies on the kink 6x1 + 3x2 = 4.5 with x2 untouched (|3λ| ≤ β there)."""
    assert np.allclose(toy.minimiser(1.0, 0.5), (0.6, 0.3))
    assert np.allclose(toy.minimiser(0.0, 0.5), (0.55, 0.4))  # β = 0: d ∝ a = (6, 3) on the kink


@pytest.mark.parametrize("beta,c", [(1.0, 0.5), (0.0, 0.5), (0.5, 1.0), (0.2, 0.3), (2.0, 0.1)])
def test_minimiser_is_the_grid_minimum_and_locally_optimal(beta, c):
    star = toy.minimiser(beta, c)
    xs, ys, values = toy.objective_grid(beta, c, (0.2, 0.1), (0.8, 0.7), n=241)
    row, col = np.unravel_index(values.argmin(), values.shape)
    assert abs(xs[col] - star[0]) <= 0.0026 and abs(ys[row] - star[1]) <= 0.0026  # one grid step (0.6 / 240)
    at_star = float(toy.objective(torch.tensor(star[None]), beta, c)[0])
    assert at_star <= values.min() + 1e-5
    rng = np.random.default_rng(0)
    nearby = star + rng.normal(scale=1e-2, size=(200, 2))
    assert (toy.objective(torch.tensor(nearby), beta, c).numpy() >= at_star - 1e-6).all()


def test_ista_and_fista_converge_to_the_minimiser(paths):
    star = toy.minimiser(TEACH["beta"], TEACH["c"])
    for name in ("ead-ista", "ead"):
        path = paths[name]
        assert path.shape == (TEACH["steps"] + 1, 2) and np.allclose(path[0], toy.X0)
        assert np.linalg.norm(path[-1] - star) < 1e-2, (name, path[-1])
    assert abs(paths["ead"][-1, 1] - 0.3) < 1e-6  # FISTA lands exactly on x2 = x0's: the sparse answer


def test_fista_reaches_the_tolerance_in_fewer_steps_than_ista(paths):
    star = toy.minimiser(TEACH["beta"], TEACH["c"])

    def first_within(path, tol=1e-2):
        close = np.linalg.norm(path - star, axis=1) < tol
        return int(np.argmax(close)) if close.any() else len(path)

    assert first_within(paths["ead"]) < first_within(paths["ead-ista"])


def test_cov_never_sets_x2_exactly_back(paths):
    """COV's subgradient steps hover near x2 = 0.30 but, unlike the proximal step, never land on it."""
    assert (paths["cov"][1:, 1] != 0.3).all()
    assert np.linalg.norm(paths["cov"][-1] - toy.minimiser(TEACH["beta"], TEACH["c"])) < 5e-2


def test_soft_threshold_worked_example():
    """The explainer's example: x = 0.50, z = 0.57, λ = 0.03 → 0.50 + max(0.07 − 0.03, 0) = 0.54."""
    assert toy.shrink(0.57, 0.50, 0.03) == pytest.approx(0.54, abs=1e-6)
    assert toy.shrink(0.43, 0.50, 0.03) == pytest.approx(0.46, abs=1e-6)  # the same, below x0
    assert toy.shrink(0.52, 0.50, 0.03) == pytest.approx(0.50)  # inside the dead zone: exactly x0
    assert toy.shrink(0.99, 0.50, 0.03) == pytest.approx(0.96, abs=1e-6)
    z, out = toy.shrink_curve(0.5, 0.1)
    assert (out[np.abs(z - 0.5) <= 0.1 - 1e-6] == 0.5).all() and out.min() >= 0 and out.max() <= 1


def test_elastic_net_worked_example():
    """δA = (0.1, 0.1, 0.1, 0.1) and δB = (0.2, 0, 0, 0): the same ‖δ‖₂² = 0.04, ‖δ‖₁ 0.4 against 0.2."""
    a = toy.elastic_net_terms((0.1, 0.1, 0.1, 0.1), beta=0.1)
    b = toy.elastic_net_terms((0.2, 0.0, 0.0, 0.0), beta=0.1)
    assert (a["l0"], b["l0"]) == (4, 1)
    assert a["l1"] == pytest.approx(0.4) and b["l1"] == pytest.approx(0.2)
    assert a["l2sq"] == pytest.approx(0.04) and b["l2sq"] == pytest.approx(0.04)
    assert a["en"] == pytest.approx(0.08) and b["en"] == pytest.approx(0.06)  # the elastic net prefers δB
