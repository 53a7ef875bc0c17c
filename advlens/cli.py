"""`advlens`: the attack engine from the command line, for scripts and batch runs.

The flags of ``advlens attack`` are generated from the chosen attack's parameter schema
(``attacks.registry``): ``advlens attack --attack strattack --help`` lists exactly StrAttack's parameters, with
their defaults and allowed values, and every value is checked by the schema before anything runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, Optional

from advlens.models import REGISTRY, ModelUnavailable
from attacks.params import Param
from attacks.registry import ATTACKS, AttackEntry, get_attack

DEFAULT_ATTACK = "ead"


class UsageError(Exception):
    """Bad arguments: reported as one line on stderr, exit status 2, nothing written."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not argparse's usage block
        raise UsageError(message)


def _help(p: Param) -> str:
    default = "auto" if p.default is None else p.default
    return f"{p.help} [{p.allowed()}; default {default}]".replace("%", "%%")


def add_param_flags(parser: argparse.ArgumentParser, entry: AttackEntry) -> None:
    """One flag per parameter of ``entry`` (plus its old spellings); values stay text until the schema parses them."""
    group = parser.add_argument_group(f"{entry.title} parameters ({entry.name})")
    for p in entry.params:
        if p.type is bool and not p.choices:
            group.add_argument(*p.flags, dest=p.name, action=argparse.BooleanOptionalAction, default=None,
                               help=_help(p))
        else:
            metavar = "{" + ",".join(map(str, p.choices)) + "}" if p.choices else p.type.__name__.upper()
            group.add_argument(*p.flags, dest=p.name, default=None, metavar=metavar, help=_help(p))


def build_parser(attack: str = DEFAULT_ATTACK) -> argparse.ArgumentParser:
    parser = _Parser(prog="advlens", allow_abbrev=False,
                     description="Adversarial attacks you can see: " + ", ".join(e.title for e in ATTACKS.values()))
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("models", help="list the models and whether their weights are here")
    images = sub.add_parser("images", help="list the bundled gallery images")
    images.add_argument("--dataset", choices=("mnist", "imagenet"), default=None)
    listing = sub.add_parser("attacks", help="list the attacks with their parameters, defaults and ranges")
    listing.add_argument("--json", action="store_true", help="as JSON")

    a = sub.add_parser("attack", allow_abbrev=False, help="attack one image and write the result to --out",
                       description="Attack one image. `advlens attack --attack NAME --help` lists NAME's parameters.")
    a.add_argument("--attack", choices=tuple(ATTACKS), default=DEFAULT_ATTACK, help="the attack (default ead)")
    a.add_argument("--model", default="mnist-cnn", help=f"one of {', '.join(REGISTRY)}")
    a.add_argument("--image", required=True, help="mnist:N, imagenet:N or an image file")
    a.add_argument("--craft-on", default=None, metavar="SOURCE[,SOURCE2]",
                   help="transfer: craft on these models (several: the mean of their logits), judge on --model")
    a.add_argument("--squeeze", nargs="?", const="bit_depth_1,median_filter_2_2", default=None, metavar="SQUEEZERS",
                   help="judge with a feature-squeezing detector around --model (MNIST; threshold at 5%% false "
                        "positives on held-out digits mnist:500-999); success = fooled and not detected "
                        "[default squeezers bit_depth_1,median_filter_2_2]")
    goal = a.add_mutually_exclusive_group()
    goal.add_argument("--target", help="target class, or 'all' for every incorrect class in one batch (the papers' "
                                       "best/average/worst cases); default: a random incorrect class from --seed")
    goal.add_argument("--untargeted", action="store_true")
    a.add_argument("--device", default="auto", help="auto, cpu or cuda")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--explain", action="store_true", help="also write heat map, group grid, ASM and CAM images")
    a.add_argument("--out", required=True, type=Path, help="directory for the PNGs and result.json")
    add_param_flags(a, get_attack(attack))

    e = sub.add_parser("evaluate", allow_abbrev=False, help="the papers' protocol over many images, into a database",
                       description="Attack many images × targets with one or more attacks and store one row per case "
                                   "in DIR/results.db. Running the same command again resumes.")
    e.add_argument("--model", default="mnist-cnn", help=f"one of {', '.join(REGISTRY)}")
    e.add_argument("--attacks", default=None, help="attacks with their defaults, comma-separated: cw,ead")
    e.add_argument("--attack", dest="attack_specs", action="append", default=[], metavar="NAME:K=V,...",
                   help="one attack with parameters, e.g. 'ead:beta=0.01,decision_rule=l1' (repeatable)")
    e.add_argument("--images", required=True, help="mnist:0-99, gallery refs, image files or a folder, comma-separated")
    e.add_argument("--targets", default="all", help="all (best/average/worst cases), random, next, least-likely or "
                                                    "untargeted [default all]")
    e.add_argument("--sweep", default=None, metavar="PARAM=V1,V2,...", help="one row set per value, e.g. kappa=0,10")
    e.add_argument("--craft-on", default=None, metavar="SOURCE[,SOURCE2]",
                   help="transfer: craft on these models (several: the mean of their logits), judge on --model")
    e.add_argument("--seed", type=int, default=0, help="fixes the random targets and random starts")
    e.add_argument("--device", default="auto", help="auto, cpu or cuda")
    e.add_argument("--chunk", type=int, default=None, help="cases per batch (default: what the device holds)")
    e.add_argument("--backend", default="in-process", help="in-process (default) or ray")
    e.add_argument("--address", default=None, help="a Ray cluster's address (default: RAY_ADDRESS, else a local one)")
    e.add_argument("--workers", type=int, default=None, help="Ray workers (default: one per GPU, else per CPU)")
    e.add_argument("--threads", type=int, default=1, help="torch threads per Ray CPU worker (default 1)")
    e.add_argument("--out", required=True, type=Path, help="the results folder (holds results.db)")

    from advlens.perturbation_cli import add_parsers as add_perturbation_parsers

    add_perturbation_parsers(sub)  # robustness, fooling, regress (Balda et al.)
    r = sub.add_parser("report", help="the papers' tables from an evaluation's results folder")
    r.add_argument("dir", type=Path, help="a folder written by advlens evaluate")
    r.add_argument("--format", choices=("md", "csv", "json"), default="md")
    r.add_argument("--plots", action="store_true", help="also write plots.html and plots.png into the folder")
    return parser


def chosen_attack(argv: Sequence[str]) -> str:
    """The value of --attack in ``argv`` (the flags of ``attack`` depend on it)."""
    for i, arg in enumerate(argv):
        if arg == "--attack" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--attack="):
            return arg.split("=", 1)[1]
    return DEFAULT_ATTACK


def attack_params(args: argparse.Namespace, entry: AttackEntry) -> dict[str, Any]:
    """The parameters given on the command line, parsed and checked by the schema."""
    params = {}
    for p in entry.params:
        value = getattr(args, p.name, None)
        if value is not None:
            params[p.name] = p.check(value) if isinstance(value, bool) else p.parse(value)
    return params


def _foreign_flag(argv: Sequence[str], entry: AttackEntry) -> Optional[str]:
    """A flag of another attack's parameter given to ``entry``: the sentence that says so."""
    mine = {p.name for p in entry.params}
    for arg in argv:
        name = arg.split("=", 1)[0]
        if not name.startswith("--"):
            continue
        for other in ATTACKS.values():
            for p in other.params:
                spellings = {*p.flags, "--no-" + p.flag[2:]}
                if name in spellings and p.name not in mine:
                    return f"{entry.title} does not take {name} (see: advlens attack --attack {entry.name} --help)"
    return None


def _cmd_models() -> int:
    for spec in REGISTRY.values():
        where = "bundled" if spec.offline else "downloaded on first use (torchvision cache)"
        h, w = spec.input_size
        print(f"{spec.name:20s} {spec.title:40s} {spec.channels}×{h}×{w}  {spec.num_classes} classes  {where}")
    from advlens.models import REGRESSORS

    for spec in REGRESSORS.values():
        h, w = spec.input_size
        print(f"{spec.name:20s} {spec.title:40s} {spec.channels}×{h}×{w}  regression (advlens regress)  bundled")
    return 0


def _cmd_images(dataset: Optional[str]) -> int:
    from advlens.images import gallery

    for ds in (dataset,) if dataset else ("mnist", "imagenet"):
        for item in gallery(ds):
            label = "?" if item.label is None else item.label
            print(f"{item.ref:14s} label {label!s:5s} {item.title}")
    return 0


def _cmd_attacks(as_json: bool) -> int:
    if as_json:
        print(json.dumps([e.describe() for e in ATTACKS.values()], indent=2, ensure_ascii=False))
        return 0
    for e in ATTACKS.values():
        print(f"{e.name:10s} {e.title} — {e.family}; minimises {e.distortion}\n{'':10s} {e.blurb}")
        for p in e.params:
            default = "auto" if p.default is None else p.default
            print(f"{'':10s}   {p.flag:24s} {p.allowed()}; default {default}")
    return 0


def _cmd_attack(args: argparse.Namespace, params: dict[str, Any]) -> int:
    import torch

    from advlens.engine import parse_device
    from advlens.images import load_image
    from advlens.models import get_spec, load_model
    from advlens.outdir import OutDir
    from attacks.targets import all_targets

    spec = get_spec(args.model)
    device = parse_device(args.device)
    entry = get_attack(args.attack)
    every = args.target == "all"
    target_class = None
    if args.target is not None and not every:
        try:
            target_class = int(args.target)
        except ValueError:
            raise UsageError(f"--target must be a class number or 'all'; got {args.target!r}") from None
        if not 0 <= target_class < spec.num_classes:
            raise UsageError(f"--target must be a class of {spec.name} (0–{spec.num_classes - 1}), got {target_class}")
    sources = None
    if args.craft_on is not None:
        from advlens.crafting import check_compatible, parse_sources

        sources = parse_sources(args.craft_on)
        check_compatible(sources, args.model)
    if args.squeeze is not None:
        from interpret.squeeze import parse_squeezers

        if spec.dataset != "mnist":
            raise UsageError(f"--squeeze fits its threshold on held-out MNIST digits; {spec.name} is not an MNIST model")
        args.squeeze = parse_squeezers(args.squeeze)
    out = OutDir(args.out)  # refuses a path that cannot be a directory before anything runs
    image = load_image(args.image, spec)
    model = load_model(args.model, device)
    args.sources = sources
    torch.manual_seed(args.seed)
    x = image.tensor.to(device)
    label = image.label if image.label is not None else int(model(x).argmax(1))
    labels = torch.tensor([label], device=device)
    if target_class == label:
        raise UsageError(f"--target {target_class} is the image's own class; pick another")
    if every:
        x, labels, targets = all_targets(x, labels, spec.num_classes)
    elif args.untargeted:
        targets = None
    elif target_class is not None:
        targets = torch.tensor([target_class], device=device)
    else:
        offset = int(torch.randint(1, spec.num_classes, (1,), generator=torch.Generator().manual_seed(args.seed)))
        targets = torch.tensor([(label + offset) % spec.num_classes], device=device)

    try:
        _attack_and_write(args, entry, params, spec, model, image, out, x, labels, targets, every)
    except OSError as err:  # staging the explanation's PNGs on a full or read-only disk
        raise out.failure(err) from None
    finally:
        out.discard()
    return 0


def _attack_and_write(args, entry, params, spec, model, image, out, x, labels, targets, every) -> None:
    import torch

    from advlens.report import build_report, jsonable
    from interpret.metrics import case_summary
    from interpret.perturbation import amplified
    from interpret.render import png_bytes

    source_success = None
    if getattr(args, "sources", None):
        from advlens.crafting import judge, load_source

        source = load_source(args.sources, spec.name, model.device)
        result, source_success = judge(entry(source, x, labels, targets, **params), model)
    else:
        result = entry(model, x, labels, targets, **params)
    detection = None
    if args.squeeze is not None:
        from advlens.defenses import mnist_detector
        from interpret.squeeze import judge as squeeze_judge

        result, detection = squeeze_judge(result, mnist_detector(model, args.squeeze))
    metric = entry.ranking_metric(result.params)
    files: dict[str, bytes] = {"original.png": png_bytes(result.original[0])}
    reports = []
    for i in range(result.success.shape[0]):
        explanation = None
        folder = f"t{int(result.targets[i])}" if every and result.targets is not None else ""
        if args.explain:
            from advlens.explain import explain

            explanation = explain(model, spec, result, index=i, out_dir=out.staging(folder))
            explanation.pop("explain_files", None)
        report = build_report(result, model, model_name=spec.name, image=image.ref, notes=image.notes, index=i,
                              explanation=explanation)
        if source_success is not None:
            report.craft_on, report.source_success = list(args.sources), bool(source_success[i])
        if detection is not None:
            report.detection = detection[i]
        reports.append(report)
        prefix = folder + "/" if folder else ""
        files[prefix + "adversarial.png"] = png_bytes(result.adversarial[i])
        files[prefix + "perturbation.png"] = png_bytes(amplified(result.perturbation[i:i + 1])[0])
        files[prefix + "result.json"] = report.to_json().encode()
    if every:
        generator = torch.Generator().manual_seed(args.seed)
        pick = torch.randint(0, spec.num_classes - 1, (1,), generator=generator)  # the average case's random target
        cases = case_summary(result.perturbation.cpu(), result.success.cpu(), spec.num_classes - 1, by=metric,
                             average_pick=pick)
        files["cases.json"] = (json.dumps(jsonable({"by": metric, "average_target": reports[int(pick)].target,
                                                    "cases": cases}), indent=2) + "\n").encode()
    out.write(files)
    names = spec.class_names
    for r in reports:
        status = "success" if r.success else "failed"
        if r.craft_on:
            status += f" on {spec.name} (crafted on {'+'.join(r.craft_on)}: {'success' if r.source_success else 'failed'})"
        if r.detection:
            d = r.detection
            status += (f" ({'detected' if d['detected'] else 'not detected'}: squeezing score {d['score']:.4f}, "
                       f"threshold {d['threshold']:.4f})")
        print(f"{status}: {names[r.pred_before]} → {names[r.pred_after]}  ℓ0 {r.l0}  ℓ1 {r.l1:.3f}  ℓ2 {r.l2:.3f}  "
              f"ℓ∞ {r.linf:.3f}  {r.iterations} it" + (f"  {r.queries:,} queries" if r.queries is not None else "")
              + f"  {r.seconds:.1f} s on {r.device}")
    if every:
        print("cases (" + metric + "): " + "  ".join(
            f"{case} ASR {v['asr']:.0f}% {metric} {v[metric]:.3f}" for case, v in cases.items()))
    print(f"→ {args.out}")


def _cmd_evaluate(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from advlens.engine import parse_device
    from advlens.evaluation import BACKENDS, evaluate
    from advlens.evaluation.runner import INTERRUPTED, RowsProgress
    from advlens.evaluation.spec import parse_attacks, parse_images, parse_sweep, parse_targets
    from advlens.models import get_spec

    get_spec(args.model)
    specs = parse_sweep(args.sweep, parse_attacks(args.attacks, args.attack_specs))
    images = parse_images(args.images)
    targets = parse_targets(args.targets)
    if args.backend not in BACKENDS:
        raise UsageError(f"--backend must be one of {', '.join(BACKENDS)}; got {args.backend!r}")
    if args.chunk is not None and args.chunk < 1:
        raise UsageError(f"--chunk must be at least 1; got {args.chunk}")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be at least 1; got {args.workers}")
    if args.threads < 1:
        raise UsageError(f"--threads must be at least 1; got {args.threads}")
    device = parse_device(args.device)
    progress = RowsProgress()

    def planned(plan) -> None:
        if plan.skipped:
            print(f"skipped {len(plan.skipped)} image(s) the model already misclassifies: {', '.join(plan.skipped[:5])}"
                  + (" …" if len(plan.skipped) > 5 else ""), file=sys.stderr)
        print(f"{plan.cases} cases ({len(specs)} attack setting(s)) in {len(plan.chunks)} chunks on {device}",
              file=sys.stderr)

    try:
        outcome = evaluate(args.model, specs, images, targets, args.out, seed=args.seed, device=device, chunk=args.chunk,
                           backend=args.backend, address=args.address, workers=args.workers,
                           threads=args.threads, command=["advlens", *argv], on_rows=progress, on_plan=planned, craft_on=args.craft_on)
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    finally:
        progress.close()
    print(f"{outcome.added} new rows ({outcome.stored_before} already stored) in {outcome.seconds:.1f} s → "
          f"{args.out / 'results.db'}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from advlens.evaluation import tables
    from advlens.evaluation.store import ResultStore

    with ResultStore(args.dir, create=False) as store:
        table = tables.case_table(store)
    writer = {"md": tables.to_markdown, "csv": tables.to_csv, "json": tables.to_json}[args.format]
    sys.stdout.write(writer(table))
    if args.plots:
        from interpret.evaluation_plots import write_plots

        for path in write_plots(table, args.dir):
            print(f"→ {path}", file=sys.stderr)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    from advlens.evaluation.store import StoreError
    from advlens.images import ImageError

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        try:
            attack = chosen_attack(argv)
            parser = build_parser(attack if attack in ATTACKS else DEFAULT_ATTACK)
            args, unknown = parser.parse_known_args(argv)
        except UsageError:
            entry = ATTACKS.get(chosen_attack(argv))
            foreign = entry and _foreign_flag(argv, entry)
            if foreign:
                raise UsageError(foreign) from None
            raise
        if unknown:
            entry = ATTACKS.get(chosen_attack(argv))
            foreign = entry and _foreign_flag(unknown, entry)
            raise UsageError(foreign or f"unrecognized arguments: {' '.join(unknown)}")
        if args.command == "models":
            code = _cmd_models()
        elif args.command == "images":
            code = _cmd_images(args.dataset)
        elif args.command == "attacks":
            code = _cmd_attacks(args.json)
        elif args.command == "evaluate":
            code = _cmd_evaluate(args, argv)
        elif args.command == "report":
            code = _cmd_report(args)
        elif args.command in ("robustness", "fooling", "regress"):
            from advlens.perturbation_cli import run as run_perturbation

            code = run_perturbation(args)
        else:
            code = _cmd_attack(args, attack_params(args, get_attack(args.attack)))
        sys.stdout.flush()  # inside the try: a reader that has gone away is met here, not at exit
        return code
    except BrokenPipeError:  # `advlens images | head`: the reader is gone, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (UsageError, ValueError, ModelUnavailable, ImageError, StoreError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"advlens: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
