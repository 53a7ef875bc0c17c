"""Defended models, transfer and feature squeezing (issue 16), on the real bundled weights and held-out digits.

Budgets are reduced to keep CI short; each test says which. The paper-budget numbers are in BENCHMARKS.md.
"""

from __future__ import annotations

import json

import pytest
import torch

from advlens.crafting import check_compatible, judge, load_source
from advlens.defenses import heldout_digits
from advlens.models import ModelUnavailable, load_model
from advlens.train_defenses import weights_file
from attacks.registry import get_attack
from interpret.squeeze import FeatureSqueezing, median_filter

# White-box against the distilled net (Fig. 3's claim): 2 binary-search steps × 150 iterations from c = 1e-2 (the
# paper: 9 × 1000 from 1e-3). The distilled logits are ~T times larger, so a small c is already a large one.
WHITE_BOX = dict(binary_search_steps=2, steps=150, initial_const=1e-2)
# Transfer (Table 8): crafted on mnist-cnn, judged on the distilled net. κ = 0 at the suite's shared SWEEP budget
# (5 × 300 from c = 1e-2, conftest.py: the run test_attacks_mnist.py and test_gradient.py already pay for); the large
# κ needs a large c, so 3 × 200 from c = 1 (the paper: 9 × 1000 from 1e-3 for both). Measured: 5% and 100% of the
# 20 digits transfer (white-box 100% for both); I-FGM-ℓ1 20%.
LARGE_KAPPA = 20.0
LARGE_KAPPA_BUDGET = dict(binary_search_steps=3, steps=200, initial_const=1.0)


@pytest.fixture(scope="session")
def heldout():
    return heldout_digits()


@pytest.fixture(scope="session")
def distilled():
    return load_model("mnist-cnn-distilled")


@pytest.fixture(scope="session")
def madry():
    return load_model("mnist-cnn-madry")


@torch.no_grad()
def _accuracy(model, x, y) -> float:
    return (torch.cat([model(xb).argmax(1) for xb in x.split(500)]) == y).float().mean().item()


def test_defended_models_are_recorded_and_never_saw_the_heldout_digits():
    for name in ("mnist-cnn-distilled", "mnist-cnn-madry"):
        record = json.loads(weights_file(name).with_suffix(".json").read_text())
        assert record["train_size"] == 4000 and record["heldout_size"] == 1000, record
        assert record["train_seconds"] > 0 and record["command"].startswith("python -m advlens.train_defenses")


def test_distilled_accuracy_within_one_and_a_half_points(mnist_model, distilled, heldout):
    x, y = heldout
    base, dist = _accuracy(mnist_model, x, y), _accuracy(distilled, x, y)
    assert dist >= base - 0.015, f"distilled {dist:.3f} vs undefended {base:.3f} on 1,000 held-out digits"
    with torch.no_grad():  # deployed at T = 1: the softmax saturates, which is what distillation hides behind
        top = distilled(x[:100]).softmax(1).max(1).values
    assert top.median() > 0.9999


@pytest.mark.parametrize("attack, params", [("ead", {}), ("cw", {"learning_rate": 0.1})])
def test_white_box_attacks_break_the_distilled_net(distilled, mnist_digits, attack, params):
    x, labels, targets = (t[:10] for t in mnist_digits)
    res = get_attack(attack)(distilled, x, labels, targets, **WHITE_BOX, **params)
    assert res.success.all(), f"{attack}: {int(res.success.sum())}/10 on the distilled net (budget {WHITE_BOX})"


def test_madry_robust_accuracy_far_above_undefended(mnist_model, madry, heldout):
    x, y = heldout
    x, y = x[:100], y[:100]
    pgd = get_attack("pgd")  # untargeted ℓ∞ PGD-40, ε = 0.3, α = 0.01, random start: Madry's evaluation
    robust = {name: 1 - pgd(m, x, y, None, epsilon=0.3, steps=40, rel_stepsize=0.01 / 0.3).success.float().mean().item()
              for name, m in (("undefended", mnist_model), ("madry", madry))}
    clean = _accuracy(madry, x, y)
    message = (f"robust accuracy vs PGD-40 ε=0.3 on 100 held-out digits: madry {robust['madry']:.2f}, "
               f"undefended {robust['undefended']:.2f} (madry clean {clean:.2f})")
    print(message)
    assert robust["madry"] >= robust["undefended"] + 0.4, message


def test_transfer_to_distilled_rises_with_kappa(distilled, mnist_runs, sweep):
    from attacks import ead
    from attacks.gradient import ifgm

    rate = {}
    for kappa in (0.0, LARGE_KAPPA):
        res = mnist_runs(ead, **sweep) if kappa == 0 else mnist_runs(ead, kappa=kappa, **LARGE_KAPPA_BUDGET)
        on_target, source = judge(res, distilled)
        assert source.float().mean() >= 0.9, f"κ={kappa:g}: white-box {source.float().mean():.2f} on mnist-cnn"
        rate[kappa] = on_target.success.float().mean().item()
    # I-FGM ℓ1 with the paper's ε search: the run test_gradient.py already pays for (Table 8: 1.6% on average)
    via_ifgm = judge(mnist_runs(ifgm, norm="1"), distilled)[0].success.float().mean().item()
    message = f"transfer to distilled on 20 digits: EAD κ=0 {rate[0.0]:.2f}, κ={LARGE_KAPPA:g} {rate[LARGE_KAPPA]:.2f}, " \
              f"I-FGM-ℓ1 {via_ifgm:.2f}"
    print(message)
    assert rate[LARGE_KAPPA] > rate[0.0] + 0.2, message
    # Measured 0.20 (4/20; the paper's I-FGM-ℓ1: 1.6% average, 12.2% best case): low beside EAD at a large κ
    assert via_ifgm <= 0.25 and via_ifgm <= rate[LARGE_KAPPA] - 0.5, message


def test_feature_squeezing_false_positives_on_unfitted_digits(mnist_model, heldout):
    x, _ = heldout
    det = FeatureSqueezing(mnist_model)  # bit depth 1 and 2×2 median, MNIST's joint detector
    det.fit(x[500:], fpr=0.05)
    detected, _ = det.detect(x[:500])
    assert detected.float().mean() <= 0.05, f"{int(detected.sum())}/500 false positives, threshold {det.threshold}"


def test_squeezers_match_evademl():
    x = torch.tensor([[[[0.1, 0.9, 0.4], [0.6, 0.2, 0.8], [0.3, 0.7, 0.5]]]])
    # scipy.ndimage.median_filter(size=2, mode='reflect'): the upper median of the 2×2 window ending at each pixel
    expected = torch.tensor([[[[0.1, 0.9, 0.9], [0.6, 0.6, 0.8], [0.6, 0.6, 0.7]]]])
    assert torch.allclose(median_filter(x, 2, 2), expected)  # (torch.testing's first call imports for seconds)
    assert FeatureSqueezing(torch.nn.Identity(), "bit_depth_1").squeezed(x)["bit_depth_1"].unique().tolist() == [0, 1]
    with pytest.raises(ValueError, match="Unknown squeezer"):
        FeatureSqueezing(torch.nn.Identity(), "blur_3")


def test_crafting_on_an_incompatible_model_is_one_sentence(capsys):
    with pytest.raises(ModelUnavailable) as err:
        check_compatible(["efficientnet-lite0"], "mnist-cnn")
    text = str(err.value)
    assert text.count(".") == 1 and "\n" not in text and "efficientnet-lite0" in text and "1×28×28" in text
    from advlens.cli import main

    assert main(["attack", "--model", "mnist-cnn", "--craft-on", "efficientnet-lite0", "--image", "mnist:0",
                 "--out", "/nonexistent-never-written"]) == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and err_lines[0].startswith("advlens: error: Cannot craft on efficientnet-lite0")


def test_ensemble_source_is_the_mean_of_logits(mnist_model, distilled, mnist_digits):
    x = mnist_digits[0][:4]
    ens = load_source("mnist-cnn,mnist-cnn-distilled", "mnist-cnn-madry")
    with torch.no_grad():
        assert torch.allclose(ens(x), (mnist_model(x) + distilled(x)) / 2, atol=1e-4)


def test_evaluate_and_attack_with_craft_on(tmp_path):
    from advlens.cli import main
    from advlens.evaluation import evaluate
    from advlens.evaluation.spec import parse_attacks
    from advlens.evaluation.store import ResultStore

    # (the CLI's `evaluate --craft-on` is this call; its progress bar holds the sys.stderr of its first import,
    # which pytest's capture may have closed by now)
    budget = "cw:binary_search_steps=2,steps=30,initial_const=10,kappa=20"
    evaluate("mnist-cnn-distilled", parse_attacks(None, [budget]), ["mnist:0", "mnist:1"], "random", tmp_path / "ev",
             craft_on="mnist-cnn")
    with ResultStore(tmp_path / "ev", create=False) as store:
        rows = store.conn.execute("SELECT params, success, report FROM results").fetchall()
    assert len(rows) == 2
    for params, success, report in rows:
        rep = json.loads(report)
        assert json.loads(params)["craft_on"] == ["mnist-cnn"] and "craft_on" not in rep["params"]
        assert rep["model"] == "mnist-cnn-distilled" and rep["craft_on"] == ["mnist-cnn"]
        assert isinstance(rep["source_success"], bool) and rep["success"] == bool(success)
    assert main(["attack", "--attack", "cw", "--model", "mnist-cnn-distilled", "--craft-on", "mnist-cnn",
                 "--image", "mnist:0", "--binary-search-steps", "1", "--steps", "30", "--initial-const", "10",
                 "--kappa", "20", "--squeeze", "--out", str(tmp_path / "at")]) == 0
    rep = json.loads((tmp_path / "at" / "result.json").read_text())
    assert rep["craft_on"] == ["mnist-cnn"] and isinstance(rep["source_success"], bool)
    assert set(rep["detection"]) >= {"score", "threshold", "detected"}
    assert rep["success"] == (rep["detection"]["fooled"] and not rep["detection"]["detected"])


def test_defenses_page_runs_transfer_and_shows_the_detector():
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from ui.state import widget_key

    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=240)
    for name, value in {"count": 2, "kmax": 20, "kstep": 20, "bsteps": 1, "iters": 20, "const": 10.0}.items():
        at.session_state[widget_key("defenses", name)] = value
    at.run()
    at.switch_page("app_pages/defenses.py").run()
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) == 1  # the detector's scores; no transfer run yet
    at.button[0].click().run()  # Run transfer (the form's submit button)
    assert not at.exception and not at.error, (at.exception, at.error)
    assert len(at.get("plotly_chart")) == 2 and len(at.dataframe) == 1
    assert [row["κ"] for row in at.dataframe[0].value.to_dict("records")] == [0.0, 20.0]
