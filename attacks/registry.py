"""Every attack advlens offers, one line each.

An entry names an attack function (or a ``functools.partial`` of one, for a configured variant, as adv_lib
configures its attacks) and says what it is. Its parameters are the function's declared schema, less the
arguments the partial fixes. The CLI, the app's forms, Sweep and the contract test all read this table: adding
an attack is its module (function + schema) and one line here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, Optional

from torch import Tensor

from attacks.base import AttackResult, Callback
from attacks.closed_form import alg1, alg2, gnm, random_noise
from attacks.contract import schema
from attacks.cw import cov, cw_l2
from attacks.deepfool import deepfool
from attacks.ead import ead
from attacks.gradient import fgm, ifgm, pgd
from attacks.params import Param, check_params
from attacks.strattack import strattack
from attacks.zoo import zoo

_NORM_METRIC = {"1": "l1", "2": "l2", "inf": "linf"}

Family = Literal["white-box optimisation", "gradient baseline", "black-box", "closed form", "random baseline"]


@dataclass(frozen=True)
class AttackEntry:
    name: str
    title: str
    fn: Callable[..., AttackResult]
    family: Family
    distortion: str  # what the attack minimises, in words
    metric: str  # the interpret.metrics distortion its tables rank by: "l0", "l1", "l2" or "linf"
    paper: str
    blurb: str  # one sentence for forms and listings

    @property
    def params(self) -> tuple[Param, ...]:
        return schema(self.fn)

    @property
    def fixed(self) -> dict[str, Any]:
        return dict(self.fn.keywords) if isinstance(self.fn, functools.partial) else {}

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise ValueError(f"{self.title} has no parameter {name!r}; its parameters are "
                         f"{', '.join(p.name for p in self.params)}.")

    def ranking_metric(self, params: dict[str, Any]) -> str:
        """The distortion a run's tables rank by: the run's own ``norm`` where the attack has one, else ``metric``."""
        return _NORM_METRIC.get(str(params.get("norm")), self.metric)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def __call__(self, model: Any, inputs: Tensor, labels: Tensor, targets: Optional[Tensor] = None, *,
                 callback: Optional[Callback] = None, **params: Any) -> AttackResult:
        check_params(self.params, params, self.title)
        result = self.fn(model, inputs, labels, targets, callback=callback, **params)
        return replace(result, attack=self.name, params={**self.fixed, **result.params})

    def describe(self) -> dict[str, Any]:
        """JSON-ready: what ``advlens attacks --json`` prints for this attack."""
        return {
            "name": self.name, "title": self.title, "family": self.family, "distortion": self.distortion,
            "metric": self.metric,
            "paper": self.paper, "blurb": self.blurb, "fixed": self.fixed,
            "params": [{"name": p.name, "type": p.type.__name__, "default": p.default, "low": p.low,
                        "high": p.high, "log": p.log, "choices": list(p.choices), "group": p.group,
                        "optional": p.optional, "label": p.title, "help": p.help, "flag": p.flag}
                       for p in self.params],
        }


_EAD = "Chen et al., EAD: Elastic-Net Attacks to Deep Neural Networks (AAAI 2018)"
_CW = "Carlini & Wagner, Towards Evaluating the Robustness of Neural Networks (S&P 2017)"
_FGM = "Goodfellow, Shlens & Szegedy, Explaining and Harnessing Adversarial Examples (ICLR 2015); as in EAD's Table 2"
_IFGM = "Kurakin, Goodfellow & Bengio, Adversarial Machine Learning at Scale (ICLR 2017); as in EAD's Table 2"
_PGD = "Madry et al., Towards Deep Learning Models Resistant to Adversarial Attacks (ICLR 2018)"
_BALDA = "Balda, Behboodi & Mathar, Perturbation Analysis of Learning Algorithms (arXiv 1812.07385, 2018)"

ATTACKS: dict[str, AttackEntry] = {e.name: e for e in (
    AttackEntry("cw", "C&W L2", cw_l2, "white-box optimisation", "ℓ2", "l2", _CW,
                "min ‖δ‖₂² + c·f(x₀ + δ) in tanh space with Adam; keeps the least-ℓ2 success."),
    AttackEntry("ead", "EAD (FISTA)", functools.partial(ead, optimizer="fista"), "white-box optimisation",
                "elastic net β‖δ‖₁ + ‖δ‖₂²", "l1", _EAD,
                "min c·f + β‖δ‖₁ + ‖δ‖₂² on the pixel box by FISTA with soft-thresholding (Algorithm 1)."),
    AttackEntry("ead-ista", "EAD (ISTA)", functools.partial(ead, optimizer="ista"), "white-box optimisation",
                "elastic net β‖δ‖₁ + ‖δ‖₂²", "l1", _EAD,
                "The same elastic-net objective by plain ISTA (eq. 8): no momentum, the textbook proximal method."),
    AttackEntry("cov", "COV (tanh + Adam)", cov, "white-box optimisation", "elastic net β‖δ‖₁ + ‖δ‖₂²", "l1", _EAD,
                "The elastic net through tanh + Adam (Table 1's baseline): subgradient steps never land on zero."),
    AttackEntry("strattack", "StrAttack (ADMM)", strattack, "white-box optimisation",
                "group sparsity Σ‖δ_G‖₂ + ‖δ‖₂² under ‖δ‖∞ ≤ ε", "l2",
                "Xu et al., Structured Adversarial Attack (ICLR 2019)",
                "min c·f + γ‖δ‖₂² + τ Σ_G ‖δ_G‖₂ with ‖δ‖∞ ≤ ε by ADMM: perturbs few groups of pixels."),
    # The metric is the default norm's (ℓ∞); ranking_metric reads a run's own norm from its params.
    AttackEntry("fgm", "FGM", fgm, "gradient baseline", "‖δ‖_p = ε, one step", "linf", _FGM,
                "One step of ε along sign(g), g/‖g‖₂ or the dense g/‖g‖₁; no ε: the least that succeeds, per image."),
    AttackEntry("ifgm", "I-FGM", ifgm, "gradient baseline", "‖δ‖_p ≤ ε", "linf", _IFGM,
                "Ten FGM steps of ε/10 kept in the ε-ball and the box; no ε: the smallest that succeeds, per image."),
    AttackEntry("pgd", "PGD (Madry)", pgd, "gradient baseline", "‖δ‖_p ≤ ε", "linf", _PGD,
                "Projected gradient steps from a random start in the ε-ball (40 steps of ε/30 at ε = 0.3 on MNIST)."),
    AttackEntry("gnm", "GNM (closed form)", gnm, "closed form", "‖η‖_p = ε, one step", "linf", _BALDA,
                "One closed-form step on the linearised margin (eq. 6): ℓ∞ sign, ℓ2 normalised gradient, ℓ1 one pixel."),
    AttackEntry("alg1", "Algorithm 1-T", alg1, "closed form", "‖η‖_p ≤ ε, T steps of ε/T", "linf", _BALDA,
                "T closed-form steps of ε/T on the re-linearised margin, optional dithering (eq. 10); no box."),
    AttackEntry("alg2", "Algorithm 2", alg2, "closed form", "‖η‖_p = ε, one step", "linf", _BALDA,
                "One step against the label's own score only (no max over classes): −ε·sign(∇f_k)."),
    AttackEntry("deepfool", "DeepFool", deepfool, "closed form", "least ‖η‖_p that fools", "linf",
                "Moosavi-Dezfooli et al., DeepFool (CVPR 2016); as framed by " + _BALDA,
                "Proposition 1's minimum-norm step to the nearest linearised boundary, iterated (≤ 50)."),
    # The one attack that aims at nothing: the contract holds it to every promise but finding a targeted example.
    AttackEntry("random-noise", "Random ±ε noise", random_noise, "random baseline", "‖η‖_p = ε, random", "linf",
                _BALDA, "Random ±ε noise, the fooling-ratio curves' baseline: how far chance alone gets at the same ε."),
    AttackEntry("zoo", "ZOO (black-box)", zoo, "black-box", "ℓ2", "l2",
                "Chen et al., ZOO: Zeroth Order Optimization Based Black-box Attacks (AISec 2017); thesis ch. 3",
                "C&W's ℓ2 objective on log-probabilities only, by finite-difference coordinate Adam/Newton; counts queries."),
)}


def get_attack(name: str) -> AttackEntry:
    try:
        return ATTACKS[name]
    except KeyError:
        raise ValueError(f"Unknown attack {name!r}: choose one of {', '.join(ATTACKS)}.") from None
