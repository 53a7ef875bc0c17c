"""Shared fixtures: the real bundled models and the real held-out digits."""

from __future__ import annotations

import functools

import pytest
import torch

from advlens.images import load_image
from advlens.models import get_spec, load_model
from attacks.targets import random_targets


@pytest.fixture(scope="session")
def mnist_model():
    return load_model("mnist-cnn")


@pytest.fixture(scope="session")
def mnist_digits():
    """The first 20 held-out digits with a fixed random incorrect target each (seed 0)."""
    spec = get_spec("mnist-cnn")
    loaded = [load_image(f"mnist:{i}", spec) for i in range(20)]
    x = torch.cat([img.tensor for img in loaded])
    labels = torch.tensor([img.label for img in loaded])
    targets = random_targets(labels, 10, torch.Generator().manual_seed(0))
    return x, labels, targets


@pytest.fixture(scope="session")
def efficientnet():
    return load_model("efficientnet-lite0")


@pytest.fixture(scope="session")
def mnist_runs(mnist_model, mnist_digits):
    """``run(attack, **settings)`` on the 20 digits, computed once per session whichever test asks first.

    The default-budget C&W run takes minutes on CPU; the core tests and the StrAttack tests share it.
    """
    x, labels, targets = mnist_digits

    @functools.cache
    def run(attack, **kwargs):
        return attack(mnist_model, x, labels, targets, **kwargs)

    return run
