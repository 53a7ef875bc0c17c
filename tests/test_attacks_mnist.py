"""C&W, EAD and COV on the real MNIST model and 20 real held-out digits (the EAD paper's findings)."""

from __future__ import annotations

import pytest
import torch

from attacks import cov, cw_l2, ead
from interpret.metrics import distortion

# The β sweep runs EAD at 4 values of β under both decision rules and COV at the two ends of the range, on a reduced
# budget (conftest's ``sweep``: 5 binary steps × 300 iterations, initial c = 1e-2, which skips the first two ×10
# steps of the default search) that keeps CI within minutes. The default-budget runs are below.
BETAS = (0.0, 1e-4, 1e-3, 1e-2)


@pytest.fixture(scope="module")
def run(mnist_runs, mnist_digits):
    def attack(fn, **kwargs):
        result = mnist_runs(fn, **kwargs)
        assert torch.equal(result.labels.cpu(), mnist_digits[1])
        return result

    return attack


def mean(result, metric: str) -> float:
    return distortion(result.perturbation)[metric][result.success].float().mean().item()


def test_model_is_right_on_the_digits(mnist_model, mnist_digits):
    x, labels, _ = mnist_digits
    assert (mnist_model(x).argmax(1) == labels).float().mean() >= 0.95


def test_cw_default_settings_succeed_on_every_digit(run):
    result = run(cw_l2)
    assert result.success.all()
    assert (result.adversarial >= 0).all() and (result.adversarial <= 1).all()


def test_ead_en_default_settings_succeed_on_every_digit(run, mnist_model, mnist_digits):
    result = run(ead)
    assert result.success.all()
    assert (mnist_model(result.adversarial).argmax(1) == mnist_digits[2]).all()
    assert (result.adversarial >= 0).all() and (result.adversarial <= 1).all()


def test_l1_falls_as_beta_rises_and_l1_rule_is_not_above_en_rule(run, sweep):
    en = [mean(run(ead, beta=b, **sweep), "l1") for b in BETAS]
    l1 = [mean(run(ead, beta=b, decision_rule="l1", **sweep), "l1") for b in BETAS]
    assert all(run(ead, beta=b, **sweep).success.all() for b in BETAS)
    assert all(a > b for a, b in zip(en, en[1:])), en
    assert all(r <= e + 1e-6 for r, e in zip(l1, en)), (l1, en)


def test_cov_is_insensitive_to_beta(run, sweep):
    # COV at the two ends of the sweep, β = 0 and 1e-2, where a dependence on β would be largest: the spread
    # between them is the one EAD shows below, on the same runs of EAD as the sweep above (reduced budget).
    ends = (BETAS[0], BETAS[-1])
    l1 = [mean(run(cov, beta=b, **sweep), "l1") for b in ends]
    assert (max(l1) - min(l1)) / min(l1) < 0.10, l1
    ead_l1 = [mean(run(ead, beta=b, **sweep), "l1") for b in ends]
    assert (ead_l1[0] - ead_l1[-1]) / ead_l1[0] > 0.10, ead_l1  # EAD, on the same budget, does respond


def test_ead_with_beta_zero_matches_cw_in_l2(run, sweep, cw_sweep):
    # Both on the sweep's reduced budget (EAD's β = 0 run is the sweep's), C&W with Adam's rate 0.1 (conftest's
    # ``cw_sweep``; at 1e-2 C&W leaves 2 digits unbroken in 300 iterations). Measured: EAD 2.06, C&W 2.09; at the
    # default budgets 2.03 and 2.07.
    cw = run(cw_l2, **cw_sweep)
    ead0 = run(ead, beta=0.0, **sweep)
    assert cw.success.all() and ead0.success.all()
    assert abs(mean(ead0, "l2") - mean(cw, "l2")) / mean(cw, "l2") < 0.15


def test_untargeted_attack_changes_the_prediction(mnist_model, mnist_digits):
    x, labels, _ = mnist_digits
    result = ead(mnist_model, x[:5], labels[:5], None, binary_search_steps=3, steps=200, initial_const=1e-1)
    assert result.success.all()
    assert (mnist_model(result.adversarial).argmax(1) != labels[:5]).all()


def test_target_equal_to_label_is_refused(mnist_model, mnist_digits):
    x, labels, _ = mnist_digits
    with pytest.raises(ValueError, match="differ"):
        cw_l2(mnist_model, x[:1], labels[:1], labels[:1])
