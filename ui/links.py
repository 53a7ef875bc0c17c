"""Shareable configuration links: Explore's model, image, attack, target and non-default parameters in the URL.

``?model=mnist-cnn&image=mnist:3&attack=ead&target=4&beta=0.01`` opens Explore with those widgets set. Parameters
are the attack's own names (``advlens attacks`` lists them); a parameter left out is the attack's schema default,
so a link means the same on any server (the CPU forms' smaller starting budgets are written into the link).
``target`` is a class number, ``untargeted`` or ``runner-up``. A value that is unknown or out of range is one
sentence on the page and that widget keeps its default. After each Explore run the URL shows its configuration;
``share_url`` is the same link without the session id (``ui.history``), so whoever opens it gets their own history.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import urlencode

import streamlit as st

from ui.state import MODEL_KEY, attack_key, image_key, param_key, widget_key

if TYPE_CHECKING:
    from attacks.params import Param
    from ui.state import Run

PAGE = "explore"
FIXED = ("model", "image", "attack", "target")
CONFIG = "links.config"  # the configuration the URL shows (re-asserted: a page switch clears the query string)
APPLIED = "links.applied"  # set once the first URL of the session has been read
PROBLEMS = "links.problems"
PAGE_PATHS = {p.stem for p in (Path(__file__).resolve().parents[1] / "app_pages").glob("*.py")}
TARGET_WORDS = {"untargeted": -1, "runner-up": -2}  # ui.pickers.UNTARGETED, RUNNER_UP


def names() -> set[str]:
    """Every query parameter a configuration may use: the fixed four and every attack parameter's name."""
    from attacks.registry import ATTACKS

    return set(FIXED) | {p.name for entry in ATTACKS.values() for p in entry.params}


def to_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    return repr(value) if isinstance(value, float) else str(value)


def parse(param: Param, text: str) -> Any:
    """A query value as the parameter takes it; ValueError (one sentence) when it is not allowed."""
    if param.choices:
        for choice in param.choices:
            if str(choice) == text.strip():
                return choice
        raise ValueError(f"{param.name} must be {param.allowed()}; got {text!r}.")
    return param.parse(text)


def config_of(run: Run, every: bool = False) -> dict[str, str]:
    """The link of a run: model, gallery image, attack, target and the parameters that differ from the schema
    (``every``: all of them)."""
    from attacks.registry import ATTACKS

    r = run.report
    config = {"model": run.model, "attack": run.attack,
              "target": "untargeted" if r.target is None else str(r.target)}
    if ":" in r.image and not r.image.startswith("upload:"):
        config["image"] = r.image
    entry = ATTACKS.get(run.attack)
    if entry is not None:
        defaults = entry.defaults()
        for p in entry.params:
            if p.name in r.params and p.name not in FIXED and (every or r.params[p.name] != defaults.get(p.name)):
                config[p.name] = to_text(r.params[p.name])
    return config


def read(query: dict[str, str]) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """The widget values a query asks for, the query values used, and one sentence per value that is not."""
    from advlens.images import gallery
    from advlens.models import REGISTRY
    from attacks.registry import ATTACKS

    values: dict[str, Any] = {}
    used: dict[str, str] = {}
    problems: list[str] = []
    model = query.get("model")
    if model is not None and model not in REGISTRY:
        problems.append(f"The link's model {model!r} is not one of this app's models; the default model is used.")
        model = None
    if model is not None:
        values[MODEL_KEY], used["model"] = model, model
    spec = REGISTRY[model] if model is not None else None
    dataset = spec.dataset if spec is not None else REGISTRY[_default_model()].dataset
    image = query.get("image")
    if image is not None:
        if image in {it.ref for it in gallery(dataset)}:
            values[image_key(dataset)], used["image"] = image, image
            values[f"image.source.{dataset}"] = "gallery"
        else:
            problems.append(f"The link's image {image!r} is not in the {dataset} gallery; the first image is used.")
    attack = query.get("attack")
    if attack is not None and attack not in ATTACKS:
        problems.append(f"The link's attack {attack!r} is not a registered attack; the default attack is used.")
        attack = None
    if attack is not None:
        values[attack_key(PAGE)], used["attack"] = attack, attack
    target = query.get("target")
    if target is not None:
        classes = spec.num_classes if spec is not None else REGISTRY[_default_model()].num_classes
        number = TARGET_WORDS.get(target.strip().lower())
        if number is None and target.strip().isdigit() and int(target) < classes:
            number = int(target)
        if number is None:
            problems.append(f"The link's target {target!r} is not a class of the model (0 to {classes - 1}, "
                            "'untargeted' or 'runner-up'); the runner-up class is used.")
        else:
            values[widget_key(PAGE, f"{dataset}.target")], used["target"] = number, target
    params = {k: v for k, v in query.items() if k not in FIXED and k in names()}
    if params:
        entry = ATTACKS[attack or "ead"]
        for name, text in params.items():
            try:
                values[param_key(PAGE, dataset, entry.name, name)] = parse(entry.param(name), text)
                used[name] = text
            except KeyError:
                problems.append(f"The link's {name}={text} is not a parameter of {entry.title}; it is ignored.")
            except ValueError as err:
                problems.append(f"The link's {str(err).rstrip('.')}: the form's starting value is used.")
    return values, used, problems


def _default_model() -> str:
    from advlens.models import DEFAULT_MODEL

    return DEFAULT_MODEL


def apply_url() -> None:
    """Once per browser session, before any widget is drawn: set the widgets the URL names (app.py)."""
    if st.session_state.get(APPLIED):
        return
    st.session_state[APPLIED] = True
    query = {k: st.query_params[k] for k in st.query_params.keys() if k in names()}
    if not query:
        return
    values, used, problems = read(query)
    st.session_state.update(values)
    st.session_state[PROBLEMS] = problems
    st.session_state[CONFIG] = used


def show_problems() -> None:
    """The sentences about a link's unusable values, shown once, above the page."""
    for problem in st.session_state.pop(PROBLEMS, []):
        st.warning(problem, icon=":material/link_off:")


def remember(run: Run) -> None:
    """After a run: the URL shows its configuration from now on."""
    st.session_state[CONFIG] = config_of(run)


def sync_url() -> None:
    """Keep the configuration in the URL (a page switch clears the query string); other parameters stay."""
    config: dict[str, str] = st.session_state.get(CONFIG) or {}
    for key in names():
        current = st.query_params.get(key)
        if key in config and current != config[key]:
            st.query_params[key] = config[key]
        elif key not in config and current is not None:
            del st.query_params[key]


def share_url(config: Optional[dict[str, str]] = None) -> str:
    """The link to this configuration, without the session id."""
    config = (st.session_state.get(CONFIG) or {}) if config is None else config
    base = (st.context.url or "").split("?")[0].rstrip("/")
    head, _, last = base.rpartition("/")
    if last in PAGE_PATHS and "//" in head:  # the link opens Explore, the app's first page
        base = head
    return base + "/" + ("?" + urlencode(config, safe=":") if config else "")
