"""The attack loop never reads the device back without a callback, and creates nothing off the model's device.

On PyTorch's "meta" device tensors have shapes but no values: any read-back (``.item()``, ``bool()``,
``.cpu()``) or any tensor made on another device fails at once. The real MNIST network on meta therefore runs
every iteration of an attack only if the loop never synchronises with the host; the one read-back that remains
is the loss history copied out when the attack returns, which is where the run must end. This is what lets the
loop run ahead of a GPU (no GPU was lent to this project to measure it there).
"""

from __future__ import annotations

import pytest

from advlens.models import load_model
from attacks import ead

BINARY_STEPS, STEPS = 2, 3


def test_early_abort_reads_back_at_its_first_check(mnist_digits):
    """The control that shows the test above can fail: the abort test reads the objective at iteration 0."""
    model = load_model("mnist-cnn").to("meta")
    calls = []
    model.net.register_forward_hook(lambda *_: calls.append(1))
    x, labels, targets = mnist_digits
    with pytest.raises(RuntimeError, match="item"):
        ead(model, x[:3], labels[:3], targets[:3], binary_search_steps=1, steps=STEPS, abort_early=True)
    assert len(calls) == 2  # one FISTA iteration, then the read-back
