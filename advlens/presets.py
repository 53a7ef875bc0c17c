"""Starting values for the app's forms: the papers' budgets on a GPU, budgets that finish in seconds on a CPU.

The attacks' own defaults are the papers' (their schemas); these presets only shorten the budget where the
device is slow. The CLI uses the attacks' defaults unchanged.
"""

from __future__ import annotations

from typing import Any

from attacks.params import ADAM_RATE
from attacks.registry import get_attack


def budget(dataset: str, device_type: str) -> dict[str, Any]:
    """Binary-search steps, iterations and c₀ to start from."""
    if device_type == "cuda":
        return dict(binary_search_steps=9, steps=1000, initial_const=1e-3 if dataset == "mnist" else 0.1)
    if dataset == "mnist":
        return dict(binary_search_steps=3, steps=100, initial_const=1.0)
    return dict(binary_search_steps=2, steps=30, initial_const=1.0)


def starting_params(attack: str, dataset: str, device_type: str) -> dict[str, Any]:
    """Every parameter of ``attack`` with the value a form starts from on this dataset and device."""
    entry = get_attack(attack)
    values = entry.defaults()
    # Presets only ever shorten: an attack whose own budget is smaller (I-FGM's 10 steps, PGD's 40) keeps it.
    values.update({k: min(v, values[k]) if isinstance(values[k], int) else v
                   for k, v in budget(dataset, device_type).items() if k in values})
    if device_type == "cpu":
        if any(p is ADAM_RATE for p in entry.params):
            values["learning_rate"] = 0.05  # Adam needs a larger step to converge within the reduced budget
        if "refine" in values:
            values["refine"] = False  # StrAttack's refine stage alone is 8 × 400 iterations
    return values
