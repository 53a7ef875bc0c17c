"""Shared fixtures: the real bundled models and the real held-out digits."""

from __future__ import annotations

import functools
import inspect

import pytest
import torch

from advlens.images import load_image
from advlens.models import get_spec, load_model
from attacks.targets import random_targets

# The reduced budget the attack comparisons share (5 binary-search steps × 300 iterations from c = 1e-2, which
# skips the first two ×10 steps of the default search from 1e-3): test_attacks_mnist.py's β sweep and
# test_gradient.py's EAD and C&W against I-FGM. The same settings are the same cached run (``mnist_runs``).
SWEEP = dict(binary_search_steps=5, steps=300, initial_const=1e-2)
# C&W on that budget with Adam's rate 0.1: at its default 1e-2, 300 iterations per c leave 2 of the 20 digits
# unbroken (measured); EAD's FISTA keeps its default step size.
CW_SWEEP = dict(SWEEP, learning_rate=0.1)


@pytest.fixture(scope="session", autouse=True)
def sessions_dir(tmp_path_factory):
    """The app's run histories (ui/history.py) go to a temporary folder, never the user's cache; the browser
    tests' servers inherit it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ADVLENS_SESSIONS_DIR", str(tmp_path_factory.mktemp("sessions")))
        yield


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
def sweep() -> dict:
    """``SWEEP``, the reduced budget the attack comparisons share."""
    return dict(SWEEP)


@pytest.fixture(scope="session")
def cw_sweep() -> dict:
    """``CW_SWEEP``, C&W on the shared reduced budget."""
    return dict(CW_SWEEP)


def settings(attack, kwargs: dict) -> tuple:
    """Every keyword setting of ``attack(model, x, labels, targets, **kwargs)``, defaults filled in, sorted.

    ``ead()`` and ``ead(beta=1e-3)`` are the same run, whatever order a test writes the keywords in.
    """
    signature = inspect.signature(attack)
    bound = signature.bind_partial(**kwargs)
    bound.apply_defaults()
    positional = list(signature.parameters)[:4]  # model, inputs, labels, targets: the fixed digits
    full: dict = {}
    for name, value in bound.arguments.items():
        if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            full.update(value)
        elif name not in positional:
            full[name] = value
    return tuple(sorted(full.items()))


@pytest.fixture(scope="session")
def mnist_runs(mnist_model, mnist_digits):
    """``run(attack, **settings)`` on the 20 digits, computed once per session whichever test asks first.

    The default-budget C&W run takes minutes on CPU; the core tests and the StrAttack tests share it, and the
    reduced-budget runs of the β sweep are shared with test_gradient.py.
    """
    x, labels, targets = mnist_digits

    @functools.cache
    def cached(attack, key: tuple):
        return attack(mnist_model, x, labels, targets, **dict(key))

    def run(attack, **kwargs):
        return cached(attack, settings(attack, kwargs))

    return run
