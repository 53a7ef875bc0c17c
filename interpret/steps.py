"""Teach's step-by-step mode: ISTA and COV on one real image, iterate by iterate, and which pixels stay exactly
unchanged (δ_i == 0 in every channel) at each step.

ISTA's soft threshold (EAD eq. 8/9) returns x0_i itself wherever |z_i − x0_i| ≤ β, so whole pixels stay exactly
at their clean value. COV (tanh + Adam) moves the coordinates by subgradient steps, which do not land back on
δ_i = 0; its exact zeros are pixels at the edge of the box (x0_i = 0 or 1) that Adam pushes outwards and the box
clips back. ``interior`` separates the two kinds. ``race_summary`` reads Teach §3's objective curves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from attacks.base import IterationState
from attacks.model import PixelModel
from attacks.registry import get_attack

STEP_METHODS: tuple[tuple[str, str], ...] = (("ead-ista", "ISTA"), ("cov", "COV (tanh + Adam)"))
# Teach's settings: β, one value of c, tens of iterations at the papers' α₀ = 0.01 (about 2 s for both on a CPU).
DEFAULTS: dict[str, float] = {"beta": 1e-2, "const": 10.0, "steps": 50, "learning_rate": 1e-2}


@dataclass(frozen=True)
class Iterates:
    """The iterates x(0) = x0, x(1), …, x(K−1) one attack judged, as δ(k) = x(k) − x0 (K, C, H, W), and whether
    each was adversarial (K,)."""

    name: str
    deltas: np.ndarray
    success: np.ndarray

    def first_success(self) -> Optional[int]:
        hits = np.flatnonzero(self.success)
        return int(hits[0]) if hits.size else None


def most_likely_wrong_class(model: PixelModel, x0: Tensor, label: int) -> int:
    """The class other than ``label`` with the largest logit at x0 (the runner-up when x0 is classified right)."""
    with torch.no_grad():
        logits = model(x0.to(model.device))[0].clone()
    logits[label] = -torch.inf
    return int(logits.argmax())


def record_iterates(model: PixelModel, x0: Tensor, label: int, target: int, name: str, *, beta: float, const: float,
                    steps: int, learning_rate: float) -> Iterates:
    """Run the registered attack ``name`` on one image (1, C, H, W) with one value of c and no early abort, and
    keep every iterate its callback sees."""
    deltas: list[Tensor] = []
    success: list[bool] = []
    clean = x0.to(model.device, torch.float32)

    def keep(s: IterationState) -> None:
        deltas.append((s.current[0] - clean[0]).detach().cpu())
        success.append(bool(s.success[0]))

    get_attack(name)(model, clean, torch.tensor([label]), torch.tensor([target]), callback=keep, beta=beta,
                     initial_const=const, binary_search_steps=1, steps=steps, learning_rate=learning_rate,
                     abort_early=False)
    return Iterates(name, torch.stack(deltas).numpy(), np.array(success))


def record_methods(model: PixelModel, x0: Tensor, label: int, *, beta: float, const: float, steps: int,
                   learning_rate: float) -> dict[str, Iterates]:
    """``record_iterates`` of ISTA and COV towards the most likely wrong class, with the same settings."""
    target = most_likely_wrong_class(model, x0, label)
    return {name: record_iterates(model, x0, label, target, name, beta=beta, const=const, steps=steps,
                                  learning_rate=learning_rate) for name, _ in STEP_METHODS}


def unchanged(deltas: np.ndarray) -> np.ndarray:
    """(…, C, H, W) → (…, H, W) bool: the pixels whose every channel has δ exactly 0 (no tolerance)."""
    return np.asarray((deltas == 0).all(axis=-3))


def interior(x0: np.ndarray) -> np.ndarray:
    """(C, H, W) → (H, W) bool: pixels with a channel strictly inside (0, 1), where the box cannot hold δ at 0."""
    return np.asarray(((x0 > 0) & (x0 < 1)).any(axis=0))


def unchanged_counts(deltas: np.ndarray, x0: np.ndarray) -> dict[str, np.ndarray]:
    """Per iterate (K,): pixels exactly unchanged ("all"), those of them inside the box ("interior"), and pixels
    changed by less than 1e-3 in every channel ("tiny": invisible, yet counted by ℓ0)."""
    same = unchanged(deltas).reshape(len(deltas), -1)
    inside = interior(x0).reshape(-1)
    tiny = ((np.abs(deltas) < 1e-3).all(axis=-3).reshape(len(deltas), -1)) & ~same
    return {"all": same.sum(1), "interior": (same & inside).sum(1), "tiny": tiny.sum(1)}


def race_summary(curves: Mapping[str, Mapping[str, np.ndarray]], within: float = 0.1) -> dict[str, dict]:
    """What Teach §3's chart shows, per optimiser: its lowest objective and where ("best", "best_k", k counted
    from 1), the first k within ``within`` (relative) of the lowest value any optimiser reached ("first_k", None
    if never) and the final ‖δ‖₁ ("final_l1")."""
    lowest = min(float(np.min(c["objective"])) for c in curves.values())
    bar = lowest + within * abs(lowest)
    out = {}
    for name, c in curves.items():
        objective = np.asarray(c["objective"], dtype=float)
        close = np.flatnonzero(objective <= bar)
        out[name] = {"best": float(objective.min()), "best_k": int(objective.argmin()) + 1,
                     "first_k": int(close[0]) + 1 if close.size else None, "final_l1": float(c["l1"][-1])}
    return out
