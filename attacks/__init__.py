"""Adversarial attacks in pure PyTorch: batched, device-agnostic, in [0,1] pixel space, one result type."""

from attacks.base import AttackResult, Callback, IterationState
from attacks.cw import cov, cw_l2
from attacks.ead import ead, project_shrink
from attacks.gradient import fgm, ifgm, pgd
from attacks.model import PixelModel
from attacks.params import Param
from attacks.registry import ATTACKS, AttackEntry, get_attack
from attacks.strattack import strattack
from attacks.targets import all_targets, random_targets
from attacks.zoo import zoo

__all__ = [
    "AttackResult", "Callback", "IterationState", "PixelModel", "Param", "ATTACKS", "AttackEntry", "get_attack",
    "cw_l2", "cov", "ead", "fgm", "ifgm", "pgd", "project_shrink", "strattack", "all_targets", "random_targets",
    "zoo",
]
