"""Teach's step-by-step mode (interpret.steps): ISTA and COV on a real digit, iterate by iterate, on the real MNIST
model. Reduced budget, as on the page: one value of c, 50 iterations each (about a second for both on a quiet CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advlens.images import load_image
from advlens.models import get_spec
from interpret import steps
from interpret.metrics import distortion

SETTINGS = dict(steps.DEFAULTS, steps=int(steps.DEFAULTS["steps"]))  # the Teach step mode's settings


@pytest.fixture(scope="module")
def digit():
    image = load_image("mnist:0", get_spec("mnist-cnn"))
    return image.tensor, image.label


@pytest.fixture(scope="module")
def recorded(mnist_model, digit):
    x0, label = digit
    return steps.record_methods(mnist_model, x0, label, **SETTINGS)


def test_one_iterate_per_iteration_starting_at_x0(recorded, digit):
    x0, _ = digit
    for it in recorded.values():
        assert it.deltas.shape == (SETTINGS["steps"], *x0.shape[1:]) and it.success.shape == (SETTINGS["steps"],)
        assert (it.deltas[0] == 0).all()  # x(0) = x0
        assert (x0[0].numpy() + it.deltas >= 0).all() and (x0[0].numpy() + it.deltas <= 1 + 1e-6).all()


def test_counts_agree_with_the_l0_the_metrics_report(recorded, digit):
    x0, _ = digit
    pixels = x0.shape[-1] * x0.shape[-2]
    for it in recorded.values():
        counts = steps.unchanged_counts(it.deltas, x0[0].numpy())
        l0 = distortion(torch.from_numpy(it.deltas))["l0"].numpy()
        assert (counts["all"] == pixels - l0).all()
        assert (counts["interior"] <= counts["all"]).all() and counts["all"][0] == pixels


def test_ista_keeps_stroke_pixels_exactly_unchanged_and_cov_never_does(recorded, digit):
    """Soft thresholding (EAD eq. 9) puts pixels back exactly on x0 inside the stroke (0 < x0 < 1), where the box
    cannot; COV's exact zeros are all box-edge pixels, and it leaves pixels changed by invisible amounts."""
    x0 = digit[0][0].numpy()
    inside = int(steps.interior(x0).sum())
    ista = steps.unchanged_counts(recorded["ead-ista"].deltas, x0)
    cov = steps.unchanged_counts(recorded["cov"].deltas, x0)
    assert inside > 50
    assert (ista["interior"][1:] > 0).all()
    assert (cov["interior"][1:] == 0).all()
    assert (ista["all"][1:] > cov["all"][1:]).all()
    assert cov["tiny"][-1] > 0  # 0 < |δ| < 1e-3: counted by ℓ0, invisible in the δ panel


def test_success_flags_are_the_models_verdict(recorded, digit, mnist_model):
    x0, label = digit
    target = steps.most_likely_wrong_class(mnist_model, x0, label)
    assert target != label
    ista = recorded["ead-ista"]
    k = ista.first_success()
    assert k is not None  # ISTA reaches the target within the reduced budget on this digit
    with torch.no_grad():
        before = mnist_model(x0 + torch.from_numpy(ista.deltas[k - 1])).argmax(1).item()
        after = mnist_model(x0 + torch.from_numpy(ista.deltas[k])).argmax(1).item()
    assert after == target and before != target


def test_race_summary_reads_the_curves():
    curves = {"a": {"objective": np.array([5.0, 3.0, 1.0]), "l1": np.array([0.0, 2.0, 4.0])},
              "b": {"objective": np.array([4.0, 1.05, 2.0]), "l1": np.array([0.0, 1.0, 3.0])},
              "c": {"objective": np.array([9.0, 8.0, 7.0]), "l1": np.array([0.0, 5.0, 6.0])}}
    race = steps.race_summary(curves)
    assert race["a"] == {"best": 1.0, "best_k": 3, "first_k": 3, "final_l1": 4.0}
    assert race["b"]["best_k"] == 2 and race["b"]["first_k"] == 2  # 1.05 is within 10 % of a's 1.0
    assert race["c"]["first_k"] is None
