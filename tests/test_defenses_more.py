"""The EAD-adversarially-trained MNIST net (thesis Table 7): it loads by name and is as accurate as its record says."""

from __future__ import annotations

import json

import torch

from advlens.defenses import heldout_digits
from advlens.models import load_model
from advlens.train_defenses import weights_file


@torch.no_grad()
def _accuracy(model, x, y) -> float:
    return (torch.cat([model(xb).argmax(1) for xb in x.split(500)]) == y).float().mean().item()


def test_ead_trained_net_loads_and_matches_its_record(mnist_model):
    record = json.loads(weights_file("mnist-cnn-adv-ead").with_suffix(".json").read_text())
    assert record["heldout_size"] == 1000 and record["examples"] > 0, record
    assert record["command"].startswith("python -m advlens.train_defenses adversarial --method ead"), record
    x, y = heldout_digits()
    acc, base = _accuracy(load_model("mnist-cnn-adv-ead"), x, y), _accuracy(mnist_model, x, y)
    assert abs(acc - record["heldout_accuracy"]) < 1e-3, f"held-out {acc:.4f}, recorded {record['heldout_accuracy']}"
    assert acc >= base - 0.015, f"EAD-trained {acc:.3f} vs undefended {base:.3f} on 1,000 held-out digits"
