"""`advlens`: the attack engine from the command line, for scripts and batch runs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

import torch

from advlens.engine import ATTACKS, parse_device, run_attack, summary
from advlens.models import REGISTRY, ModelUnavailable, get_spec, load_model


class UsageError(Exception):
    """Bad arguments: reported as one line on stderr, exit status 2, nothing written."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        raise UsageError(message)


def _positive(kind: type) -> callable:
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    parse.__name__ = f"positive {kind.__name__}"
    return parse


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be zero or positive, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="advlens", description="Adversarial attacks you can see: C&W, EAD and StrAttack.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("models", help="list the models and whether their weights are here")
    images = sub.add_parser("images", help="list the bundled gallery images")
    images.add_argument("--dataset", choices=("mnist", "imagenet"), default=None)

    a = sub.add_parser("attack", help="attack one image and write the result to --out")
    a.add_argument("--model", default="mnist-cnn", help=f"one of {', '.join(REGISTRY)}")
    a.add_argument("--image", required=True, help="mnist:N, imagenet:N or an image file")
    a.add_argument("--attack", choices=tuple(ATTACKS), default="ead")
    goal = a.add_mutually_exclusive_group()
    goal.add_argument("--target", type=int, help="target class (default: a random incorrect class, from --seed)")
    goal.add_argument("--untargeted", action="store_true")
    a.add_argument("--beta", type=_non_negative, help="ℓ1 weight β (EAD, COV)")
    a.add_argument("--kappa", type=_non_negative, help="confidence κ")
    a.add_argument("--c", dest="initial_const", type=_positive(float), help="initial constant c")
    a.add_argument("--steps", type=_positive(int), help="iterations per binary-search step")
    a.add_argument("--binary-steps", dest="binary_search_steps", type=_positive(int), help="binary-search steps over c")
    a.add_argument("--lr", dest="learning_rate", type=_positive(float), help="step size α0 (EAD) or Adam rate")
    a.add_argument("--rule", dest="decision_rule", choices=("en", "l1"), help="EAD decision rule")
    a.add_argument("--no-abort-early", dest="abort_early", action="store_false", default=None)
    a.add_argument("--group-size", type=_positive(int), help="StrAttack group side r")
    a.add_argument("--stride", type=_positive(int), help="StrAttack group stride S")
    a.add_argument("--epsilon", type=_positive(float), help="StrAttack ℓ∞ bound ε")
    a.add_argument("--rho", type=_positive(float), help="StrAttack ADMM penalty ρ")
    a.add_argument("--tau", type=_non_negative, help="StrAttack group-sparsity weight τ")
    a.add_argument("--gamma", type=_non_negative, help="StrAttack ℓ2 weight γ")
    a.add_argument("--no-refine", dest="refine", action="store_false", default=None)
    a.add_argument("--device", default="auto", help="auto, cpu or cuda")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--explain", action="store_true", help="also write heat map, group grid, ASM and CAM images")
    a.add_argument("--out", required=True, type=Path, help="directory for the PNGs and result.json")
    return parser


def _cmd_models() -> int:
    for spec in REGISTRY.values():
        where = "bundled" if spec.offline else "downloaded on first use (torchvision cache)"
        h, w = spec.input_size
        print(f"{spec.name:20s} {spec.title:40s} {spec.channels}×{h}×{w}  {spec.num_classes} classes  {where}")
    return 0


def _cmd_images(dataset: Optional[str]) -> int:
    from advlens.images import gallery

    for ds in (dataset,) if dataset else ("mnist", "imagenet"):
        for item in gallery(ds):
            label = "?" if item.label is None else item.label
            print(f"{item.ref:14s} label {label!s:5s} {item.title}")
    return 0


_ATTACK_ARGS = ("beta", "kappa", "initial_const", "steps", "binary_search_steps", "learning_rate", "decision_rule",
                "abort_early", "group_size", "stride", "epsilon", "rho", "tau", "gamma", "refine")


def _cmd_attack(args: argparse.Namespace) -> int:
    from advlens.images import load_image, save_png
    from interpret.perturbation import amplified

    spec = get_spec(args.model)
    device = parse_device(args.device)
    params = {k: getattr(args, k) for k in _ATTACK_ARGS if getattr(args, k) is not None}
    info = ATTACKS[args.attack]
    unsupported = sorted(set(params) - set(info.params))
    if unsupported:
        raise UsageError(f"{info.title} does not take --{unsupported[0].replace('_', '-')}")
    if args.target is not None and not 0 <= args.target < spec.num_classes:
        raise UsageError(f"--target must be a class of {spec.name} (0–{spec.num_classes - 1}), got {args.target}")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} exists and is not a directory")

    image = load_image(args.image, spec)
    model = load_model(args.model, device)
    torch.manual_seed(args.seed)
    x = image.tensor.to(device)
    label = image.label if image.label is not None else int(model(x).argmax(1))
    if args.untargeted:
        target = None
    elif args.target is not None:
        if args.target == label:
            raise UsageError(f"--target {args.target} is the image's own class; pick another")
        target = torch.tensor([args.target], device=device)
    else:
        offset = int(torch.randint(1, spec.num_classes, (1,), generator=torch.Generator().manual_seed(args.seed)))
        target = torch.tensor([(label + offset) % spec.num_classes], device=device)

    result = run_attack(args.attack, model, x, torch.tensor([label], device=device), target, **params)
    report = {"model": args.model, "image": image.ref, "notes": image.notes, **summary(result, model)}
    report.update(_group_counts(result, spec, params))
    explanation = None
    args.out.mkdir(parents=True, exist_ok=True)
    if args.explain:
        from advlens.explain import explain

        explanation = explain(model, spec, result, args.out)
        report.update(explanation)
    save_png(result.original[0], args.out / "original.png")
    save_png(result.adversarial[0], args.out / "adversarial.png")
    save_png(amplified(result.perturbation[0:1])[0], args.out / "perturbation.png")
    (args.out / "result.json").write_text(json.dumps(report, indent=2) + "\n")
    names = spec.class_names
    status = "success" if report["success"] else "failed"
    print(f"{status}: {names[report['pred_before']]} → {names[report['pred_after']]}  "
          f"ℓ0 {report['l0']}  ℓ1 {report['l1']:.3f}  ℓ2 {report['l2']:.3f}  ℓ∞ {report['linf']:.3f}  "
          f"{report['iterations']} it  {report['seconds']:.1f} s on {report['device']}  → {args.out}")
    return 0


def _group_counts(result, spec, params: dict) -> dict:
    try:
        from interpret.groups import default_grouping, groups_nonzero, groups_total
    except ImportError:
        return {}
    size, stride = default_grouping(spec.input_size)
    size, stride = params.get("group_size", size), params.get("stride", stride)
    delta = result.perturbation
    return {"groups_nonzero": int(groups_nonzero(delta, size, stride)[0]),
            "groups_total": int(groups_total(tuple(delta.shape), size, stride)), "group_size": size, "stride": stride}


def main(argv: Optional[Sequence[str]] = None) -> int:
    from advlens.images import ImageError

    try:
        args = build_parser().parse_args(argv)
        if args.command == "models":
            return _cmd_models()
        if args.command == "images":
            return _cmd_images(args.dataset)
        return _cmd_attack(args)
    except (UsageError, ValueError, ModelUnavailable, ImageError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"advlens: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
