"""One report of one attacked image, with one serialiser: the CLI's result.json, the app's JSON download and the
evaluation store all write :class:`AttackReport` through :meth:`AttackReport.to_json`.

The schema is documented in docs/report.md; ``SCHEMA_VERSION`` changes whenever a field does.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from typing import Any, Optional

import torch
from torch import Tensor

from attacks import AttackResult, PixelModel
from attacks.groups import default_grouping
from attacks.registry import ATTACKS
from interpret.groups import groups_nonzero, groups_total
from interpret.metrics import distortion

SCHEMA_VERSION = 2  # 2: craft_on, source_success, detection, queries (optional, None where they do not apply)
TIMING_FIELDS = ("seconds",)  # what differs between two runs of the same attack


@dataclass
class AttackReport:
    schema: int
    model: str
    image: str  # the image reference: mnist:N, imagenet:N, a file name or upload:<name>
    notes: list[str]  # how the image was converted for the model
    attack: str  # registry name
    title: str
    params: dict[str, Any]  # every parameter the attack ran with, defaults included
    success: bool
    label: int  # true class t0
    target: Optional[int]  # target class t; None for an untargeted attack
    pred_before: int
    pred_after: int
    top5_before: list[tuple[int, float]]
    top5_after: list[tuple[int, float]]
    l0: int  # changed pixels (any channel)
    l0_coords: int  # changed coordinates
    l1: float
    l2: float
    linf: float
    c: float  # the constant c of the kept result (the last tried where the attack failed)
    iterations: int
    stopped: bool  # a callback (the app's Stop button) ended the run early
    seconds: float
    device: str
    group_size: int  # the group layout the group counts use: StrAttack's own, else the paper's default
    stride: int
    groups_nonzero: int  # groups G with ‖δ_G‖₂ > 0
    groups_total: int
    explanation: Optional[dict[str, Any]] = None  # interpretability scores, when computed (see explain.py)
    extra: dict[str, Any] = field(default_factory=dict)  # attack-specific facts, e.g. StrAttack's ``refined``
    # Transfer (advlens/crafting.py): the model(s) the example was crafted on (several: the mean of their logits),
    # and the white-box success there; ``success``, ``pred_after`` and the top-5 are then the target's (``model``).
    craft_on: Optional[list[str]] = None
    source_success: Optional[bool] = None
    # Feature squeezing (interpret/squeeze.py): the detector's verdict; ``success`` then also requires "not detected".
    detection: Optional[dict[str, Any]] = None
    # Black-box attacks (ZOO): the images the model was asked to classify for this sample; None for a white-box one.
    queries: Optional[int] = None

    def to_dict(self) -> dict[str, Any]:
        # jsonable builds new dicts and lists all the way down, so asdict's deep copy would only be paid twice
        return jsonable({f.name: getattr(self, f.name) for f in fields(self)})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"


@torch.no_grad()
def top_classes(model: PixelModel, x: Tensor, k: int = 5) -> list[list[tuple[int, float]]]:
    """Top-k (class, probability) per image."""
    probs = model(x.to(model.device)).softmax(1)
    p, i = probs.topk(min(k, probs.shape[1]), dim=1)
    return [list(zip(ii.tolist(), pp.tolist())) for ii, pp in zip(i.cpu(), p.cpu())]


def grouping_of(result: AttackResult) -> tuple[int, int]:
    """The group layout of a result: StrAttack's own (r, S), else the paper's default for the image size."""
    if result.params.get("group_size") is not None:
        return int(result.params["group_size"]), int(result.params["stride"])
    size, stride = default_grouping(tuple(result.original.shape[-2:]))
    return int(size), int(stride)


def build_report(result: AttackResult, model: PixelModel, *, model_name: str, image: str,
                 notes: Optional[list[str]] = None, index: int = 0,
                 explanation: Optional[dict[str, Any]] = None,
                 tops: Optional[tuple[list[list[tuple[int, float]]], list[list[tuple[int, float]]]]] = None) -> AttackReport:
    """The report of sample ``index`` of ``result``; ``tops`` is ``top_classes`` of every original and adversarial
    sample when the caller already has them (the evaluation runner, one forward per chunk instead of two per row)."""
    pick = slice(index, index + 1)
    if tops is not None:
        before, after = tops[0][index], tops[1][index]
    else:
        before = top_classes(model, result.original[pick])[0]
        after = top_classes(model, result.adversarial[pick])[0]
    delta = result.perturbation[pick].detach().cpu()
    d = {k: v[0].item() for k, v in distortion(delta).items()}
    size, stride = grouping_of(result)
    params, extra = {}, {}
    n = result.success.shape[0]
    for k, v in result.params.items():
        if isinstance(v, Tensor) and v.dim() and v.shape[0] == n:  # per-sample facts (StrAttack's ``refined``)
            extra[k] = v.reshape(-1)[index].item()
        else:
            params[k] = v.item() if isinstance(v, Tensor) else v
    queries = extra.pop("queries", None)  # a black-box attack's per-sample count (ZOO's oracle)
    entry = ATTACKS.get(result.attack)
    return AttackReport(
        schema=SCHEMA_VERSION, model=model_name, image=image, notes=list(notes or []), attack=result.attack,
        title=entry.title if entry else result.attack, params=params, success=bool(result.success[index]),
        label=int(result.labels[index]), target=None if result.targets is None else int(result.targets[index]),
        pred_before=before[0][0], pred_after=after[0][0], top5_before=before, top5_after=after,
        l0=int(d["l0"]), l0_coords=int(d["l0_coords"]), l1=d["l1"], l2=d["l2"], linf=d["linf"],
        c=result.const[index].item(), iterations=result.iterations, stopped=result.stopped, seconds=result.seconds,
        device=result.device, group_size=size, stride=stride,
        groups_nonzero=int(groups_nonzero(delta, size, stride)[0]),
        groups_total=int(groups_total(tuple(delta.shape), size, stride)), explanation=explanation, extra=extra,
        queries=queries,
    )


def jsonable(value: Any) -> Any:
    """Plain JSON values: tensors and numpy scalars as numbers or lists, NaN and infinities as null."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Tensor):
        return jsonable(value.tolist())
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, (str, bytes)):
        return jsonable(value.item())  # numpy scalars
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
