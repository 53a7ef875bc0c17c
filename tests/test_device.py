"""The attack loop never reads the device back without a callback, and creates nothing off the model's device.

On PyTorch's "meta" device tensors have shapes but no values: any read-back (``.item()``, ``bool()``,
``.cpu()``) or any tensor made on another device fails at once. The real MNIST network on meta therefore runs
every iteration of an attack only if the loop never synchronises with the host; the one read-back that remains
is the loss history copied out when the attack returns, which is where the run must end. This is what lets the
loop run ahead of a GPU (no GPU was lent to this project to measure it there).
"""

from __future__ import annotations

import pytest
import torch

from attacks import cov, cw_l2, ead, strattack
from advlens.models import load_model

BINARY_STEPS, STEPS = 2, 3


@pytest.mark.parametrize("attack, passes, kwargs", [
    (ead, 2, {}),  # FISTA: forward+backward at y(k), forward at x(k)
    (ead, 1, {"optimizer": "ista"}),
    (cw_l2, 1, {}),
    (cov, 1, {}),
    (strattack, 2, {"refine": False, "initial_const": 0.5}),  # at z(k) and at the sparse iterate
])
def test_no_host_read_back_inside_the_loop(attack, passes, kwargs, mnist_digits):
    model = load_model("mnist-cnn").to("meta")
    calls = []
    model.net.register_forward_hook(lambda *_: calls.append(1))
    x, labels, targets = mnist_digits
    with pytest.raises(NotImplementedError, match="meta tensor"):  # the loss history copied out on return
        attack(model, x[:3], labels[:3], targets[:3], binary_search_steps=BINARY_STEPS, steps=STEPS,
               abort_early=False, **kwargs)
    assert len(calls) == BINARY_STEPS * STEPS * passes


def test_early_abort_reads_back_at_its_first_check(mnist_digits):
    """The control that shows the test above can fail: the abort test reads the objective at iteration 0."""
    model = load_model("mnist-cnn").to("meta")
    calls = []
    model.net.register_forward_hook(lambda *_: calls.append(1))
    x, labels, targets = mnist_digits
    with pytest.raises(RuntimeError, match="item"):
        ead(model, x[:3], labels[:3], targets[:3], binary_search_steps=1, steps=STEPS, abort_early=True)
    assert len(calls) == 2  # one FISTA iteration, then the read-back
