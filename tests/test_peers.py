"""Cross-check against foolbox 3: the same model, digits, targets and settings give the same success and distortion.

The case is small enough for CI: the held-out digits mnist:0 … mnist:9, each towards (label + 1) mod 10, five
binary-search steps, initial c = 1e-2, no early abort. Both sides are judged by the same test (the model's
argmax on the returned image is the target, and the image is in [0, 1]), never by a library's own flag; foolbox
returns an all-zero image where it failed, which the same test judges like any other image. EAD runs 5 × 100
iterations at learning rate 1e-2 (foolbox and advlens agree to the digit there).

Settings aligned with foolbox on purpose, each for a reason of foolbox's own, not to loosen a bound:
- ``abort_early=False`` on both sides: foolbox's abort test differs (it checks every ceil(steps/10) iterations
  from iteration 0, on the loss without the ℓ1 term for EAD).
- fewer than 10 binary-search steps: with ≥ 10, foolbox repeats the last step at c = min(upper bound, 1e10).

C&W runs 5 × 100 iterations at learning rate 0.1, not the benchmark's 1e-2: at 1e-2 an Adam step moves
w = atanh(2x − 1) by about 0.01 while a background pixel at 0 sits at w ≈ −7.25 (atanh(−0.999999)), so in a few
hundred iterations neither library can move the background and both fail on the same three digits, leaving less
to compare (they still agree there: 7/10 each, mean ℓ2 within 0.1%). At 0.1 both succeed on every digit. This
case also guards the pass-through clamp in advlens's tanh map: with a plain clamp, pixels at exactly 0 froze
and advlens reached 8/10 digits at mean ℓ2 3.10 against foolbox's 10/10 at 2.54.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from advlens.images import load_image
from advlens.models import get_spec
from attacks import cw_l2, ead
from interpret.metrics import distortion

fb = pytest.importorskip("foolbox")  # a guard only: CI installs the `peers` extra

COMMON = dict(binary_search_steps=5, initial_const=1e-2, abort_early=False)
EAD = dict(COMMON, steps=100, learning_rate=1e-2)
CW = dict(COMMON, steps=100, learning_rate=1e-1)
BETA = 1e-3


@pytest.fixture(scope="module")
def case(mnist_model):
    spec = get_spec("mnist-cnn")
    assert bool((mnist_model.mean == 0).all()) and bool((mnist_model.std == 1).all())  # foolbox gets the raw net
    images = [load_image(f"mnist:{i}", spec) for i in range(10)]
    x = torch.cat([im.tensor for im in images])
    labels = torch.tensor([im.label for im in images])
    targets = (labels + 1) % 10
    return x, labels, targets, fb.PyTorchModel(mnist_model.net, bounds=(0, 1))


def judge(model, x, adversarial, targets):
    """(success per digit, per-digit distortions): the same test for both libraries."""
    adversarial = adversarial.detach().float()
    in_box = (adversarial >= 0).flatten(1).all(1) & (adversarial <= 1).flatten(1).all(1)
    with torch.no_grad():
        success = in_box & (model(adversarial).argmax(1) == targets)
    return success, distortion(adversarial - x)


def mean(values, success):
    return values[success].mean().item()


def test_ead_matches_foolbox(mnist_model, case):
    x, labels, targets, fmodel = case
    ours = ead(mnist_model, x, labels, targets, beta=BETA, kappa=0.0, decision_rule="en", **EAD)
    attack = fb.attacks.EADAttack(binary_search_steps=EAD["binary_search_steps"], steps=EAD["steps"],
                                  initial_stepsize=EAD["learning_rate"], confidence=0.0,
                                  initial_const=EAD["initial_const"], regularization=BETA, decision_rule="EN",
                                  abort_early=False)
    theirs, _, _ = attack(fmodel, x, fb.criteria.TargetedMisclassification(targets), epsilons=None)

    ok_ours, d_ours = judge(mnist_model, x, ours.adversarial, targets)
    ok_theirs, d_theirs = judge(mnist_model, x, theirs, targets)
    assert torch.equal(ok_ours, ours.success)  # advlens's own flag agrees with the common test
    assert ok_theirs.sum() >= 9, ok_theirs  # a case with something to compare
    assert torch.equal(ok_ours, ok_theirs), (ok_ours, ok_theirs)
    l1_ours, l1_theirs = mean(d_ours["l1"], ok_ours), mean(d_theirs["l1"], ok_theirs)
    assert abs(l1_ours - l1_theirs) / l1_theirs < 0.10, (l1_ours, l1_theirs)


def test_cw_l2_matches_foolbox(mnist_model, case):
    x, labels, targets, fmodel = case
    ours = cw_l2(mnist_model, x, labels, targets, kappa=0.0, **CW)
    attack = fb.attacks.L2CarliniWagnerAttack(binary_search_steps=CW["binary_search_steps"], steps=CW["steps"],
                                              stepsize=CW["learning_rate"], confidence=0.0,
                                              initial_const=CW["initial_const"], abort_early=False)
    theirs, _, _ = attack(fmodel, x, fb.criteria.TargetedMisclassification(targets), epsilons=None)

    ok_ours, d_ours = judge(mnist_model, x, ours.adversarial, targets)
    ok_theirs, d_theirs = judge(mnist_model, x, theirs, targets)
    assert torch.equal(ok_ours, ours.success)
    assert ok_theirs.sum() >= 9, ok_theirs  # a case with something to compare
    assert torch.equal(ok_ours, ok_theirs), (ok_ours, ok_theirs)
    l2_ours, l2_theirs = mean(d_ours["l2"], ok_ours), mean(d_theirs["l2"], ok_theirs)
    assert abs(l2_ours - l2_theirs) / l2_theirs < 0.10, (l2_ours, l2_theirs)


def _bench_module():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_peers.py"
    spec = importlib.util.spec_from_file_location("bench_peers", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_benchmark_replaces_only_its_own_section():
    bench = _bench_module()
    section = f"{bench.HEADING}\n\nnew numbers\n"
    text = ("# Benchmarks\n\n## Core\n\nkept\n\n## Peer libraries\n\nold numbers\n```\n## in a code block\n```\n\n"
            "## GPU\n\nalso kept\n")
    def replace(old: str) -> str:  # what the script's --write does (benchmarks/sections.py)
        return bench.replace_section(old, bench.HEADING, section)

    replaced = replace(text)
    assert replaced == "# Benchmarks\n\n## Core\n\nkept\n\n## Peer libraries\n\nnew numbers\n\n## GPU\n\nalso kept\n"
    assert replace(replaced) == replaced
    assert replace("# Benchmarks\n\n## Core\n\nkept\n").endswith("kept\n\n" + section)
    assert replace("") == "# Benchmarks\n\n" + section
