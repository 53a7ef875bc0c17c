"""The contract every attack follows: inputs, callback, result."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Optional

import torch
from torch import Tensor


@dataclass
class IterationState:
    """What an attack shows its callback after each iteration.

    Tensors live on the attack's device; a callback that reads them (``.cpu()``, ``.item()``) is what makes
    the host wait for the device, so an attack run without a callback never synchronises per iteration.
    """

    attack: str
    iteration: int  # counted over the whole run, all binary-search steps included
    total_iterations: int  # the budget: binary steps × iterations (+ refine stage where there is one)
    binary_step: int
    step: int  # iteration within the current binary-search step
    current: Tensor  # the current iterate x(k) in [0,1], (N, C, H, W)
    losses: Mapping[str, Tensor]  # per-sample loss terms, each (N,)
    success: Tensor  # (N,) bool: the current iterate is adversarial
    best: Tensor  # best adversarial so far, (N, C, H, W); the original where none yet
    best_found: Tensor  # (N,) bool
    const: Tensor  # (N,) the constant c in use
    extra: Mapping[str, Tensor] = field(default_factory=dict)  # attack-specific views (e.g. active groups)


# A callback returns True to ask the attack to stop and return the best result so far.
Callback = Callable[[IterationState], Optional[bool]]


@dataclass
class AttackResult:
    """One result type for every attack.

    ``adversarial[i]`` is the best adversarial example found for sample i, or the original where the attack
    failed (``success[i]`` is False): never a black image.
    """

    attack: str
    original: Tensor  # (N, C, H, W) in [0,1]
    adversarial: Tensor  # (N, C, H, W) in [0,1]
    success: Tensor  # (N,) bool
    labels: Tensor  # (N,) true classes t0
    targets: Optional[Tensor]  # (N,) target classes t, None for an untargeted attack
    const: Tensor  # (N,) c of the kept result; where none succeeded, the last c tried
    loss_history: Tensor  # (iterations, N) total objective per iteration, on the CPU
    iterations: int
    seconds: float
    device: str
    stopped: bool = False  # a callback asked to stop early
    params: dict = field(default_factory=dict)

    @property
    def perturbation(self) -> Tensor:
        return self.adversarial - self.original

    @property
    def targeted(self) -> bool:
        return self.targets is not None

    def select(self, rows: int | slice | Tensor) -> AttackResult:
        """The result of some of the batch's samples; an int keeps the batch dimension (one row)."""
        index = slice(rows, rows + 1) if isinstance(rows, int) else rows
        per_sample: dict[str, Any] = {k: v[index] for k, v in self.__dict__.items()
                                      if isinstance(v, Tensor) and k != "loss_history"}
        return replace(self, **per_sample, loss_history=self.loss_history[:, index])

    def to(self, device: torch.device | str) -> AttackResult:
        moved: dict[str, Any] = {k: v.to(device) for k, v in self.__dict__.items() if isinstance(v, Tensor)}
        return replace(self, **moved)
