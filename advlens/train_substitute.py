"""The substitute-model black-box baseline (Papernot et al., as the thesis runs it for Table 1).

    python -m advlens.train_substitute [--holdout 150] [--rounds 5] [--epochs 10] [--lmbda 0.1] [--seed 0] [--out DIR]
    python -m advlens.train_substitute --transfer 20 [--cw-steps 2000]   # + FGSM / C&W transfer table

The attacker owns 150 digits (the last 150 of the held-out split, never trained on and disjoint from the gallery
digits the tests attack) and may only ask the target (``mnist-cnn``) for its *label*: each label is one query of
:class:`attacks.oracle.QueryOracle` (the argmax of the probabilities it answers), counted. A substitute of the same
architecture (:class:`advlens.nets.MnistCNN`, the baseline's best case) is trained on the labelled set; then, for
``--rounds`` rounds of Jacobian-based augmentation, each point x adds x + λ·sign(∂S(x)_{O(x)}/∂x) (Papernot et al.,
eq. 4), clipped to [0, 1], and the new points are labelled by the target: 150·2⁵ = 4,800 points and label queries
at the thesis's 5 rounds. λ's sign flips every 3 rounds as in cleverhans' ``mnist_blackbox.py``
(``lmbda_coef = 2·int(int(ρ/3) ≠ 0) − 1``). Training per round: Adam, learning rate 1e-3, batch 32, ``--epochs``
epochs (cleverhans: 10).

Writes ``advlens/data/mnist_substitute.pt`` (float32 state dict) and ``mnist_substitute.json`` (label queries,
agreement with the target on the other held-out digits, settings, seconds, command), or the same two files in
``--out DIR`` (where an earlier run's files there are the cache). The model registry offers it
as ``mnist-substitute``, so any attack can be crafted on it and judged on the target with the CLI's
``--craft-on mnist-substitute``. ``--transfer N`` then crafts targeted FGSM (ε = 0.4) and C&W (κ = 20, 2,000
iterations per c) on the substitute for the first N gallery digits (a fixed random wrong target each, seed 0) and
reports their success on the target (thesis Table 1: 7.48% and 26.74% targeted, against ZOO's 98.9%).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor, nn

from advlens.models import DATA_DIR
from advlens.nets import MnistCNN
from advlens.train_mnist import command, fit, save_net
from attacks.cw import Adam
from attacks.model import PixelModel
from attacks.oracle import QueryOracle

SUBSTITUTE_WEIGHTS = DATA_DIR / "mnist_substitute.pt"


@dataclass(frozen=True)
class SubstituteSettings:
    holdout: int = 150  # the attacker's own digits (thesis: 150)
    rounds: int = 5  # Jacobian augmentation rounds (thesis: 5, so 6 training rounds)
    epochs: int = 10  # training epochs per round (cleverhans: 10)
    lmbda: float = 0.1  # λ, the augmentation step (thesis: 0.1)
    learning_rate: float = 1e-3
    batch_size: int = 32
    seed: int = 0


def attacker_digits(holdout: int) -> Tensor:
    """The attacker's digits: the last ``holdout`` of the held-out split, (holdout, 1, 28, 28) in [0, 1]."""
    from advlens.images import _mnist_heldout

    images, _ = _mnist_heldout()
    if not 1 <= holdout <= len(images) - 100:
        raise ValueError(f"--holdout must be from 1 to {len(images) - 100} (the first 100 digits are the gallery "
                         f"the attacks are judged on); got {holdout}.")
    return torch.from_numpy(images[-holdout:].astype(np.float32) / 255.0)[:, None]


def label_queries(oracle: QueryOracle, x: Tensor) -> Tensor:
    """The target's labels for ``x``: one query per image, nothing but the argmax leaves the oracle's answer."""
    return oracle.probabilities(x, [0], per_owner=x.shape[0]).argmax(1).cpu()  # all counted for the one attacker


def jacobian_augment(substitute: PixelModel, x: Tensor, labels: Tensor, lmbda: float) -> Tensor:
    """x + λ·sign(∂S(x)_y/∂x) for each point and its oracle label y (Papernot et al., eq. 4), clipped to [0, 1]."""
    x = x.clone().requires_grad_(True)
    score = substitute(x).gather(1, labels[:, None]).sum()
    (grad,) = torch.autograd.grad(score, x)
    return (x.detach() + lmbda * grad.sign()).clamp(0.0, 1.0)


class _ConstantAdam:
    """attacks.cw.Adam on each parameter at a constant rate: torch.optim.Adam's arithmetic without its first-step
    import of torch._dynamo (8 s here)."""

    def __init__(self, net: nn.Module, lr: float, total_steps: int) -> None:
        self.params = list(net.parameters())
        self.adams = [Adam(p, lr) for p in self.params]

    def step(self, loss: Tensor) -> None:
        for adam, grad in zip(self.adams, torch.autograd.grad(loss, self.params)):
            adam.step(grad)


def _train(net: nn.Module, x: Tensor, y: Tensor, s: SubstituteSettings, generator: torch.Generator) -> None:
    """One round: ``s.epochs`` epochs of batches of ``s.batch_size``, unshifted, dropout on, Adam at a constant rate."""
    fit(net, x, y, epochs=s.epochs, seed=generator, batch=s.batch_size, lr=s.learning_rate, max_shift=0,
        optimiser=_ConstantAdam, log=None)


def train_substitute(target: PixelModel, s: SubstituteSettings = SubstituteSettings()) -> tuple[PixelModel, dict]:
    """Papernot et al.'s substitute training: the substitute and its record (label queries, seconds, settings)."""
    started = time.perf_counter()
    torch.manual_seed(s.seed)
    generator = torch.Generator().manual_seed(s.seed)
    oracle = QueryOracle(target, 1)
    x = attacker_digits(s.holdout)
    y = label_queries(oracle, x)
    net = MnistCNN()
    substitute = PixelModel(net, (0.0,), (1.0,), input_size=(28, 28), num_classes=10)
    for rho in range(s.rounds + 1):
        _train(net, x, y, s, generator)
        if rho == s.rounds:
            break
        coef = 2 * int(int(rho / 3) != 0) - 1  # cleverhans: λ's sign alternates every 3 rounds
        new = jacobian_augment(substitute, x, y, coef * s.lmbda)
        x, y = torch.cat([x, new]), torch.cat([y, label_queries(oracle, new)])
    record = {"label_queries": oracle.rows_seen, "training_points": int(x.shape[0]),
              "seconds": round(time.perf_counter() - started, 1), "settings": asdict(s)}
    return substitute, record


def agreement(substitute: PixelModel, target: PixelModel, count: int = 500) -> float:
    """How often the substitute and the target agree on held-out digits the attacker never saw (gallery 100…)."""
    from advlens.images import _mnist_heldout

    images, _ = _mnist_heldout()
    x = torch.from_numpy(images[100:100 + count].astype(np.float32) / 255.0)[:, None]
    with torch.no_grad():
        return float((substitute(x).argmax(1) == target(x).argmax(1)).float().mean())


def transfer(substitute: PixelModel, target: PixelModel, count: int, *, cw_steps: int = 2000,
             cw_binary_steps: int = 9) -> dict[str, Any]:
    """Targeted FGSM (ε = 0.4) and C&W (κ = 20) crafted on the substitute, judged on the target (Table 1's rows)."""
    from advlens.images import load_image
    from advlens.models import get_spec
    from attacks.cw import cw_l2
    from attacks.gradient import fgm
    from attacks.targets import random_targets

    spec = get_spec("mnist-cnn")
    loaded = [load_image(f"mnist:{i}", spec) for i in range(count)]
    x = torch.cat([img.tensor for img in loaded])
    labels = torch.tensor([img.label for img in loaded])
    targets = random_targets(labels, 10, torch.Generator().manual_seed(0))
    out: dict[str, Any] = {"images": count}
    runs = {"fgsm": lambda: fgm(substitute, x, labels, targets, norm="inf", epsilon=0.4),
            "cw": lambda: cw_l2(substitute, x, labels, targets, kappa=20.0, steps=cw_steps,
                                binary_search_steps=cw_binary_steps)}
    for name, run in runs.items():
        started = time.perf_counter()
        result = run()
        with torch.no_grad():
            on_target = target(result.adversarial).argmax(1) == targets
        l2 = (result.adversarial - x).flatten(1).norm(dim=1)
        out[name] = {"transfer_success": float(on_target.float().mean()),
                     "substitute_success": float(result.success.float().mean()),
                     "mean_l2": float(l2[on_target].mean()) if on_target.any() else None,
                     "seconds": round(time.perf_counter() - started, 1)}
    return out


def load_substitute(path: Path = SUBSTITUTE_WEIGHTS) -> Optional[PixelModel]:
    if not path.exists():
        return None
    net = MnistCNN()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return PixelModel(net, (0.0,), (1.0,), input_size=(28, 28), num_classes=10)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m advlens.train_substitute", description=__doc__.split("\n")[0])
    defaults = SubstituteSettings()
    parser.add_argument("--holdout", type=int, default=defaults.holdout)
    parser.add_argument("--rounds", type=int, default=defaults.rounds)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--lmbda", type=float, default=defaults.lmbda)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--retrain", action="store_true", help="train even when the cached substitute exists")
    parser.add_argument("--transfer", type=int, default=0, metavar="N", help="then craft on it for N gallery digits")
    parser.add_argument("--cw-steps", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="folder of the weights and their record")
    args = parser.parse_args(argv)
    from advlens.models import load_model

    target = load_model("mnist-cnn")
    settings = SubstituteSettings(holdout=args.holdout, rounds=args.rounds, epochs=args.epochs, lmbda=args.lmbda,
                                  seed=args.seed)
    weights = args.out / SUBSTITUTE_WEIGHTS.name
    substitute = None if args.retrain else load_substitute(weights)
    if substitute is not None and weights.with_suffix(".json").exists():
        record = json.loads(weights.with_suffix(".json").read_text())
        if record.get("settings") != asdict(settings):
            substitute = None  # cached for other settings
    if substitute is None:
        substitute, record = train_substitute(target, settings)
        record["agreement"] = agreement(substitute, target)
        record["command"] = command("train_substitute", argv)
        save_net(substitute.net, weights, record)
        print(f"trained in {record['seconds']} s: {record['label_queries']} label queries, "
              f"agrees with the target on {record['agreement']:.1%} of 500 unseen digits → {weights}")
    else:
        print(f"cached: {weights} ({record['label_queries']} label queries)")
    if args.transfer:
        print(json.dumps(transfer(substitute, target, args.transfer, cw_steps=args.cw_steps), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
