"""The perturbation-analysis commands of ``advlens`` (Balda et al.): ``robustness``, ``fooling`` and ``regress``.

    advlens robustness --model mnist-fc --images mnist:0-999 [--norm inf] [--json]
    advlens fooling --model mnist-fc --images mnist:0-999 [--eps 0:0.1:11] [--methods FGSM,Alg1,...] [--out DIR]
        [--json]
    advlens regress --images mnist:0-19 [--attacks inf] [--eps 0.01:0.3:8] [--reference fx] [--json]

``fooling --out DIR`` runs the curve as evaluations (``advlens.evaluation``): each method is one registered attack
swept over ε (``interpret.robustness.method_attack``), untargeted, on the correctly classified digits, one row per
(digit, method, ε) in DIR/results.db; the table is then read from the database (an interrupted curve resumes,
``advlens report DIR`` re-reports the rows). Without ``--out`` it is the one-pass ``fooling_curves`` (the app's
slider), which gives the same numbers.

Bad arguments are one sentence (``advlens: error: …``, status 2), as every other command.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import torch

if TYPE_CHECKING:
    from advlens.evaluation.spec import AttackSpec

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
    f.add_argument("--out", default=None, help="a results folder: run the curve as evaluations into DIR/results.db "
                                               "(resumable; `advlens report DIR`) [one pass, nothing stored]")
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


def fooling_specs(methods: Sequence[str], grid: Sequence[float], norm: str = "inf", clip: bool = False,
                  seed: int = 0) -> dict[str, list[Optional[AttackSpec]]]:
    """Per method, one ``AttackSpec`` per ε of the grid, swept over ``epsilon`` (None at ε = 0: nothing to run)."""
    from advlens.evaluation.spec import AttackSpec
    from attacks.registry import get_attack
    from interpret.robustness import method_attack

    out: dict[str, list[Optional[AttackSpec]]] = {}
    for m in methods:
        attack, given = method_attack(m, norm, clip, seed)
        check = get_attack(attack).param("epsilon")
        specs: list[Optional[AttackSpec]] = []
        for eps in grid:
            if eps == 0:
                specs.append(None)
                continue
            try:
                check.check(float(eps))
            except ValueError:
                raise ValueError(f"--eps with --out: each ε is 0 or between {check.low:g} and {check.high:g}; "
                                 f"got {eps!r}.") from None
            specs.append(AttackSpec(attack, {**given, "epsilon": float(eps)}, sweep="epsilon"))
        out[m] = specs
    return out


def fooling_from_store(directory: Any, model: str, specs: dict[str, list[Optional[AttackSpec]]],
                       images: Sequence[str]) -> dict[str, np.ndarray]:
    """Fooling ratio (%) per method and ε from a results folder: the share of ``images`` (the correctly classified
    digits) whose stored row says fooled on the unclipped x + η (the report's ``extra.faithful_success``; with
    ``--clip`` the same as the row's success). ε = 0 is 0 (x + 0 = x is classified correctly)."""
    from advlens.evaluation.store import ResultStore

    wanted = set(images)
    out = {}
    with ResultStore(directory, create=False) as store:
        for m, column in specs.items():
            ratios = []
            for spec in column:
                if spec is None:
                    ratios.append(0.0)
                    continue
                rows = store.conn.execute(
                    "SELECT image, json_extract(report, '$.extra.faithful_success') FROM results "
                    "WHERE model = ? AND attack = ? AND params = ? AND target = -1", (model, spec.attack, spec.key))
                hits = {image: bool(v) for image, v in rows if image in wanted}
                if len(hits) < len(wanted):
                    raise ValueError(f"{directory} lacks {len(wanted) - len(hits)} of the {m} rows at ε = "
                                     f"{spec.sweep_value}: run the same command again to finish the curve.")
                ratios.append(100.0 * sum(hits.values()) / len(wanted))
            out[m] = np.asarray(ratios)
    return out


def _fooling_runner(args: argparse.Namespace, methods: Sequence[str], grid: list[float]
                    ) -> Optional[tuple[dict[str, np.ndarray], int]]:
    """The curve as evaluations into ``args.out``: (curves, correctly classified digits); None if interrupted."""
    from advlens.evaluation import evaluate
    from advlens.evaluation.runner import INTERRUPTED, RowsProgress

    specs = fooling_specs(methods, grid, args.norm, args.clip, args.seed)
    refs = list(dict.fromkeys(f"mnist:{i}" for i in parse_images(args.images)))
    _classifier(args.model)
    kept: list[str] = []
    progress = RowsProgress()

    def planned(plan: Any) -> None:
        skipped = set(plan.skipped)
        kept.extend(r for r in refs if r not in skipped)

    command = ["advlens", "fooling", "--model", args.model, "--images", args.images, "--eps", args.eps,
               *(["--methods", args.methods] if args.methods else []), "--norm", args.norm,
               *(["--clip"] if args.clip else []), "--seed", str(args.seed), "--out", str(args.out)]
    flat = [s for column in specs.values() for s in column if s is not None]
    try:
        if flat:
            evaluate(args.model, flat, refs, "untargeted", args.out, seed=args.seed, command=command,
                     on_rows=progress, on_plan=planned)
        else:  # every ε is 0: nothing to run, every ratio is 0
            from interpret.robustness import predictions

            x, y = load_digits(parse_images(args.images))
            kept.extend(r for r, ok in zip(refs, (predictions(_classifier(args.model), x) == y).tolist()) if ok)
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return None
    finally:
        progress.close()
    if not kept:
        raise ValueError("None of these images is classified correctly: fooling ratios are over correct ones.")
    if not flat:
        return {m: np.zeros(len(grid)) for m in methods}, len(kept)
    return fooling_from_store(args.out, args.model, specs, kept), len(kept)


def _fooling(args: argparse.Namespace) -> int:
    from interpret.robustness import METHODS, fooling_curves

    grid = parse_grid(args.eps)
    methods = METHODS if args.methods is None else tuple(m.strip() for m in args.methods.split(",") if m.strip())
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"--methods takes names from {', '.join(METHODS)}; got {args.methods!r}.")
    n = len(parse_images(args.images))
    started = time.perf_counter()
    if args.out is not None:
        ran = _fooling_runner(args, methods, grid)
        if ran is None:
            return 130
        curves, n_correct = ran
    else:
        from interpret.robustness import predictions

        x, y = load_digits(parse_images(args.images))
        model = _classifier(args.model)
        curves = fooling_curves(model, x, y, grid, methods=methods, norm=args.norm, clip=args.clip, seed=args.seed)
        n_correct = int((predictions(model, x) == y).sum())
    seconds = time.perf_counter() - started
    if args.json:
        print(json.dumps({"model": args.model, "n": n, "n_correct": n_correct, "epsilon": grid, "clip": args.clip,
                          "seconds": round(seconds, 2), "out": args.out,
                          "fooling_ratio": {m: [round(float(v), 2) for v in c] for m, c in curves.items()}}, indent=2))
        return 0
    print("ε        " + "".join(f"{m:>9s}" for m in curves))
    for j, e in enumerate(grid):
        print(f"{e:<8.4f} " + "".join(f"{curves[m][j]:9.1f}" for m in curves))
    where = f"; rows in {args.out}/results.db (`advlens report {args.out}`: ASR there is judged on clip(x+η))" \
        if args.out is not None and not args.clip else (f"; rows in {args.out}/results.db" if args.out else "")
    print(f"({args.model}, {n} digits, fooling ratio in % of the {n_correct} correctly classified, {seconds:.1f} s"
          f"{where})",
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
