"""The work of an evaluation: every (image, target) case of every attack, cut into fixed chunks.

Chunks are a function of the command alone (not of what is already stored), and each chunk seeds its own
random generator, so a resumed run, the in-process backend and the Ray backend compute the same rows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import Tensor

from advlens.evaluation.spec import AttackSpec, params_key
from advlens.evaluation.store import UNTARGETED
from advlens.images import load_image
from advlens.models import get_spec
from attacks import PixelModel


@dataclass
class Chunk:
    """One batch of cases of one attack with one parameter set: what a worker runs in one call."""

    attack: str
    params: dict[str, Any]  # every parameter, defaults included
    key: str  # the parameters as canonical JSON (the store's key)
    images: list[str]
    labels: list[int]
    targets: Optional[list[int]]  # None: untargeted
    pixels: Tensor  # the chunk's distinct images (m, C, H, W), float32 in [0, 1], on the CPU
    which: list[int]  # the row of ``pixels`` each case attacks
    notes: list[list[str]]
    seed: int
    craft_on: Optional[list[str]] = None  # transfer: craft on these models (mean logits), judge on the plan's model

    def __len__(self) -> int:
        return len(self.images)

    def keys(self) -> list[tuple[str, int]]:
        return [(img, UNTARGETED if self.targets is None else t)
                for img, t in zip(self.images, self.targets or [UNTARGETED] * len(self))]

    def subset(self, keep: list[int]) -> Chunk:
        """The same chunk restricted to cases ``keep`` (what another run has not stored yet)."""
        return Chunk(self.attack, self.params, self.key, [self.images[i] for i in keep],
                     [self.labels[i] for i in keep], None if self.targets is None else [self.targets[i] for i in keep],
                     self.pixels, [self.which[i] for i in keep], [self.notes[i] for i in keep], self.seed,
                     self.craft_on)

    def inputs(self) -> Tensor:
        """(n, C, H, W): one image per case (an image attacked towards nine targets appears nine times)."""
        return self.pixels[self.which]


@dataclass
class Plan:
    model: str
    chunks: list[Chunk]
    requests: list[tuple[Any, ...]]  # rows of the store's ``requests`` table
    skipped: list[str] = field(default_factory=list)  # images the model already gets wrong

    @property
    def cases(self) -> int:
        return sum(len(c) for c in self.chunks)


def stable_int(*parts: Any) -> int:
    """A 31-bit integer from ``parts`` that is the same in every process and on every machine."""
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:4], "big") >> 1


def random_target(label: int, num_classes: int, seed: int, image: str) -> int:
    """The average case's random incorrect class of ``image``, fixed by the seed and the image alone."""
    return (label + 1 + stable_int(seed, image) % (num_classes - 1)) % num_classes


def default_chunk(pixels: int, device: torch.device) -> int:
    """Cases per chunk the device holds comfortably: 90 MNIST digits on a CPU, thousands on a GPU."""
    if device.type == "cuda":
        return max(1, min(4096, 20_000_000 // pixels))
    return max(1, min(90, 100_000 // pixels))


@torch.no_grad()
def _predictions(model: PixelModel, x: Tensor, batch: int = 64) -> Tensor:
    return torch.cat([model(x[i:i + batch].to(model.device)).cpu() for i in range(0, x.shape[0], batch)])


def make_plan(model_name: str, model: PixelModel, specs: list[AttackSpec], refs: list[str], mode: str, seed: int,
              chunk_size: Optional[int] = None, craft_on: Optional[list[str]] = None) -> Plan:
    """``craft_on``: transfer — the attacks run on these models and the rows judge on ``model_name``; the store's
    parameter key then carries ``craft_on``, so transfer rows never meet white-box rows."""
    spec = get_spec(model_name)
    loaded = [load_image(ref, spec) for ref in refs]
    x = torch.cat([im.tensor for im in loaded])
    logits = _predictions(model, x)
    pred = logits.argmax(1).tolist()
    least = logits.argmin(1).tolist()
    k = spec.num_classes
    skipped = [im.ref for im, p in zip(loaded, pred) if im.label is not None and im.label != p]
    keep = [i for i, im in enumerate(loaded) if im.label is None or im.label == pred[i]]

    cases: list[tuple[int, int, int]] = []  # (image index, target or UNTARGETED, is the average case)
    for i in keep:
        label = pred[i]
        if mode == "all":
            pick = random_target(label, k, seed, loaded[i].ref)
            cases += [(i, t, int(t == pick)) for t in range(k) if t != label]
        elif mode == "random":
            cases.append((i, random_target(label, k, seed, loaded[i].ref), 1))
        elif mode == "next":
            cases.append((i, (label + 1) % k, 0))
        elif mode == "least-likely":
            cases.append((i, least[i], 0))
        else:
            cases.append((i, UNTARGETED, 0))

    size = chunk_size or default_chunk(x[0].numel(), model.device)
    if mode == "all" and size >= k - 1:
        size -= size % (k - 1)  # an image's targets stay in one chunk
    chunks, requests = [], []
    for attack in specs:
        key = attack.key if not craft_on else params_key({**attack.params, "craft_on": list(craft_on)})
        sweep_value = "" if attack.sweep is None else json.dumps(attack.sweep_value)
        for i, t, avg in cases:
            requests.append((model_name, loaded[i].ref, t, attack.attack, key, mode, avg, attack.sweep or "", sweep_value))
        for start in range(0, len(cases), size):
            part = cases[start:start + size]
            index = [i for i, _, _ in part]
            distinct = sorted(set(index))
            first = part[0]
            chunks.append(Chunk(
                attack=attack.attack, params=attack.params, key=key,
                images=[loaded[i].ref for i in index], labels=[pred[i] for i in index],
                targets=None if mode == "untargeted" else [t for _, t, _ in part],
                pixels=x[distinct], which=[distinct.index(i) for i in index], notes=[list(loaded[i].notes) for i in index],
                seed=stable_int(seed, model_name, attack.attack, key, loaded[first[0]].ref, first[1]),
                craft_on=list(craft_on) if craft_on else None,
            ))
    return Plan(model_name, chunks, requests, skipped)
