"""The one contract every attack function follows, enforced at its door.

``@declare(*params)`` attaches an attack's parameter schema to its function and checks every call: the model is
the [0,1] wrapper, the images a finite (N, C, H, W) batch the model takes, labels and targets integer classes of
the model, the callback callable, and every keyword value inside its declared range. Anything wrong is one
ValueError sentence that says what to pass, before any work starts. The schema must match the function's
keyword-only arguments exactly (checked when the module is imported), so the two cannot drift.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Optional, TypeVar

import torch
from torch import Tensor

from attacks.model import PixelModel
from attacks.params import Param, check_params

F = TypeVar("F", bound=Callable[..., Any])


def declare(*params: Param) -> Callable[[F], F]:
    """Attach ``params`` (the attack's keyword arguments, callback aside) to an attack and validate its calls."""

    def wrap(fn: F) -> F:
        signature = inspect.signature(fn)
        keywords = {n: p.default for n, p in signature.parameters.items()
                    if p.kind is inspect.Parameter.KEYWORD_ONLY and n != "callback"}
        declared = {p.name: p.default for p in params}
        if keywords != declared:
            raise TypeError(f"{fn.__name__}'s schema does not match its signature: {declared} vs {keywords}.")

        @functools.wraps(fn)
        def checked(model: Any, inputs: Any, labels: Any, targets: Any = None, **kwargs: Any) -> Any:
            callback = check_callback(kwargs.pop("callback", None))
            values = check_params(params, kwargs, fn.__name__)
            inputs, labels, targets = check_call(model, inputs, labels, targets)
            return fn(model, inputs, labels, targets, callback=callback, **values)

        checked.params = params  # type: ignore[attr-defined]
        return checked  # type: ignore[return-value]

    return wrap


def check_callback(callback: Any) -> Any:
    """``callback`` itself when it is None or callable; anything else is one sentence."""
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be a function of the iteration state; got {type(callback).__name__}.")
    return callback


def schema(fn: Callable[..., Any]) -> tuple[Param, ...]:
    """The declared parameters of an attack function or of a ``functools.partial`` of one (its fixed ones left out)."""
    fixed: set[str] = set()
    while isinstance(fn, functools.partial):
        fixed |= set(fn.keywords)
        fn = fn.func
    return tuple(p for p in getattr(fn, "params", ()) if p.name not in fixed)


def check_call(model: Any, inputs: Any, labels: Any, targets: Any) -> tuple[Tensor, Tensor, Optional[Tensor]]:
    """The images, labels and targets of a call, checked against the model; each problem is one sentence."""
    if not isinstance(model, PixelModel):
        raise ValueError(f"model must be an attacks.PixelModel (wrap the network: PixelModel(net, mean, std)); "
                         f"got {type(model).__name__}.")
    if not isinstance(inputs, Tensor):
        raise ValueError("inputs must be a torch.Tensor of images (N, C, H, W) in [0, 1]; "
                         f"got {type(inputs).__name__}.")
    if inputs.dim() != 4:
        raise ValueError(f"inputs must be a batch of images (N, C, H, W); got shape {tuple(inputs.shape)}.")
    if inputs.shape[0] == 0:
        raise ValueError("inputs is an empty batch: pass at least one image.")
    if not inputs.is_floating_point():
        raise ValueError(f"inputs must be floating-point pixels in [0, 1]; got dtype {inputs.dtype}.")
    channels = model.mean.shape[1]
    if inputs.shape[1] != channels:
        raise ValueError(f"The model takes {channels}-channel images; inputs have {inputs.shape[1]} channels.")
    if model.input_size is not None and tuple(inputs.shape[-2:]) != tuple(model.input_size):
        h, w = model.input_size
        raise ValueError(f"The model takes {h}×{w} images; inputs are {inputs.shape[-2]}×{inputs.shape[-1]} "
                         "(advlens.images.load_image resizes a file for a model).")
    if inputs.device.type != "meta":  # meta tensors have no values to check
        if not bool(torch.isfinite(inputs).all()):
            raise ValueError("inputs contain NaN or infinite pixels.")
        if bool(inputs.min() < 0) or bool(inputs.max() > 1):
            raise ValueError("inputs must be images in [0, 1] pixel space; the model wrapper owns normalisation.")
    n = inputs.shape[0]
    classes = model.num_classes
    if classes is None:  # a wrapper made by hand: one forward pass tells how many classes the model has
        with torch.no_grad():
            classes = int(model(inputs[:1].to(model.device)).shape[1])
    labels = _classes("labels", labels, n, classes)
    if targets is not None:
        targets = _classes("targets", targets, n, classes)
        if targets.device.type != "meta" and bool((targets.to(labels.device) == labels).any()):
            raise ValueError("A target class must differ from the image's true class.")
    return inputs, labels, targets


def _classes(name: str, value: Any, n: int, classes: Optional[int]) -> Tensor:
    if not isinstance(value, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of class indices (torch.long), one per image; "
                         f"got {type(value).__name__}.")
    if value.dtype in (torch.bool,) or value.is_floating_point() or value.is_complex():
        raise ValueError(f"{name} must hold integer class indices (torch.long); got dtype {value.dtype}.")
    if value.shape != (n,):
        raise ValueError(f"Need one of {name} per image: {n} images, {name} of shape {tuple(value.shape)}.")
    if value.device.type != "meta" and classes is not None:
        low, high = int(value.min()), int(value.max())
        if low < 0 or high >= classes:
            bad = low if low < 0 else high
            raise ValueError(f"{name} must be classes of the model (0 to {classes - 1}); got {bad}.")
    return value.long()
