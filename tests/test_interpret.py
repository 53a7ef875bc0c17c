"""Interpretability: ASM (eq. 61), IS (eq. 23), CAMs, hook hygiene and figure builders, on real models."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from attacks import PixelModel, cw_l2
from interpret import plots, render
from interpret.asm import adversarial_saliency_map
from interpret.cam import cam_quartet, class_activation_maps, grad_cam, module_at, original_cam
from interpret.groups import group_norms, groups_nonzero, groups_total
from interpret.perturbation import amplified, group_cover, magnitude
from interpret.scores import (
    IS_PERCENTILES,
    asm_interpretability,
    interpretability_curve,
    interpretability_score,
    percentile_mask,
)

EFFICIENTNET_FEATURES = "_avg_pooling:input"  # ReLU6(_bn1(...)): what the GAP + linear head of EfficientNet pools


def tiny_gap_net(activation: nn.Module, channels: int = 2, classes: int = 6) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 5, 3), activation,
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, classes))


@pytest.fixture(scope="module")
def mnist(mnist_model):  # conftest's session-wide model, with its registry entry
    from advlens.models import get_spec

    return mnist_model, get_spec("mnist-cnn")


@pytest.fixture(scope="module")
def efficientnet_spec(efficientnet):
    from advlens.models import get_spec

    return efficientnet, get_spec("efficientnet-lite0")


@pytest.fixture(scope="module")
def digits(mnist_digits):
    x, labels, _ = mnist_digits
    return x[:4], labels[:4]


@pytest.fixture(scope="module")
def photo():
    from advlens.images import load_image
    from advlens.models import get_spec

    image = load_image("imagenet:0", get_spec("efficientnet-lite0"))
    return image.tensor, torch.tensor([image.label])


# ------------------------------------------------------------------------------------------------------ ASM

def central_difference_gradient(model: nn.Module, image: torch.Tensor, cls: int, h: float = 1e-6) -> torch.Tensor:
    """∂Z_cls/∂x of one image (C, H, W) by central differences, all coordinates in one batch."""
    steps = torch.eye(image.numel(), dtype=image.dtype).view(-1, *image.shape) * h
    with torch.no_grad():
        logits = model(torch.cat([image + steps, image - steps]))[:, cls]
    return ((logits[: len(steps)] - logits[len(steps):]) / (2 * h)).view_as(image)


def test_asm_matches_central_finite_differences():
    model = PixelModel(tiny_gap_net(nn.Softplus()), (0.5, 0.4), (0.3, 0.2)).double()
    x = torch.rand(3, 2, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    labels, targets = torch.tensor([0, 3, 5]), torch.tensor([2, 1, 4])
    asm = adversarial_saliency_map(model, x, labels, targets)
    reference = torch.zeros_like(x)
    for n in range(x.shape[0]):
        g_t = central_difference_gradient(model, x[n], int(targets[n]))
        g_t0 = central_difference_gradient(model, x[n], int(labels[n]))
        assert min(g_t.abs().min(), g_t0.abs().min()) > 1e-6  # no sign is decided by rounding
        reference[n] = torch.where((g_t >= 0) & (g_t0 <= 0), g_t * g_t0.abs(), 0)  # eq. (61)
    assert 0 < int((reference > 0).sum()) < reference.numel()  # both branches of eq. (61) occur
    assert ((asm > 0) == (reference > 0)).all()
    assert (asm - reference).norm() / reference.norm() < 1e-4


# ------------------------------------------------------------------------------------------------------ IS

def test_interpretability_score_is_one_inside_zero_outside_and_bounded():
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(4, 3, 8, 8, generator=g) > 0.6
    delta = torch.randn(4, 3, 8, 8, generator=g)
    assert torch.allclose(interpretability_score(delta * mask, mask), torch.ones(4, dtype=torch.float64))
    assert torch.equal(interpretability_score(delta * ~mask, mask), torch.zeros(4, dtype=torch.float64))
    scores = interpretability_score(delta, mask)
    assert ((scores >= 0) & (scores <= 1)).all() and (scores > 0).all() and (scores < 1).all()
    pixel_mask = mask[:, 0]  # a per-pixel region (e.g. from a CAM) covers all channels
    assert torch.allclose(interpretability_score(delta * pixel_mask[:, None], pixel_mask), torch.ones(4).double())
    assert torch.isnan(interpretability_score(torch.zeros(1, 3, 8, 8), mask[:1])).all()  # failed attack: no δ


def test_percentile_mask_keeps_the_top_share_of_nonzero_scores():
    scores = torch.zeros(2, 1, 10, 10)
    scores.view(2, -1)[:, :50] = torch.arange(1, 51, dtype=torch.float32)  # half the map is 0, as with eq. (61)
    mask = percentile_mask(scores, 90)
    assert mask.flatten(1).sum(1).tolist() == [5, 5]  # top 10 % of the 50 non-zero scores
    assert percentile_mask(scores, 90, nonzero_only=False).flatten(1).sum(1).tolist() == [10, 10]
    curve = interpretability_curve(torch.ones(2, 1, 10, 10), scores, IS_PERCENTILES)
    assert list(curve) == list(IS_PERCENTILES)
    values = torch.stack([curve[nu] for nu in IS_PERCENTILES])
    assert (values[1:] <= values[:-1]).all()  # a higher threshold keeps fewer coordinates


# ------------------------------------------------------------------------------------------------------ CAM

def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.corrcoef(torch.stack([a.flatten().double(), b.flatten().double()]))[0, 1])


def test_grad_cam_equals_original_cam_up_to_positive_scale_on_a_gap_linear_head():
    model = PixelModel(tiny_gap_net(nn.ReLU(), channels=3), (0.5,) * 3, (0.25,) * 3)
    x = torch.rand(6, 3, 12, 12, generator=torch.Generator().manual_seed(2))
    classes = torch.tensor([0, 1, 2, 3, 4, 5])
    cam = original_cam(model, x, classes, layer="3", linear="6").clamp_min(0)
    grad = grad_cam(model, x, classes, layer="3").clamp_min(0)
    assert cam.shape == grad.shape == (6, 10, 10) and cam.abs().sum() > 0
    assert correlation(cam, grad) > 0.999
    assert torch.allclose(grad * 100, cam, rtol=1e-4, atol=1e-6)  # Grad-CAM = CAM / (h·w), a positive scale
    up_cam = class_activation_maps(model, x, classes, method="cam", layer="3", linear="6")
    up_grad = class_activation_maps(model, x, classes, method="gradcam", layer="3")
    assert up_cam.shape == (6, 12, 12) and correlation(up_cam, up_grad) > 0.999


def test_grad_cam_equals_original_cam_on_efficientnet(efficientnet):
    model = efficientnet
    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    classes = torch.tensor([1, 409])
    cam = class_activation_maps(model, x, classes, method="cam", layer=EFFICIENTNET_FEATURES, linear="_fc")
    grad = class_activation_maps(model, x, classes, method="gradcam", layer=EFFICIENTNET_FEATURES)
    assert cam.shape == grad.shape == (2, 224, 224)
    assert correlation(cam, grad) > 0.999
    with pytest.raises(ValueError, match="global average pooling"):  # pre-activation features fail the CAM identity
        original_cam(model, x, classes, layer="_bn1", linear="_fc")


def hook_counts(model: nn.Module) -> dict[str, int]:
    counts = {}
    for name, module in model.named_modules():
        for attr, value in vars(module).items():
            if "hook" in attr and isinstance(value, dict):
                counts[f"{name}.{attr}"] = len(value)
    import torch.nn.modules.module as module_globals

    for attr in dir(module_globals):
        if attr.startswith("_global") and "hook" in attr and isinstance(getattr(module_globals, attr), dict):
            counts[attr] = len(getattr(module_globals, attr))
    return counts


def test_fifty_cam_computations_leave_no_hooks_or_gradients(mnist, efficientnet_spec, digits):
    model, spec = mnist
    x, labels = digits
    before = hook_counts(model)
    assert sum(before.values()) == 0
    methods = ("gradcam", "gradcam++", "scorecam")
    for k in range(50):
        maps = class_activation_maps(model, x[:2], labels[:2], method=methods[k % 3], layer=spec.cam_layer)
        assert maps.shape == (2, 28, 28)
    with pytest.raises(RuntimeError):  # class 10 does not exist: pytorch-grad-cam swallows the IndexError
        class_activation_maps(model, x[:1], torch.tensor([10]), method="gradcam", layer=spec.cam_layer)
    assert hook_counts(model) == before
    assert all(p.grad is None for p in model.parameters())
    big, big_spec = efficientnet_spec
    before = hook_counts(big)
    photo = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(4))
    for method in ("cam", "gradcam"):  # the ':input' tap is a pre-hook of its own
        class_activation_maps(big, photo, torch.tensor([7]), method=method, layer=EFFICIENTNET_FEATURES, linear="_fc")
    class_activation_maps(big, photo, torch.tensor([7]), method="gradcam", layer=big_spec.cam_layer)
    with pytest.raises(RuntimeError, match="ran 2 times"):  # EfficientNet's ReLU6 `_swish` serves stem and head
        class_activation_maps(big, photo, torch.tensor([7]), method="gradcam", layer="_swish")
    assert hook_counts(big) == before
    assert all(p.grad is None for p in big.parameters())


def test_scorecam_and_gradcam_plus_plus_on_mnist(mnist, digits):
    model, spec = mnist
    x, labels = digits
    for method in ("gradcam++", "scorecam"):
        maps = class_activation_maps(model, x, labels, method=method, layer=spec.cam_layer)
        assert maps.shape == (4, 28, 28) and (maps >= 0).all() and (maps.flatten(1).amax(1) > 0).all()


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "scorecam"])
def test_cam_maps_equal_pytorch_grad_cam(mnist, digits, method):
    """advlens computes the three CAMs itself (importing pytorch-grad-cam costs ~20 CPU-seconds: torchvision's
    dynamo, sklearn); the reference library, a test-only peer, must give the same raw maps Σ_k w_k A_k."""
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, ScoreCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    base = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "scorecam": ScoreCAM}[method]

    class KeepRawMaps(base):  # the map before pytorch-grad-cam's ReLU, min-max scaling and resize
        def get_cam_image(self, *args, **kwargs):
            cam = super().get_cam_image(*args, **kwargs)
            self.raw = np.asarray(cam, dtype=np.float32)
            return cam

    model, spec = mnist
    x, labels = digits
    classes = (labels + 3) % 10  # not the predicted class: the weights must follow the class asked for
    reference_model = copy.deepcopy(model)
    with KeepRawMaps(model=reference_model, target_layers=[module_at(reference_model, spec.cam_layer)]) as cam:
        cam.batch_size = 64
        cam(input_tensor=x.clone().requires_grad_(method != "scorecam"),
            targets=[ClassifierOutputTarget(int(c)) for c in classes])
        expected = torch.from_numpy(cam.raw)
    ours = grad_cam(model, x, classes, layer=spec.cam_layer, method=method)
    assert ours.shape == expected.shape == (4, *ours.shape[1:])
    scale = expected.abs().amax()
    assert scale > 0 and torch.allclose(ours, expected, rtol=1e-4, atol=1e-5 * float(scale))
    assert all(p.grad is None for p in model.parameters())


# ---------------------------------------------------------------------------------------------- explain + figures

def test_perturbation_views():
    delta = torch.zeros(2, 3, 4, 4)
    delta[0, 1, 2, 3], delta[0, 0, 2, 3] = 0.2, -0.1
    assert torch.allclose(magnitude(delta)[0, 2, 3], torch.tensor(0.3))
    amp = amplified(delta)
    assert amp[0, 1, 2, 3] == 1.0 and amp[0, 0, 2, 3] == 0.25 and (amp[1] == 0.5).all()
    norms = group_norms(delta, 2, 2)
    painted = group_cover(norms, 2, 2, (4, 4))
    assert norms.shape == (2, 2, 2) and painted.shape == (2, 4, 4)
    assert torch.allclose(painted[0, 2:, 2:], norms[0, 1, 1]) and painted[0, :2].abs().sum() == 0


def check_pngs(out_dir, files, side):
    for name in files:
        with Image.open(out_dir / name) as png:
            assert png.mode == "RGB" and png.size[1] == side and png.size[0] > side


def test_explain_on_mnist_writes_figures_and_scores(mnist, digits, tmp_path):
    model, spec = mnist
    x, labels = digits
    targets = (labels + 1) % 10
    result = cw_l2(model, x[:2], labels[:2], targets[:2], initial_const=10.0, binary_search_steps=1, steps=60)
    from advlens.explain import PNG_NAMES, explain

    report = explain(model, spec, result, tmp_path)
    json.dumps(report)
    assert report["explain_files"] == list(PNG_NAMES)
    check_pngs(tmp_path, PNG_NAMES, 280)  # 28 px enlarged ×10, nearest neighbour
    with Image.open(tmp_path / "heatmap.png") as png:  # crisp: each MNIST pixel is a 10×10 block of one colour
        block = np.asarray(png)[140:150, 140:150]
    assert (block == block[0, 0]).all()
    assert list(report["is_curve"]) == list(IS_PERCENTILES)
    if bool(result.success[0]):
        assert 0 <= report["is_asm"] <= 1 and 0 <= report["is_cam"] <= 1
        assert report["is_asm"] == report["is_curve"][90]
    untargeted = cw_l2(model, x[:1], labels[:1], None, initial_const=10.0, binary_search_steps=1, steps=30)
    report = explain(model, spec, untargeted)  # t = the adversarial prediction; no folder, no files
    assert "explain_files" not in report
    assert report["explained_target"] == int(model(untargeted.adversarial).argmax(1)[0])


def test_explain_on_efficientnet_and_plotly_figures(efficientnet_spec, photo, tmp_path):
    model, spec = efficientnet_spec
    x, labels = photo
    result = cw_l2(model, x, labels, None, initial_const=1.0, binary_search_steps=1, steps=5)  # untargeted
    from advlens.explain import PNG_NAMES, explain, interpretability_scores, sample_views

    assert bool(result.success[0])
    report = explain(model, spec, result, tmp_path)
    check_pngs(tmp_path, PNG_NAMES, 448)  # 224 px enlarged ×2
    assert set(report["is_curve"]) == set(IS_PERCENTILES)
    scores = interpretability_scores(model, spec, result, quartet=True)
    delta = result.perturbation
    assert torch.allclose(scores["is_asm"], asm_interpretability(delta, scores["asm"], 90), equal_nan=True)
    assert report["is_asm"] == pytest.approx(float(scores["is_asm"][0]), abs=1e-6)
    views = sample_views(result, scores)  # the maps the PNGs above and the app's figures both draw
    assert (views["group_size"], views["group_stride"]) == (13, 13)
    cams = {k: v[0] for k, v in scores["cams"].items()}
    quartet = plots.cam_quartet_figure(x[0], result.adversarial[0], cams, label_name="a", target_name="b",
                                       unit="Grad-CAM (a.u.)", cmap="viridis", opacity=0.3, height=420)
    assert len(quartet.data) == 8 and quartet.data[1].z.shape == (224, 224) and quartet.data[1].opacity == 0.3
    assert quartet.layout.coloraxis.colorbar.title.text == "Grad-CAM (a.u.)" and quartet.layout.height == 420
    assert quartet.layout.coloraxis.colorscale == tuple(tuple(c) for c in plots.plotly_colorscale("viridis"))
    overlay = plots.overlay_figure(x[0], views["asm"], unit="ASM", opacity=0.3, hide_zero=True,
                                   outline=scores["mask"][0].any(0), colorbar="below")
    assert overlay.data[1].opacity == 0.3 and overlay.data[1].colorbar.title.text == "ASM"
    assert overlay.data[1].colorbar.orientation == "h" and overlay.data[2].type == "contour"  # B_ASM outline
    colour = plots.perturbation_figure(delta[0], frame=True)  # colour δ: one map, |δ| summed over channels
    assert len(colour.data) == 1 and len(colour.layout.shapes) == 1 and colour.data[0].zmin == 0
    assert np.allclose(colour.data[0].z, views["magnitude"].double().numpy())  # heatmap.png's map
    green = plots.perturbation_figure(delta[0], channel="G", limit=0.5)
    assert len(green.data) == 1 and (green.data[0].zmin, green.data[0].zmax) == (-0.5, 0.5)
    assert np.allclose(green.data[0].z, delta[0, 1].double().numpy())
    touched, total = int(groups_nonzero(delta, 13, 13)[0]), groups_total(delta.shape, 13, 13)
    grid = plots.group_grid_figure(x[0], views["group_norms"], views["groups"], size=13, stride=13)
    assert grid.data[1].z.shape == (224, 224) and f"{touched} of {total} groups" in grid.layout.title.text
    curve = plots.is_curve_figure({"C&W": {nu: float(v[0]) for nu, v in scores["is_curve"].items()}}, marker=60)
    assert list(curve.data[0].x) == list(IS_PERCENTILES) and curve.layout.shapes[0].x0 == 60


def test_plotly_figures_keep_mnist_pixels_crisp(mnist, digits):
    model, spec = mnist
    x, labels = digits
    targets = (labels + 3) % 10
    maps = cam_quartet(model, x[:1], x[1:2], labels[:1], targets[:1], method="gradcam", layer=spec.cam_layer)
    fig = plots.cam_quartet_figure(x[0], x[1], {k: v[0] for k, v in maps.items()}, label_name="0",
                                   target_name="3", shared_scale=False)
    image, heat = fig.data[0], fig.data[1]
    assert image.z.shape == (28, 28, 3) and image.zsmooth is False  # pixel data, not a smoothed PNG
    assert heat.zsmooth is False and heat.z.shape == (28, 28)
    rgb = render.overlay_rgb(x[0], maps["x0_t0"][0], alpha=0.5)
    assert rgb.shape == (28, 28, 3) and rgb.dtype == np.uint8
    assert render.crisp(x[0]).shape == (280, 280, 3)  # enlarged ×10 by pixel repetition
    assert render.to_uint8(x[0]).shape == (28, 28) and render.to_uint8(x[:1]).dtype == np.uint8


def test_one_to_uint8_and_save_png(tmp_path):
    """render.to_uint8 takes an image tensor (C, H, W) or an array in image layout; save_png(image, path)."""
    t = torch.tensor([[[0.0, 0.5, 1.0]]]).expand(3, 1, 3)
    assert render.to_uint8(t).tolist() == [[[0, 0, 0], [128, 128, 128], [255, 255, 255]]]
    assert render.to_uint8(np.array([[0.2, 1.2]])).tolist() == [[51, 255]]  # arrays keep their layout, clipped
    with pytest.raises(ValueError):
        render.to_uint8(torch.zeros(2, 3, 4, 4))
    path = render.save_png(t, tmp_path / "x.png")
    with Image.open(path) as png:
        assert png.mode == "RGB" and np.asarray(png)[0, 1].tolist() == [128, 128, 128]


def test_cams_while_other_threads_attack_through_the_same_model(mnist_model, mnist_digits):
    """A classroom: sessions share one cached model; one computes CAMs while others run attacks through it.

    CAM hooks live on a per-thread copy, so the attacks never pass through a hook and every CAM equals the one
    computed alone (before, a hook on the shared model counted other sessions' passes: "Layer '8' ran 7 times").
    """
    import threading

    from advlens.models import get_spec
    from attacks import ead

    x, labels, targets = mnist_digits
    layer = get_spec("mnist-cnn").cam_layer
    alone = {m: class_activation_maps(mnist_model, x[:4], labels[:4], method=m, layer=layer)
             for m in ("gradcam", "gradcam++")}
    stop, failures = threading.Event(), []

    def attack_in_a_loop():
        try:
            while not stop.is_set():
                ead(mnist_model, x[4:8], labels[4:8], targets[4:8], binary_search_steps=1, steps=20, abort_early=False)
        except Exception as err:  # reported below
            failures.append(err)

    workers = [threading.Thread(target=attack_in_a_loop) for _ in range(2)]
    for w in workers:
        w.start()
    try:
        for _ in range(5):
            for method, expected in alone.items():
                got = class_activation_maps(mnist_model, x[:4], labels[:4], method=method, layer=layer)
                assert torch.allclose(got, expected, atol=1e-5), method
    finally:
        stop.set()
        for w in workers:
            w.join()
    assert not failures, failures
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in mnist_model.modules())
