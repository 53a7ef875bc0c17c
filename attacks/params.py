"""The parameter schema: each attack declares its keyword parameters once, beside its function.

A :class:`Param` says what a value is (type, default, bounds, log scale, choices), where it belongs in a form
(``group``) and what it means (one line naming the paper's symbol and equation). The CLI's flags, the app's
widgets, Sweep's axes, validation and the contract test are all derived from these declarations.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Optional

Group = Literal["objective", "budget", "structure", "advanced"]
GROUPS: tuple[Group, ...] = ("objective", "budget", "structure", "advanced")


@dataclass(frozen=True)
class Param:
    name: str
    type: type  # float, int, bool or str
    default: Any
    help: str  # one line: what it is, the paper's symbol and equation
    label: str = ""  # short label for forms and tables; the name when empty
    low: Optional[float] = None  # inclusive bounds of a numeric parameter
    high: Optional[float] = None
    log: bool = False  # swept and drawn on a log scale
    choices: tuple[Any, ...] = ()
    group: Group = "objective"
    optional: bool = False  # None is allowed: the attack chooses (the help says how)
    aliases: tuple[str, ...] = ()  # extra CLI spellings kept for compatibility, e.g. "c"

    @property
    def title(self) -> str:
        return self.label or self.name

    @property
    def numeric(self) -> bool:
        return self.type in (int, float) and not self.choices

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def flags(self) -> tuple[str, ...]:
        """Every CLI spelling: the flag, then the old aliases."""
        return (self.flag, *("--" + a.replace("_", "-") for a in self.aliases))

    def allowed(self) -> str:
        """The allowed values, in words: 'a number from 0 to 1000', 'one of en, l1', 'True or False'."""
        if self.choices:
            text = "one of " + ", ".join(str(c) for c in self.choices)
        elif self.type is bool:
            text = "True or False"
        elif self.type is str:
            text = "a string"
        else:
            kind = "an integer" if self.type is int else "a number"
            text = f"{kind} from {_fmt(self.low)} to {_fmt(self.high)}"
        return text + (" (or None: the attack chooses)" if self.optional else "")

    def check(self, value: Any) -> Any:
        """The value as the attack takes it, or a ValueError that names the parameter and its allowed values."""
        if value is None and self.optional:
            return None
        if self.choices:
            if isinstance(value, str) and value in self.choices:
                return value
        elif self.type is bool:
            if isinstance(value, (bool, numbers.Integral)) and value in (0, 1) and not _is_float(value):
                return bool(value)
        elif self.type in (int, float) and isinstance(value, numbers.Real) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an int too large for a float
                number = math.inf
            if math.isfinite(number) and self._in_range(number) and (self.type is float or number.is_integer()):
                return int(number) if self.type is int else number
        elif self.type not in (int, float) and isinstance(value, self.type):
            return value
        raise ValueError(f"{self.name} must be {self.allowed()}; got {value!r}.")

    def parse(self, text: str) -> Any:
        """A value typed as text (the CLI, a sweep list), checked."""
        text = text.strip()
        if self.optional and text.lower() in ("none", "auto"):
            return None
        if self.type is bool and not self.choices:
            lowered = text.lower()
            if lowered in ("true", "yes", "on", "1"):
                return True
            if lowered in ("false", "no", "off", "0"):
                return False
            raise ValueError(f"{self.name} must be {self.allowed()}; got {text!r}.")
        if self.type in (int, float) and not self.choices:
            try:
                number = float(text)
            except ValueError:
                raise ValueError(f"{self.name} must be {self.allowed()}; got {text!r}.") from None
            return self.check(int(number) if self.type is int and number.is_integer() else number)
        return self.check(text)

    def grid(self, count: int = 5, low: Optional[float] = None, high: Optional[float] = None) -> list[Any]:
        """``count`` values from ``low`` to ``high`` (the bounds by default), geometric where log-scaled."""
        if not self.numeric:
            return list(self.choices) if self.choices else [False, True]
        lo, hi = (self.low if low is None else low), (self.high if high is None else high)
        if lo is None or hi is None:
            raise ValueError(f"{self.name} has no bounds to make a grid from.")
        if count < 2 or lo == hi:
            values = [lo]
        elif self.log and lo > 0:
            values = [lo * (hi / lo) ** (i / (count - 1)) for i in range(count)]
        else:
            values = [lo + (hi - lo) * i / (count - 1) for i in range(count)]
        if self.type is int:
            return sorted({int(round(v)) for v in values})
        return [float(f"{v:.4g}") for v in values]

    def _in_range(self, value: float) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)


def _is_float(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral)


def _fmt(value: Optional[float]) -> str:
    if value is None:
        return "∞"
    return f"{value:g}"


def check_params(params: Sequence[Param], values: dict[str, Any], owner: str) -> dict[str, Any]:
    """Every value checked against its declaration; an unknown name is one sentence listing the known ones."""
    known = {p.name: p for p in params}
    for name in values:
        if name not in known:
            raise ValueError(f"{owner} does not take {name!r}; its parameters are {', '.join(known) or 'none'}.")
    return {name: known[name].check(value) for name, value in values.items()}


def defaults(params: Sequence[Param]) -> dict[str, Any]:
    return {p.name: p.default for p in params}


def with_default(param: Param, default: Any, **changes: Any) -> Param:
    """The same declaration with another default (and any other field changed)."""
    return replace(param, default=default, **changes)


# ----------------------------------------------------------------------------------------------------------
# Declarations shared by the attacks that minimise c·f + D(δ) over a binary search on c. The bounds keep the
# attack meaningful and its memory bounded (the loss history holds binary_search_steps × steps values a sample).

KAPPA = Param("kappa", float, 0.0, "κ, confidence in logits: f = max{max_{j≠t} Z_j − Z_t, −κ} (eq. 4 of EAD).",
              label="κ · confidence", low=0.0, high=1000.0)
INITIAL_CONST = Param("initial_const", float, 1e-3, "c₀, the first weight of the attack loss f; the search "
                      "multiplies c by 10 until a success, then bisects.", label="c₀ · initial constant",
                      low=1e-6, high=1e6, log=True, group="budget", aliases=("c",))
BINARY_SEARCH_STEPS = Param("binary_search_steps", int, 9, "How many values of c the binary search tries.",
                            label="binary-search steps", low=1, high=20, group="budget",
                            aliases=("binary_steps",))
STEPS = Param("steps", int, 1000, "Iterations for each value of c (early abort may stop sooner).",
              label="iterations per step", low=1, high=10000, log=True, group="budget")
ABORT_EARLY = Param("abort_early", bool, True, "Stop a value of c when the batch's summed objective has not "
                    "fallen by 0.01% since the last of ten checks.", label="abort early", group="budget")
BETA = Param("beta", float, 1e-3, "β, the ℓ1 weight of the elastic net c·f + β‖δ‖₁ + ‖δ‖₂² (eq. 7 of EAD).",
             label="β · ℓ1 weight", low=0.0, high=1.0, log=True)
ADAM_RATE = Param("learning_rate", float, 1e-2, "Adam's learning rate in tanh space (C&W's optimiser).",
                  label="Adam learning rate", low=1e-5, high=10.0, log=True, group="advanced", aliases=("lr",))

SEARCH = (KAPPA, INITIAL_CONST, BINARY_SEARCH_STEPS, STEPS, ABORT_EARLY)
