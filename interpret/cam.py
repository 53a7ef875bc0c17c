"""Class activation maps: the original CAM (Zhou et al.), Grad-CAM, Grad-CAM++ and Score-CAM.

All maps are ReLU(Σ_k w_k A_k) over a feature map A (N, K, h, w), in the method's own units (not min-max scaled:
comparing C(x0, t0) with C(x_adv, t0) needs a common scale), bilinearly upsampled to the input size. Models take
[0,1] images (``PixelModel``); layer paths are dotted paths inside ``model.net`` as in the model registry.

A layer path may end in ``:input`` to mean "the tensor entering that module" rather than its output. That is how
a network whose last activation module is shared or absent gets a clean post-activation hook point: for
EfficientNet-Lite0 ``_avg_pooling:input`` is ReLU6(_bn1(_conv_head(x))), the features the GAP + linear head sees.

Hooks are state on a module, and a cached model is shared by every thread that uses it (each Streamlit session
runs attacks through it at any time). So hooks are never attached to the model a caller passes: every function
here works on this thread's own copy of it (``hook_copy``), attaches hooks inside a context manager and removes
them on exit. Another session's attack through the shared model can neither see a hook nor add activations to a
CAM's capture.
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Optional, Protocol

import torch
from torch import Tensor, nn
from torch.nn import functional as F

CAM_METHODS: tuple[str, ...] = ("cam", "gradcam", "gradcam++", "scorecam")
CAM_TITLES: dict[str, str] = {
    "cam": "CAM (Zhou et al.)", "gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "scorecam": "Score-CAM",
}
CAM_UNITS: dict[str, str] = {  # colour-bar labels: the original CAM is in logit units, the others arbitrary
    "cam": "CAM (logit per location)", "gradcam": "Grad-CAM (a.u.)", "gradcam++": "Grad-CAM++ (a.u.)",
    "scorecam": "Score-CAM (a.u.)",
}
INPUT_SUFFIX = ":input"

_COPIES = threading.local()  # per thread: a weak map from a shared model to this thread's copy of it


def hook_copy(model: nn.Module) -> nn.Module:
    """This thread's private copy of ``model``, made on first use and kept while the model lives.

    Weights are not trained while a model is served, so the copy stays equal to the original; it costs one
    model's memory per thread that computes CAMs.
    """
    copies = getattr(_COPIES, "models", None)
    if copies is None:
        copies = _COPIES.models = weakref.WeakKeyDictionary()
    if model not in copies:
        copies[model] = copy.deepcopy(model)
    return copies[model]


def module_at(model: nn.Module, path: str) -> nn.Module:
    """The module at a dotted path inside ``model.net`` (or inside ``model`` when it has no ``.net``)."""
    module: nn.Module = getattr(model, "net", model)
    for part in path.removesuffix(INPUT_SUFFIX).split("."):
        module = module[int(part)] if part.isdigit() else getattr(module, part)  # type: ignore[index]
    return module


@contextmanager
def feature_point(model: nn.Module, layer: str) -> Iterator[nn.Module]:
    """A module whose forward output is the feature map named by ``layer``, hooks removed on exit.

    A plain path yields the module itself. A path ending in ``:input`` routes the module's input through a fresh
    ``nn.Identity`` tap (by a forward pre-hook) and yields the tap, so hooks on the tap see exactly that input and
    its gradient, and the network computes the same function.
    """
    module = module_at(model, layer)
    if not layer.endswith(INPUT_SUFFIX):
        yield module
        return
    tap = nn.Identity()
    handle = module.register_forward_pre_hook(lambda _m, args: (tap(args[0]), *args[1:]))
    try:
        yield tap
    finally:
        handle.remove()


def features_and_logits(model: nn.Module, images: Tensor, layer: str) -> tuple[Tensor, Tensor]:
    """The feature map at ``layer`` (N, K, h, w) and the logits (N, classes), from one forward pass, no grad."""
    captured: list[Tensor] = []
    model = hook_copy(model)
    with feature_point(model, layer) as point:
        handle = point.register_forward_hook(lambda _m, _args, out: captured.append(out.detach()))
        try:
            with torch.no_grad():
                logits = model(images)
        finally:
            handle.remove()
    if len(captured) != 1:
        raise RuntimeError(f"Layer {layer!r} ran {len(captured)} times in one forward pass; a CAM needs exactly one "
                           f"(is the module shared, e.g. one activation reused by several blocks?).")
    return captured[0], logits


def original_cam(model: nn.Module, images: Tensor, classes: Tensor, *, layer: str, linear: str) -> Tensor:
    """Zhou et al.'s CAM at feature resolution, (N, h, w): M_c(i, j) = Σ_k w_{c,k} A_k(i, j), before ReLU.

    Valid for a global-average-pooling + linear head: ``layer`` must be the features the pooling averages and
    ``linear`` the ``nn.Linear`` applied to the pooled vector (so the class logit is mean_ij M_c(i, j) + bias).
    """
    fc = module_at(model, linear)
    if not isinstance(fc, nn.Linear):
        raise ValueError(f"{linear!r} is a {type(fc).__name__}, not the nn.Linear of a GAP + linear head.")
    feats, logits = features_and_logits(model, images, layer)
    if feats.dim() != 4 or feats.shape[1] != fc.in_features:
        raise ValueError(f"Features at {layer!r} have shape {tuple(feats.shape)}; the linear head expects "
                         f"{fc.in_features} channels.")
    classes = classes.to(fc.weight.device)
    weights = fc.weight.detach()[classes].to(feats.dtype)  # (N, K): w_{c,k} of each sample
    maps = torch.einsum("nk,nkhw->nhw", weights, feats)
    # The CAM identity Z_c = mean_ij M_c(i, j) + b_c holds only for the features the head really pools.
    bias = fc.bias.detach()[classes] if fc.bias is not None else 0.0
    picked = logits.gather(1, classes.view(-1, 1))[:, 0]
    if not torch.allclose(maps.mean((1, 2)) + bias, picked, rtol=1e-3, atol=1e-3):
        raise ValueError(f"The features at {layer!r} are not what {linear!r} sees after global average pooling "
                         f"(mean CAM + bias ≠ logit): point the head at the pooling layer's input, e.g. "
                         f"'<pool>{INPUT_SUFFIX}'.")
    return maps


def _activations_and_gradients(model: nn.Module, images: Tensor, classes: Tensor, layer: str) -> tuple[Tensor, Tensor]:
    """A = the feature map at ``layer`` and ∂Z_c/∂A of each image's class logit, from one forward and one backward
    pass on this thread's copy; ``autograd.grad`` leaves no parameter gradients behind."""
    captured: list[Tensor] = []
    model = hook_copy(model)
    x = images.detach().clone().requires_grad_(True)  # gradients reach A even when the weights are frozen
    with feature_point(model, layer) as point:
        handle = point.register_forward_hook(lambda _m, _args, out: captured.append(out))
        try:
            with torch.enable_grad():
                logits = model(x)
        finally:
            handle.remove()
    if len(captured) != 1:
        raise RuntimeError(f"Layer {layer!r} ran {len(captured)} times in one forward pass; a CAM needs exactly one "
                           f"(is the module shared, e.g. one activation reused by several blocks?).")
    feats = captured[0]
    picked = logits.gather(1, classes.to(logits.device).view(-1, 1)).sum()
    (grads,) = torch.autograd.grad(picked, feats)
    return feats.detach(), grads.detach()


def _score_cam_weights(model: nn.Module, images: Tensor, classes: Tensor, feats: Tensor, batch_size: int) -> Tensor:
    """Score-CAM (Wang et al.): w_k = softmax_k Z_c(x ⊙ norm(up(A_k))), each channel's upsampled, min-max scaled
    map used as a mask and scored by the class logit; (N, K)."""
    up = F.interpolate(feats, size=images.shape[-2:], mode="bilinear", align_corners=True)
    flat = up.flatten(2)
    low, high = flat.amin(2)[:, :, None, None], flat.amax(2)[:, :, None, None]
    masks = (up - low) / (high - low + 1e-8)
    scores = torch.empty(feats.shape[:2], device=feats.device)
    with torch.no_grad():
        for n in range(images.shape[0]):
            masked = images[n:n + 1] * masks[n][:, None]  # (K, C, H, W)
            for i in range(0, masked.shape[0], batch_size):
                scores[n, i:i + batch_size] = model(masked[i:i + batch_size])[:, int(classes[n])]
    return scores.softmax(1)


def grad_cam(model: nn.Module, images: Tensor, classes: Tensor, *, layer: str, method: str = "gradcam",
             batch_size: int = 64) -> Tensor:
    """Grad-CAM, Grad-CAM++ or Score-CAM at feature resolution, (N, h, w): Σ_k w_k A_k before ReLU, the weights as
    pytorch-grad-cam computes them (tests/test_interpret.py checks the maps against it). ``batch_size`` is the
    number of masked images Score-CAM scores per forward pass (it needs one per feature channel)."""
    if method == "scorecam":
        feats, _ = features_and_logits(model, images, layer)
        weights = _score_cam_weights(hook_copy(model), images, classes, feats, batch_size)
    else:
        feats, grads = _activations_and_gradients(model, images, classes, layer)
        if method == "gradcam":  # Selvaraju et al.: w_k = mean_ij ∂Z_c/∂A_k(i, j)
            weights = grads.mean((2, 3))
        else:  # Grad-CAM++ (Chattopadhay et al., eq. 19): α_ij = g² / (2g² + Σ_ij A · g³), w_k = Σ_ij α_ij ReLU(g)
            g2 = grads.pow(2)
            alpha = g2 / (2 * g2 + feats.sum((2, 3), keepdim=True) * g2 * grads + 1e-6)
            weights = (torch.where(grads != 0, alpha, 0.0) * grads.clamp_min(0)).sum((2, 3))
    return torch.einsum("nk,nkhw->nhw", weights.to(feats.dtype), feats)


def upsample(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of (N, h, w) maps to (N, H, W) (half-pixel centres, like pytorch-grad-cam's cv2.resize)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]


def class_activation_maps(model: nn.Module, images: Tensor, classes: Tensor, *, method: str, layer: str,
                          linear: Optional[str] = None, batch_size: int = 64) -> Tensor:
    """C(x, c) for each image and class, (N, H, W) ≥ 0 on the CPU: ReLU of the method's map, upsampled to the image.

    ``method`` is one of ``CAM_METHODS``; "cam" (the original) needs ``linear``, the GAP + linear head's layer.
    """
    if method not in CAM_METHODS:
        raise ValueError(f"Unknown CAM method {method!r}; choose one of {', '.join(CAM_METHODS)}.")
    if method == "cam":
        if linear is None:
            raise ValueError("The original CAM needs a global-average-pooling + linear head; this model has none.")
        maps = original_cam(model, images, classes, layer=layer, linear=linear)
    else:
        maps = grad_cam(model, images, classes, layer=layer, method=method, batch_size=batch_size)
    height, width = images.shape[-2:]
    return upsample(maps.detach().float().cpu().clamp_min(0), (height, width))


def cam_quartet(model: nn.Module, original: Tensor, adversarial: Tensor, labels: Tensor, targets: Tensor, *,
                method: str, layer: str, linear: Optional[str] = None, batch_size: int = 64) -> dict[str, Tensor]:
    """The four maps of Fig. 4, each (N, H, W): C(x0, t0), C(x0, t), C(x_adv, t0), C(x_adv, t).

    Keys: "x0_t0", "x0_t", "adv_t0", "adv_t". Both images go through in one batch per class.
    """
    both = torch.cat([original, adversarial])
    def maps(classes: Tensor) -> Tensor:
        return class_activation_maps(model, both, classes, method=method, layer=layer, linear=linear,
                                     batch_size=batch_size)

    for_t0, for_t = maps(torch.cat([labels, labels])), maps(torch.cat([targets, targets]))
    n = original.shape[0]
    return {"x0_t0": for_t0[:n], "x0_t": for_t[:n], "adv_t0": for_t0[n:], "adv_t": for_t[n:]}


def normalise_maps(maps: Tensor) -> Tensor:
    """Per-map min-max scaling to [0, 1] (what pytorch-grad-cam returns); a constant map becomes 0."""
    flat = maps.flatten(1)
    low, high = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    return ((flat - low) / (high - low).clamp_min(1e-12)).view_as(maps)


def default_method(gap_linear_head: Optional[tuple[str, str]]) -> str:
    """The original CAM where the model has a GAP + linear head (exact, one forward pass), else Grad-CAM."""
    return "cam" if gap_linear_head is not None else "gradcam"


class CamLayers(Protocol):
    """What CAMs need to know of a model (advlens's ModelSpec has it; interpret does not import the registry)."""

    title: str
    cam_layer: str
    gap_linear_head: Optional[tuple[str, str]]


def registry_options(spec: CamLayers, method: str) -> dict[str, Optional[str]]:
    """``layer``/``linear`` keyword arguments for a model: the head's features for CAM, else ``cam_layer``."""
    head = spec.gap_linear_head
    if method == "cam":
        if head is None:
            raise ValueError(f"{spec.title} has no GAP + linear head: use Grad-CAM instead.")
        return {"layer": head[0], "linear": head[1]}
    return {"layer": spec.cam_layer, "linear": None}
