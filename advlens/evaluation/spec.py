"""What an evaluation runs, parsed from text and checked before anything is loaded or written.

An attack is ``NAME`` or ``NAME:param=value,param=value`` (values parsed by the attack's schema); images are
comma-separated items, each a gallery ref (``mnist:7``), a range (``mnist:0-99``), an image file or a folder of
them; a sweep is ``PARAM=v1,v2,...``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from advlens.images import DATASETS, ImageError, gallery
from advlens.report import jsonable
from attacks.registry import ATTACKS, get_attack

TARGET_MODES = ("all", "random", "next", "least-likely", "untargeted")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class AttackSpec:
    """One attack with the parameters given for it (the rest take the attack's defaults)."""

    attack: str
    given: dict[str, Any] = field(default_factory=dict)
    sweep: Optional[str] = None  # the swept parameter, when this spec is one point of a sweep

    @property
    def params(self) -> dict[str, Any]:
        """Every parameter the attack runs with: its defaults, then what was given."""
        return {**get_attack(self.attack).defaults(), **self.given}

    @property
    def key(self) -> str:
        """The parameters as canonical JSON: one row per (image, target, attack, key) in the store."""
        return params_key(self.params)

    @property
    def sweep_value(self) -> Any:
        return None if self.sweep is None else self.given[self.sweep]


def params_key(params: dict[str, Any]) -> str:
    return json.dumps(jsonable(params), sort_keys=True, separators=(",", ":"))


def parse_attack(text: str) -> AttackSpec:
    """``ead`` or ``ead:beta=0.01,decision_rule=l1``."""
    name, _, rest = text.strip().partition(":")
    name = name.strip()
    if name not in ATTACKS:
        raise ValueError(f"Unknown attack {name!r}: choose from {', '.join(ATTACKS)}.")
    entry = get_attack(name)
    given: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not eq:
            raise ValueError(f"In {text.strip()!r}, {item!r} is not PARAM=VALUE.")
        known = [p.name for p in entry.params]
        if key not in known:
            raise ValueError(f"{entry.title} does not take {key!r}; its parameters are {', '.join(known)}.")
        given[key] = entry.param(key).parse(value)
    return AttackSpec(name, given)


def parse_attacks(names: Optional[str], specs: list[str]) -> list[AttackSpec]:
    """``--attacks cw,ead`` and each ``--attack NAME:k=v,...``, in the order given, without repeats."""
    out = [parse_attack(n) for n in (names or "").split(",") if n.strip()] + [parse_attack(s) for s in specs]
    if not out:
        raise ValueError("Name at least one attack with --attacks or --attack.")
    unique: dict[tuple[str, str], AttackSpec] = {}
    for spec in out:
        unique.setdefault((spec.attack, spec.key), spec)
    return list(unique.values())


def parse_sweep(text: Optional[str], specs: list[AttackSpec]) -> list[AttackSpec]:
    """Each spec once per value of ``PARAM=v1,v2,...``; every attack must take PARAM."""
    if not text:
        return specs
    name, eq, values = text.partition("=")
    name = name.strip().replace("-", "_")
    raw = [v for v in (s.strip() for s in values.split(",")) if v]
    if not eq or not raw:
        raise ValueError(f"--sweep takes PARAM=v1,v2,...; got {text!r}.")
    out = []
    for spec in specs:
        entry = get_attack(spec.attack)
        if name not in {p.name for p in entry.params}:
            raise ValueError(f"--sweep {name}: {entry.title} has no parameter {name!r}.")
        for value in dict.fromkeys(entry.param(name).parse(v) for v in raw):
            out.append(AttackSpec(spec.attack, {**spec.given, name: value}, sweep=name))
    return out


_RANGE = re.compile(r"^([A-Za-z][\w-]*):(\d+)-(\d+)$")


def parse_images(text: str) -> list[str]:
    """Image refs and paths, in order, without repeats; an empty selection is one sentence."""
    refs: list[str] = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        match = _RANGE.match(item)
        if match and not os.path.exists(item):
            dataset, lo, hi = match.group(1).lower(), int(match.group(2)), int(match.group(3))
            if dataset not in DATASETS:
                raise ImageError(f"Unknown gallery {dataset!r} in {item!r}: use {' or '.join(DATASETS)}.")
            size = len(gallery(dataset))
            if hi < lo:
                raise ImageError(f"The image range {item!r} is empty: write it low-high, e.g. {dataset}:0-99.")
            if hi >= size:
                raise ImageError(f"The image range {item!r} goes past the {dataset} gallery, which runs from "
                                 f"{dataset}:0 to {dataset}:{size - 1}.")
            refs += [f"{dataset}:{i}" for i in range(lo, hi + 1)]
        elif os.path.isdir(item):
            files = sorted(str(p) for p in Path(item).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not files:
                raise ImageError(f"The folder {item!r} holds no image files ({', '.join(IMAGE_SUFFIXES)}).")
            refs += files
        else:
            refs.append(item)
    if not refs:
        raise ImageError("No images: give --images as refs (mnist:7), ranges (mnist:0-99), files or a folder.")
    return list(dict.fromkeys(refs))


def parse_targets(mode: str) -> str:
    if mode not in TARGET_MODES:
        raise ValueError(f"--targets must be one of {', '.join(TARGET_MODES)}; got {mode!r}.")
    return mode
