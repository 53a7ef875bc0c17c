"""StrAttack: every closed-form ADMM step against direct minimisation, then real attacks on real MNIST digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from attacks import PixelModel, cw_l2, strattack
from attacks.groups import coverage, fold_groups, make_grouping, unfold_groups
from attacks.strattack import (
    _Admm,
    _Judge,
    box_bounds,
    delta_step,
    refine_delta_step,
    refine_z_step,
    sparse_support,
    w_step,
    y_copies_step,
    y_step,
    z_step,
)
from interpret.groups import default_grouping, fraction_touched, group_norms, groups_nonzero, groups_total
from interpret.metrics import distortion

DOUBLE = torch.float64


def rand(*shape: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=DOUBLE)


def minimise(objective, start: torch.Tensor, *, steps: int = 3000, lr: float = 0.05, project=None) -> torch.Tensor:
    """Plain (projected) gradient descent, the slow generic solver the closed forms are checked against."""
    x = start.clone().requires_grad_(True)
    for _ in range(steps):
        (g,) = torch.autograd.grad(objective(x), x)
        with torch.no_grad():
            x -= lr * g
            if project is not None:
                x.copy_(project(x))
    return x.detach()


def group_lasso_prox_numerically(c: torch.Tensor, to_columns, tau: float, rho: float) -> torch.Tensor:
    """argmin_y τ Σ_G ‖y_G‖2 + ρ/2‖y − c‖2² by L-BFGS on a smoothed norm √(‖y_G‖² + μ²), μ → 0 in stages.

    ``to_columns(y)`` lays the groups of y out as columns (N, K, groups).
    """
    y = c.clone().requires_grad_(True)
    for mu in (1e-4, 1e-8):
        opt = torch.optim.LBFGS([y], lr=1, max_iter=50, tolerance_grad=1e-13, tolerance_change=1e-16,
                                history_size=20, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = tau * (to_columns(y).square().sum(1) + mu**2).sqrt().sum() + rho / 2 * (y - c).square().sum()
            loss.backward()
            return loss

        opt.step(closure)
    return y.detach()


def with_group_norms(c: torch.Tensor, grouping, threshold: float) -> torch.Tensor:
    """c rescaled group by group to norms well below or well above ``threshold``, alternately.

    Both branches of (1 − τ/(ρ‖c‖))₊ get tested, and no group sits near the kink where a numerical solver is slow.
    """
    columns = unfold_groups(c, grouping)
    norms = columns.norm(dim=1, keepdim=True)
    wanted = torch.full_like(norms, 0.5 * threshold)
    wanted[..., 1::2] = 2.0 * threshold
    rescaled = fold_groups(columns * wanted / norms, grouping)
    return torch.where(coverage(grouping, c.shape[1], dtype=c.dtype) > 0, rescaled, c)


# ---------------------------------------------------------------------------------------------------------
# Group layout


def test_groups_tile_pad_and_overlap_as_documented():
    g = make_grouping((1, 1, 28, 28), 2, 2)
    assert (g.rows, g.cols, g.padding, g.overlapping) == (14, 14, (0, 0), False)
    g = make_grouping((28, 28), 3, 2)  # (28 − 3)/2 is not whole: one more window, padded by one pixel
    assert (g.rows, g.cols, g.padding, g.overlapping) == (14, 14, (1, 1), True)
    g = make_grouping((3, 224, 224), 13, 13)
    assert (g.rows, g.count, g.padding) == (18, 18 * 18, (10, 10))
    assert coverage(g, 3).min() == 1  # the ragged border is covered
    assert coverage(make_grouping((8, 8), 2, 3), 1).min() == 0  # S > r leaves gaps
    x = rand(2, 3, 11, 9)
    g = make_grouping(x.shape, 4, 4)
    assert torch.equal(fold_groups(unfold_groups(x, g), g), x)  # a tiling: fold inverts unfold
    g = make_grouping(x.shape, 3, 2)
    assert torch.allclose(fold_groups(unfold_groups(x, g), g), x * coverage(g, 3, dtype=DOUBLE))


def test_interpret_group_views():
    delta = torch.zeros(2, 1, 6, 6)
    delta[0, 0, 0, 0] = 3.0
    delta[0, 0, 0, 1] = 4.0
    delta[1, 0, 5, 5] = 1.0
    norms = group_norms(delta, 2, 2)
    assert norms.shape == (2, 3, 3)
    assert norms[0, 0, 0] == 5.0 and norms[1, 2, 2] == 1.0
    assert groups_nonzero(delta, 2, 2).tolist() == [1, 1]
    assert groups_nonzero(delta, 2, 2, tol=2.0).tolist() == [1, 0]
    assert groups_total(delta.shape, 2, 2) == 9 and groups_total((6, 6), 3, 2) == 9
    assert torch.allclose(fraction_touched(delta, 2, 2), torch.tensor([1 / 9, 1 / 9]))
    assert default_grouping((28, 28)) == (2, 2) and default_grouping(224) == (13, 13)


# ---------------------------------------------------------------------------------------------------------
# Each closed-form step equals a direct minimisation of its own subproblem.


@pytest.mark.parametrize("rho, gamma", [(1.0, 1.0), (15.0, 2.0), (0.5, 0.0)])
def test_delta_step_minimises_eq_25(rho, gamma):
    a = rand(2, 3, 4, 4)
    numeric = minimise(lambda d: gamma * d.square().sum() + rho / 2 * (d - a).square().sum(), torch.zeros_like(a),
                       lr=0.2 / (rho + 2 * gamma))
    assert torch.allclose(delta_step(a, rho, gamma), numeric, atol=1e-8)


@pytest.mark.parametrize("epsilon", [1.0, 0.3])
def test_w_step_minimises_eq_26(epsilon):
    x0 = torch.rand(2, 3, 5, 5, generator=torch.Generator().manual_seed(1), dtype=DOUBLE)
    b = rand(2, 3, 5, 5, seed=2)
    lower, upper = box_bounds(x0, epsilon)
    w = w_step(b, lower, upper)
    numeric = minimise(lambda w: (w - b).square().sum(), torch.zeros_like(b), lr=0.1,
                       project=lambda w: torch.maximum(torch.minimum(w, upper), lower))
    assert torch.allclose(w, numeric, atol=1e-10)
    # Clamp-and-check: feasible, equal to b inside the box, on the bound b lies beyond.
    assert ((x0 + w) >= 0).all() and ((x0 + w) <= 1).all() and (w.abs() <= epsilon + 1e-12).all()
    inside = (b > lower) & (b < upper)
    assert torch.equal(w[inside], b[inside])
    assert ((w == lower) <= (b <= lower)).all() and ((w == upper) <= (b >= upper)).all()


@pytest.mark.parametrize("shape, size, stride", [((2, 1, 6, 6), 2, 2), ((1, 3, 7, 5), 3, 3), ((1, 2, 8, 8), 2, 3)])
def test_y_step_is_the_group_lasso_prox_eq_27(shape, size, stride):
    c = rand(*shape, seed=3)
    grouping = make_grouping(shape, size, stride)
    tau, rho = 2.0, 1.0
    c = with_group_norms(c, grouping, tau / rho)
    y = y_step(c, grouping, tau / rho)
    numeric = group_lasso_prox_numerically(c, lambda y: unfold_groups(y, grouping), tau, rho)
    assert torch.allclose(y, numeric, atol=1e-6)
    zero_groups = (unfold_groups(y, grouping).abs().sum(1) == 0).sum()
    assert 0 < zero_groups < shape[0] * grouping.count


def test_y_copies_step_is_the_prox_of_each_copy_eq_42():
    c_cols = rand(2, 8, 5, seed=4)  # 5 copies of a 2 × 2 × 2 group
    tau, rho = 2.0, 2.0
    c_cols[..., ::2] *= 0.5 / c_cols[..., ::2].norm(dim=1, keepdim=True)
    c_cols[..., 1::2] *= 2.0 / c_cols[..., 1::2].norm(dim=1, keepdim=True)
    y = y_copies_step(c_cols, tau / rho)
    numeric = group_lasso_prox_numerically(c_cols, lambda y: y, tau, rho)
    assert torch.allclose(y, numeric, atol=1e-6)
    assert 0 < (y.abs().sum(1) == 0).sum() < 10


@pytest.mark.parametrize("copies", [1, 6])  # eq. (15): a', b', c'; eq. (18): a', b', c'_1 … c'_6
def test_z_step_minimises_the_linearised_eq_14_and_eq_47(copies):
    z, a, b, grad = (rand(2, 1, 4, 4, seed=s) for s in range(5, 9))
    cs = [rand(2, 1, 4, 4, seed=20 + i) for i in range(copies)]
    eta, rho = 7.0, 1.5
    objective = lambda x: ((grad * (x - z)).sum() + eta / 2 * (x - z).square().sum()
                           + rho / 2 * sum((x - t).square().sum() for t in [a, b, *cs]))
    numeric = minimise(objective, z, lr=1 / (eta + (2 + copies) * rho))
    closed = z_step(z, a + b + sum(cs), 2 + copies, grad, eta, rho)
    assert torch.allclose(closed, numeric, atol=1e-10)


def test_refine_steps_minimise_eq_54_and_eq_58():
    x0 = torch.rand(2, 1, 5, 5, generator=torch.Generator().manual_seed(5), dtype=DOUBLE)
    lower, upper = box_bounds(x0, 0.4)
    support = torch.rand(2, 1, 5, 5, generator=torch.Generator().manual_seed(6)) > 0.5
    a = rand(2, 1, 5, 5, seed=7)
    rho, gamma = 1.0, 1.0

    def feasible(d):
        return torch.where(support, torch.maximum(torch.minimum(d, upper), lower), 0.0)

    numeric = minimise(lambda d: gamma * d.square().sum() + rho / 2 * (d - a).square().sum(), torch.zeros_like(a),
                       lr=0.2, project=feasible)
    assert torch.allclose(refine_delta_step(a, rho, gamma, lower, upper, support), numeric, atol=1e-10)

    z, a_prime, grad = rand(2, 1, 5, 5, seed=8), rand(2, 1, 5, 5, seed=9), rand(2, 1, 5, 5, seed=10)
    eta = 5.0
    objective = lambda x: ((grad * (x - z)).sum() + eta / 2 * (x - z).square().sum()
                           + rho / 2 * (x - a_prime).square().sum())
    numeric = minimise(objective, torch.zeros_like(z), lr=0.1, project=lambda x: torch.where(support, x, 0.0))
    assert torch.allclose(refine_z_step(z, a_prime, grad, eta, rho, support), numeric, atol=1e-10)


def test_sparse_support_is_per_sample():
    delta = rand(3, 1, 6, 6, seed=11)
    delta[delta.abs() < 0.5] = 0
    support = sparse_support(delta, 3.0)
    for i in range(3):
        nz = delta[i].abs()[delta[i] != 0].numpy()
        assert torch.equal(support[i], delta[i].abs() > float(np.percentile(nz, 3.0)))
    scaled = delta.clone()
    scaled[0] *= 100  # one sample's scale must not move another's threshold
    assert torch.equal(sparse_support(scaled, 3.0), support)
    assert not sparse_support(torch.zeros(1, 1, 4, 4), 3.0).any()


# ---------------------------------------------------------------------------------------------------------
# Overlapping groups: the compressed copies equal Proposition 2 run literally, with P·Q full copies y_i ∈ R^n.


class _TinyNet(nn.Module):
    def __init__(self, channels: int, side: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(channels * side * side, 4).double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def literal_proposition_2(judge: _Judge, lower, upper, grouping, *, rho, alpha, tau, gamma, steps) -> torch.Tensor:
    x0 = judge.x0
    n, ch, h, w = x0.shape
    masks = []  # D_i as a 0/1 image per group
    for p in range(grouping.rows):
        for q in range(grouping.cols):
            m = torch.zeros(1, ch, h, w, dtype=DOUBLE)
            m[..., p * grouping.stride: p * grouping.stride + grouping.size,
              q * grouping.stride: q * grouping.stride + grouping.size] = 1
            masks.append(m)
    z, u, s = torch.zeros_like(x0), torch.zeros_like(x0), torch.zeros_like(x0)
    v = [torch.zeros_like(x0) for _ in masks]
    for k in range(steps):
        grad = judge.gradient(z)
        eta = alpha * (k + 1) ** 0.5
        delta = rho / (rho + 2 * gamma) * (z - u / rho)
        wv = torch.minimum(torch.maximum(z - s / rho, lower), upper)
        ys = []
        for m, vi in zip(masks, v):
            ci = z - vi / rho
            norm = (ci * m).flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            inside = (1 - tau / (rho * norm)).clamp(min=0) * ci
            ys.append(torch.where(m.bool(), inside, ci))  # eq. (17): shrink on D_i, c_i elsewhere
        c_sum = sum(yi + vi / rho for yi, vi in zip(ys, v))
        z_next = (eta * z + rho * (delta + u / rho) + rho * (wv + s / rho) + rho * c_sum - grad) / (
            eta + 2 * rho + len(masks) * rho)  # eq. (18)
        u = u + rho * (delta - z_next)
        s = s + rho * (wv - z_next)
        v = [vi + rho * (yi - z_next) for vi, yi in zip(v, ys)]
        z = z_next.detach()
    return z


@pytest.mark.parametrize("side", [5, 6])  # 6: a ragged border, covered by padded windows
def test_overlapping_admm_equals_literal_proposition_2(side):
    ch = 2
    net = _TinyNet(ch, side)
    model = PixelModel(net, (0.0,) * ch, (1.0,) * ch).double()
    x0 = torch.rand(3, ch, side, side, generator=torch.Generator().manual_seed(12), dtype=DOUBLE)
    labels = torch.tensor([0, 1, 2])
    targets = torch.tensor([1, 2, 3])
    const = torch.tensor([0.5, 5.0, 50.0], dtype=DOUBLE)
    grouping = make_grouping(x0.shape, 3, 2)
    settings = dict(rho=1.0, alpha=5.0, tau=0.3, gamma=1.0)
    judge = _Judge(model, x0, labels, targets, const, grouping, kappa=0.0, gamma=1.0, tau=0.3)
    lower, upper = box_bounds(x0, 1.0)
    admm = _Admm(judge, lower, upper, **settings)
    for k in range(25):
        admm.step(k)
    literal = literal_proposition_2(judge, lower, upper, grouping, steps=25, **settings)
    assert torch.allclose(admm.z, literal, atol=1e-10)
    assert admm.z.abs().max() > 1e-3  # the run moved


# ---------------------------------------------------------------------------------------------------------
# Real attacks on the real MNIST model, 20 held-out digits in one batch.

# C&W with its defaults (9 binary steps × 1000 iterations, early abort), as the core tests run it: a reduced budget
# leaves some digits unbroken and C&W's ℓ0 far from the paper's (background pixels barely move in tanh space on a
# short run). StrAttack on 6 binary steps × 300 iterations plus a 4 × 150 refine stage.
CW_BUDGET: dict = {}
STR_BUDGET = dict(binary_search_steps=6, steps=300, refine_search_steps=4, refine_steps=150)


class SupportCapture:
    """A callback that keeps the support the refine stage works under; it never stops the attack."""

    def __init__(self) -> None:
        self.support = None

    def __call__(self, state) -> None:
        if self.support is None and "support" in state.extra:
            self.support = state.extra["support"].clone()


@pytest.fixture(scope="module")
def attack(mnist_runs):
    return lambda name, **kw: mnist_runs(cw_l2 if name == "cw" else strattack, **kw)


@pytest.fixture(scope="module")
def structured(attack):
    """StrAttack with 2 × 2 groups of stride 2, and the support its refine stage was given."""
    capture = SupportCapture()
    return attack("str", group_size=2, stride=2, callback=capture, **STR_BUDGET), capture.support


def mean(result, metric: str) -> float:
    return distortion(result.perturbation)[metric][result.success].float().mean().item()


def test_strattack_is_group_sparse_at_cw_like_l2(structured, attack, mnist_model, mnist_digits):
    structured, _ = structured
    cw = attack("cw", **CW_BUDGET)
    assert structured.success.all() and cw.success.all()
    assert (mnist_model(structured.adversarial).argmax(1) == mnist_digits[2]).all()
    assert (structured.adversarial >= 0).all() and (structured.adversarial <= 1).all()
    l0, l0_cw = mean(structured, "l0"), mean(cw, "l0")
    l2, l2_cw = mean(structured, "l2"), mean(cw, "l2")
    print(f"\nStrAttack l0 {l0:.1f} l2 {l2:.3f} | C&W l0 {l0_cw:.1f} l2 {l2_cw:.3f}")
    assert l0 < 0.5 * l0_cw, (l0, l0_cw)
    assert l2 <= 1.5 * l2_cw, (l2, l2_cw)
    touched = fraction_touched(structured.perturbation, 2, 2).mean()
    assert touched < 0.5 * fraction_touched(cw.perturbation, 2, 2).mean()


def test_overlapping_groups_succeed_on_every_digit(attack):
    result = attack("str", group_size=3, stride=2, **STR_BUDGET)
    assert result.success.all()
    assert mean(result, "l0") < 784


def test_refined_result_is_zero_off_its_support(structured):
    result, support = structured
    refined = result.params["refined"]
    assert refined.any() and support is not None
    off = ~support[refined]
    assert off.any()
    assert (result.perturbation[refined][off] == 0).all()
    # σ-sparse: the refined perturbation touches no coordinate outside the support it was given
    assert ((result.perturbation[refined] != 0) <= support[refined]).all()
    assert not support[~result.success].any()  # a failed sample is not refined


def test_callback_sees_state_and_can_stop(mnist_model, mnist_digits):
    x, labels, targets = mnist_digits
    seen = []

    def stop_after_first_success(state):
        assert state.attack == "strattack"
        delta = state.extra["delta"]
        assert torch.allclose(state.current, x + delta)
        assert state.extra["active_groups"].shape == (20, 14, 14)
        assert torch.equal(state.extra["active_groups"], state.extra["group_norms"] > 0)
        assert set(state.losses) >= {"f", "l2", "groups", "objective"}
        assert all(v.shape == (20,) for v in state.losses.values())
        seen.append((state.iteration, state.best.clone(), state.best_found.clone()))
        return bool(state.best_found.any()) and state.step >= 5

    # Starting at c = 5 (this model needs c ≈ 3–5) reaches a first success within a few dozen iterations.
    result = strattack(mnist_model, x, labels, targets, callback=stop_after_first_success, initial_const=5.0,
                       **STR_BUDGET)
    assert result.stopped
    iteration, best, found = seen[-1]
    assert result.iterations == iteration < STR_BUDGET["binary_search_steps"] * STR_BUDGET["steps"]
    assert torch.equal(result.adversarial, best) and torch.equal(result.success, found)
    assert found.any() and not result.params["refined"].any()
    assert torch.equal(result.perturbation[~found], torch.zeros_like(x[~found]))
