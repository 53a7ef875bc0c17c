"""The perturbation-analysis commands of ``advlens`` (Balda et al.): ``robustness``, ``fooling`` and ``regress``.

    advlens robustness --model mnist-fc --images mnist:0-999 [--norm inf] [--json]
    advlens fooling --model mnist-fc --images mnist:0-999 [--eps 0:0.1:11] [--methods FGSM,Alg1,...] [--json]
    advlens regress --images mnist:0-19 [--attacks inf] [--eps 0.01:0.3:8] [--reference fx] [--json]

Bad arguments are one sentence (``advlens: error: …``, status 2), as every other command.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np
import torch

RANGE_HELP = "held-out digits: mnist:A-B (inclusive), mnist:N, or a comma-separated mix"


def add_parsers(sub: Any) -> None:
    r = sub.add_parser("robustness", help="ρ̂₁, ρ̂₂ and DeepFool's ε₉₉ over digits (Balda et al., Table 3)")
    r.add_argument("--model", default="mnist-fc", help="a classifier of `advlens models`")
    r.add_argument("--images", required=True, help=RANGE_HELP)
    r.add_argument("--norm", choices=("inf", "2"), default="inf", help="p of the measures (the paper: inf)")
    r.add_argument("--json", action="store_true", help="as JSON (keys rho1, rho2, deepfool_eps99, n, …)")

    f = sub.add_parser("fooling", help="fooling ratio against ε for the closed-form attacks (Balda et al., Fig. 3)")
    f.add_argument("--model", default="mnist-fc", help="a classifier of `advlens models`")
    f.add_argument("--images", required=True, help=RANGE_HELP)
    f.add_argument("--eps", default="0:0.1:11", help="ε grid: LOW:HIGH:COUNT or a comma-separated list [0:0.1:11]")
    f.add_argument("--methods", default=None, help="comma-separated, from FGSM, Alg1, Alg1-5, Alg1-10, Alg2, PGD, "
                                                   "DeepFool, random [all]")
    f.add_argument("--norm", choices=("inf", "2"), default="inf")
    f.add_argument("--clip", action="store_true", help="judge clip(x+η) to [0,1] (a deviation: the paper has no box)")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--json", action="store_true")

    g = sub.add_parser("regress", help="regression attacks on the MNIST autoencoder: output vs input PSNR (Fig. 4)")
    g.add_argument("--model", default="mnist-ae", help="a regression model (mnist-ae)")
    g.add_argument("--images", default="mnist:0-19", help=RANGE_HELP + " [mnist:0-19]")
    g.add_argument("--attacks", default="inf", help="a family (2, inf, pixel) or comma-separated names [inf]")
    g.add_argument("--eps", default=None, help="ε grid (LOW:HIGH:COUNT or a list) [ℓ∞ 0.01:0.3:8, ℓ2 0.3:8:8, "
                                               "pixel 0.1:1:6]")
    g.add_argument("--reference", choices=("fx", "x"), default="fx", help="y = f(x) (the paper's) or y = x")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--json", action="store_true")


def parse_images(text: str) -> list[int]:
    """Held-out digit indices from 'mnist:0-99', 'mnist:5' or a comma-separated mix."""
    out: list[int] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if not part.startswith("mnist:"):
            raise ValueError(f"--images takes held-out digits such as mnist:0-99; got {part!r}.")
        body = part[len("mnist:"):]
        try:
            if "-" in body:
                lo, hi = (int(v) for v in body.split("-", 1))
            else:
                lo = hi = int(body)
        except ValueError:
            raise ValueError(f"--images takes held-out digits such as mnist:0-99; got {part!r}.") from None
        if not 0 <= lo <= hi <= 999:
            raise ValueError(f"--images: the held-out digits are mnist:0 to mnist:999; got {part!r}.")
        out.extend(range(lo, hi + 1))
    if not out:
        raise ValueError("--images is empty: pass held-out digits such as mnist:0-99.")
    return out


def load_digits(indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    from advlens.images import _mnist_heldout

    images, labels = _mnist_heldout()
    idx = np.asarray(indices)
    x = torch.from_numpy(images[idx]).float().div(255).unsqueeze(1)
    return x, torch.from_numpy(labels[idx]).long()


def parse_grid(text: str) -> list[float]:
    try:
        if ":" in text:
            lo, hi, count = text.split(":")
            n = int(count)
            if n < 1 or n > 1000:
                raise ValueError
            return [float(v) for v in np.linspace(float(lo), float(hi), n)]
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--eps takes LOW:HIGH:COUNT (COUNT 1–1000) or a comma-separated list; got {text!r}.") from None
    if not values or any(not np.isfinite(v) or v < 0 for v in values):
        raise ValueError(f"--eps values must be finite and ≥ 0; got {text!r}.")
    return values


def _classifier(name: str):
    from advlens.models import REGISTRY, REGRESSORS, ModelUnavailable, load_model

    if name in REGRESSORS:
        raise ValueError(f"{name} is a regression model: use `advlens regress --model {name}`.")
    if name not in REGISTRY or REGISTRY[name].dataset != "mnist":
        mnist = [n for n, s in REGISTRY.items() if s.dataset == "mnist"]
        raise ModelUnavailable(f"--model must be an MNIST classifier: one of {', '.join(mnist)}; got {name!r}.")
    return load_model(name)


def run(args: argparse.Namespace) -> int:
    if args.command == "robustness":
        return _robustness(args)
    if args.command == "fooling":
        return _fooling(args)
    return _regress(args)


def _robustness(args: argparse.Namespace) -> int:
    from interpret.robustness import robustness

    x, y = load_digits(parse_images(args.images))
    model = _classifier(args.model)
    started = time.perf_counter()
    r = robustness(model, x, y, args.norm)
    out = {"model": args.model, **r.as_dict(), "seconds": round(time.perf_counter() - started, 2)}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"{args.model}: {r.n_correct}/{r.n} correct; ℓ{args.norm}: ρ̂₁ = {out['rho1']}, ρ̂₂ = {out['rho2']}, "
              f"DeepFool ε₉₉ = {out['deepfool_eps99']} (fooled {100 * r.deepfool_fooled:.1f}%) in {out['seconds']} s")
    return 0


def _fooling(args: argparse.Namespace) -> int:
    from interpret.robustness import METHODS, fooling_curves

    grid = parse_grid(args.eps)
    methods = METHODS if args.methods is None else tuple(m.strip() for m in args.methods.split(",") if m.strip())
    x, y = load_digits(parse_images(args.images))
    model = _classifier(args.model)
    started = time.perf_counter()
    curves = fooling_curves(model, x, y, grid, methods=methods, norm=args.norm, clip=args.clip, seed=args.seed)
    seconds = time.perf_counter() - started
    if args.json:
        print(json.dumps({"model": args.model, "n": len(y), "epsilon": grid, "clip": args.clip,
                          "seconds": round(seconds, 2),
                          "fooling_ratio": {m: [round(v, 2) for v in c] for m, c in curves.items()}}, indent=2))
        return 0
    print("ε        " + "".join(f"{m:>9s}" for m in curves))
    for j, e in enumerate(grid):
        print(f"{e:<8.4f} " + "".join(f"{curves[m][j]:9.1f}" for m in curves))
    print(f"({args.model}, {len(y)} digits, fooling ratio in % of the correctly classified, {seconds:.1f} s)",
          file=sys.stderr)
    return 0


DEFAULT_REGRESS_GRIDS = {"inf": "0.01:0.3:8", "2": "0.3:8:8", "pixel": "0.1:1:6"}


def _regress(args: argparse.Namespace) -> int:
    from advlens.models import load_regressor
    from attacks.regression import CURVE_METHODS, psnr_curves

    if args.attacks in CURVE_METHODS:
        family, methods = args.attacks, CURVE_METHODS[args.attacks]
    else:
        methods = tuple(m.strip() for m in args.attacks.split(",") if m.strip())
        known = {m for ms in CURVE_METHODS.values() for m in ms}
        bad = [m for m in methods if m not in known]
        if bad or not methods:
            raise ValueError(f"--attacks takes 2, inf, pixel or names from {', '.join(sorted(known))}; "
                             f"got {args.attacks!r}.")
        family = "inf"
    grid = parse_grid(args.eps or DEFAULT_REGRESS_GRIDS[family])
    x, _ = load_digits(parse_images(args.images))
    model = load_regressor(args.model)
    started = time.perf_counter()
    curves = psnr_curves(model, x, grid, methods, ref=args.reference, seed=args.seed)
    seconds = time.perf_counter() - started
    if args.json:
        print(json.dumps({"model": args.model, "n": x.shape[0], "reference": args.reference,
                          "seconds": round(seconds, 2),
                          "curves": {m: {k: [round(float(v), 3) for v in a] for k, a in c.items()}
                                     for m, c in curves.items()}}, indent=2))
        return 0
    for m, c in curves.items():
        print(m)
        for e, pi, po in zip(c["epsilon"], c["input_psnr"], c["output_psnr"]):
            print(f"  ε {e:7.4f}   input PSNR {pi:6.2f} dB   output PSNR {po:6.2f} dB")
    print(f"({args.model}, {x.shape[0]} digits, y = {'f(x)' if args.reference == 'fx' else 'x'}, {seconds:.1f} s)",
          file=sys.stderr)
    return 0
