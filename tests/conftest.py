"""Shared fixtures: the real bundled models and the real held-out digits."""

from __future__ import annotations

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
