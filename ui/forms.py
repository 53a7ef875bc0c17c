"""Forms generated from the attack registry: one widget per declared parameter, nothing named by hand.

A parameter's widget follows its schema (``attacks.params.Param``): choices → radio, bool → checkbox, a log-scaled
float → a slider over its log grid, other numbers → a number box bounded by the schema (empty = "the attack
chooses" where None is allowed). Label and help come from the schema; starting values from
``advlens.presets.starting_params``. Widgets are grouped as the schema says, the advanced ones folded away. A new
attack in ``attacks/registry.py`` gets its form with no edit here. Values are checked by the registry when the
attack runs; an out-of-range value is one sentence then, so a widget never refuses to draw a stored value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import streamlit as st

from ui.chrome import fmt_num
from ui.colours import short_label
from ui.pickers import target_widget
from ui.resources import ModelChoice, device
from ui.state import SHARED, attack_key, keep, param_key

if TYPE_CHECKING:
    from attacks.params import Param
    from attacks.registry import AttackEntry

GROUP_TITLES = {"objective": "Objective", "structure": "Structure", "budget": "Budget"}
NUMBER_WORDS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight"}


def help_text(param: Param) -> str:
    empty = " Leave it empty to let the attack choose." if param.optional else ""
    return f"{param.help}  \nAllowed: {param.allowed()}.{empty}"


def log_options(param: Param, value: Any) -> list[float]:
    """A log-scaled parameter's slider stops: its grid at half decades (1, 3, 10, …) within the schema's bounds,
    0 where allowed, and the current value."""
    high = float(param.high if param.high is not None else 1.0)
    low = float(param.low) if param.low else high * 1e-4
    decades = max(1, round(math.log10(high / low)))
    options = {float(f"{v:.1g}") for v in param.grid(2 * decades + 1, low, high)}
    if param.low == 0:
        options.add(0.0)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        options.add(float(value))
    return sorted(options, key=lambda v: (math.isnan(v), v))


def _number_options(param: Param, value: Any, start: Any) -> dict[str, Any]:
    """step and format for a number box (the range is in its help and checked when the form runs)."""
    as_int = param.type is int and (value is None or (isinstance(value, int) and not isinstance(value, bool)))
    scale = abs(start or param.default or 0) or (
        (param.high - param.low) / 100 if param.low is not None and param.high is not None and not param.log else 1.0)
    if as_int:
        options: dict[str, Any] = {"step": max(1, 10 ** math.floor(math.log10(max(scale, 1))) // 10)}
    else:
        options = {"step": 10.0 ** math.floor(math.log10(scale)) / 10, "format": "%g"}
    if param.optional:
        options["placeholder"] = "auto: the attack chooses"
    # No min_value/max_value: the browser would refuse a typed out-of-range number with only a tooltip, and Run
    # would go on with the old value. Unbounded, the value reaches the run, which refuses it in one sentence.
    return options


def param_widget(page: str, dataset: str, attack: str, param: Param, start: Any) -> str:
    """One parameter's widget; its value sits at ``param_key(page, dataset, attack, param.name)``."""
    key = keep(param_key(page, dataset, attack, param.name), start)
    value = st.session_state[key]
    help_ = help_text(param)
    if param.choices:
        options = list(param.choices) + ([] if value in param.choices else [value])
        st.radio(param.title, options, horizontal=True, key=key, help=help_)
    elif param.type is bool:
        st.checkbox(param.title, key=key, help=help_)
    elif param.type is float and param.log and not param.optional:
        st.select_slider(param.title, options=log_options(param, value), format_func=fmt_num, key=key, help=help_)
    elif param.numeric:
        st.number_input(param.title, **_number_options(param, value, start), key=key, help=help_)
    else:
        st.text_input(param.title, key=key, help=help_)
    return key


def param_widgets(page: str, dataset: str, attack: str, params: Sequence[Param], starts: dict[str, Any]) -> None:
    """Widgets for ``params`` by group: objective and structure | budget, then "Advanced" folded away."""
    groups = {g: [p for p in params if p.group == g] for g in ("objective", "structure", "budget", "advanced")}
    columns = st.columns(2, gap="medium")
    for column, names in zip(columns, (("objective", "structure"), ("budget",))):
        with column:
            for group in names:
                if groups[group]:
                    st.markdown(f"**{GROUP_TITLES[group]}**")
                    for p in groups[group]:
                        param_widget(page, dataset, attack, p, starts.get(p.name))
    if groups["advanced"]:
        with st.expander("Advanced", icon=":material/tune:"):
            columns = st.columns(2, gap="medium")
            for k, p in enumerate(groups["advanced"]):
                with columns[k % 2]:
                    param_widget(page, dataset, attack, p, starts.get(p.name))


def read_params(page: str, dataset: str, attack: str, params: Sequence[Param]) -> dict[str, Any]:
    return {p.name: st.session_state.get(param_key(page, dataset, attack, p.name)) for p in params}


def starts(attack: str, dataset: str) -> dict[str, Any]:
    from advlens.presets import starting_params

    return starting_params(attack, dataset, device().type)


def attack_choice(page: str, default: str = "ead") -> str:
    """Every registered attack, as a segmented control (outside the form: the form follows the choice)."""
    from attacks.registry import ATTACKS

    names = list(ATTACKS)
    attack = st.segmented_control("Attack", names, key=keep(attack_key(page), default), required=True,
                                  format_func=short_label, label_visibility="collapsed", wrap=True)
    attack = attack if attack in names else default
    black_box = ATTACKS[attack].family == "black-box"
    st.caption((":violet-badge[:material/visibility_off: black-box: probabilities only] " if black_box else "")
               + ATTACKS[attack].blurb)
    return attack


def attack_form(page: str, attack: str, choice: ModelChoice, label: int,
                submit: str = "Run attack") -> Optional[dict[str, Any]]:
    """The target and every parameter of ``attack`` in a form: nothing runs until it is submitted.
    Returns {"params": {...}, "target": the target widget's value} on that run, else None."""
    from attacks.registry import get_attack

    entry, ds = get_attack(attack), choice.spec.dataset
    with st.form(f"{page}-form", border=True):
        top = st.columns([3, 2], gap="small", vertical_alignment="bottom")  # Run beside the target: in view at 1280×800
        with top[0]:
            target_key = target_widget(page, choice, label)
        submitted = top[1].form_submit_button(submit, type="primary", icon=":material/play_arrow:", width="stretch")
        param_widgets(page, ds, attack, entry.params, starts(attack, ds))
    if not (submitted or st.session_state.pop(rerun_key(page), False)):
        return None
    return {"params": read_params(page, ds, attack, entry.params), "target": st.session_state.get(target_key)}


def rerun_key(page: str) -> str:
    return f"{page}.rerun-requested"


def larger_budget(entry: AttackEntry, params: dict[str, Any]) -> dict[str, Any]:
    """The changes that give a failed run a fair second chance: 4× the iterations (within the schema's range) and
    no early abort, which on a small budget can end a value of c after a handful of iterations."""
    changes: dict[str, Any] = {}
    for p in entry.params:
        value = params.get(p.name)
        if p.name == "steps" and isinstance(value, int):
            changes["steps"] = min(value * 4, int(p.high)) if p.high is not None else value * 4
        elif p.name == "abort_early" and value:
            changes["abort_early"] = False
    return {k: v for k, v in changes.items() if v != params.get(k)}


def offer_larger_budget(page: str, dataset: str, attack: str, params: dict[str, Any]) -> None:
    """Under a failed result: what the budget was, and one click to run again with ``larger_budget``."""
    from attacks.registry import get_attack

    entry = get_attack(attack)
    changes = larger_budget(entry, params)
    if not changes:
        return
    words = ", ".join(f"{name} {params.get(name)} → {value}" for name, value in changes.items())
    st.caption("A failure on a small budget says little about the image: the attack may simply not have had the "
               f"iterations. One click runs it again with {words}; the other settings stay.")

    def apply() -> None:
        for name, value in changes.items():
            st.session_state[param_key(page, dataset, attack, name)] = value
        st.session_state[rerun_key(page)] = True

    if st.button("Run again with a larger budget", icon=":material/replay:", key=f"{page}.larger-budget", on_click=apply):
        st.rerun()  # the whole page: the form above runs the attack with the new values


# ------------------------------------------------------------------------------------------------ Compare

def variant_param(entry: AttackEntry) -> Optional[Param]:
    """The attack's choice among objectives (EAD's decision rule), if it declares one: Compare shows a column and
    Sweep a series per choice."""
    return next((p for p in entry.params if p.choices and p.group == "objective"), None)


def variant_label(param: Param, value: Any) -> str:
    """One choice of a variant parameter in words: "EN rule" for EAD's decision rule "en"."""
    return f"{str(value).upper()} {param.title.split()[-1]}"


@dataclass(frozen=True)
class Column:
    attack: str
    fixed: tuple[tuple[str, Any], ...]
    title: str


def compare_columns() -> list[Column]:
    """Every registered attack, one column per choice of its variant parameter."""
    from attacks.registry import ATTACKS

    out = []
    for entry in ATTACKS.values():
        v = variant_param(entry)
        if v is None:
            out.append(Column(entry.name, (), short_label(entry.name)))
        else:
            out += [Column(entry.name, ((v.name, c),), f"{short_label(entry.name)} · {variant_label(v, c)}")
                    for c in v.choices]
    return out


def shared_params(attacks: Sequence[str], dataset: str) -> list[Param]:
    """Parameters that two or more of ``attacks`` declare alike (same name and label) and start from the same value
    on this dataset and device: one widget for all. Where their starting values differ (on EfficientNet C&W starts
    from c = 0.1, EAD from 1; StrAttack runs without early abort) each attack keeps its own."""
    from attacks.registry import get_attack

    seen: dict[tuple[str, str], list[tuple[str, Param]]] = {}
    for name in attacks:
        for p in get_attack(name).params:
            seen.setdefault((p.name, p.title), []).append((name, p))
    alike = []
    for declared in seen.values():
        (_, p), starts_at = declared[0], {repr(starts(a, dataset).get(q.name)) for a, q in declared}
        if len(declared) > 1 and not p.choices and len(starts_at) == 1:
            alike.append(p)
    return alike


def compare_form(page: str, lineup: Sequence[Column], choice: ModelChoice, label: int) -> Optional[dict[str, Any]]:
    """Target, the shared settings, and each attack's own parameters (folded); {"target", "params": one dict per
    column} when submitted."""
    from attacks.registry import get_attack

    ds = choice.spec.dataset
    attacks = list(dict.fromkeys(c.attack for c in lineup))
    shared = shared_params(attacks, ds)
    shared_names = {p.name for p in shared}
    fixed = {name for c in lineup for name, _ in c.fixed}
    own = {a: [p for p in get_attack(a).params if p.name not in shared_names | fixed] for a in attacks}
    with st.form(f"{page}-form", border=True):
        target_key = target_widget(page, choice, label)
        if shared:
            st.markdown("**Shared by every attack that has them**")
            first: dict[str, Any] = {}
            for a in reversed(attacks):  # each shared value starts from the first attack that declares it
                first.update(starts(a, ds))
            param_widgets(page, ds, SHARED, shared, first)
        for a in attacks:
            if own[a]:
                with st.expander(f"{short_label(a)} only", icon=":material/tune:"):
                    param_widgets(page, ds, a, own[a], starts(a, ds))
        words = NUMBER_WORDS.get(len(lineup), str(len(lineup)))
        run_label = "Run both" if len(lineup) == 2 else f"Run all {words}"
        submitted = st.form_submit_button(run_label, type="primary", icon=":material/play_arrow:")
    if not submitted:
        return None
    values = read_params(page, ds, SHARED, shared)
    params = [{**{k: v for k, v in values.items() if k in {p.name for p in get_attack(c.attack).params}},
               **read_params(page, ds, c.attack, own[c.attack]), **dict(c.fixed)} for c in lineup]
    return {"target": st.session_state.get(target_key), "params": params}
