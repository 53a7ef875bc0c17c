"""The κ-transfer experiment (EAD paper Fig. 4, thesis Table 8): EAD (EN and L1 rules), C&W and I-FGM crafted on one
model with κ swept over a grid and judged on another, best/average/worst case, beside the paper's numbers.

    python -m advlens.transfer --source mnist-cnn --target mnist-cnn-distilled --images mnist:0-19 --out DIR

The experiment is an evaluation (``advlens.evaluation.evaluate`` with ``craft_on``); crafting on a source and the
target's verdict are :mod:`advlens.crafting`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from advlens.crafting import parse_sources
from advlens.models import ModelUnavailable

KAPPA_ATTACKS = (("EAD (EN)", "ead", {"decision_rule": "en"}), ("EAD (L1)", "ead", {"decision_rule": "l1"}),
                 ("C&W (L2)", "cw", {}))
IFGM_NORMS = ("inf", "2", "1")
PAPER_KAPPAS = (0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60)
# Table 8 of the thesis (EAD paper Fig. 4), average-case ASR % of examples crafted on the undefended MNIST net and
# sent to the distilled one (T = 100), 1,000 test images; I-FGM has no κ.
PAPER_AVERAGE_ASR = {
    "EAD (EN)": dict(zip(PAPER_KAPPAS, (0.6, 2.5, 8.4, 19.2, 37, 58, 76.3, 87.9, 95.2, 98, 98.6, 94.4, 90))),
    "EAD (L1)": dict(zip(PAPER_KAPPAS, (0.5, 3.2, 7.5, 19, 39.4, 59.3, 76.9, 89.3, 96.3, 97.6, 98.1, 93.6, 89.6))),
    "C&W (L2)": dict(zip(PAPER_KAPPAS, (1.1, 3.4, 6.5, 22.6, 44.4, 62.9, 78.1, 84.2, 87.4, 85.2, 80.6, 73, 67.9))),
    "I-FGM (ℓ∞)": 1.7, "I-FGM (ℓ2)": 1.3, "I-FGM (ℓ1)": 1.6,
}


def kappa_specs(kappas: Sequence[float], budget: dict[str, Any] | None = None,
                ifgm: Sequence[str] = IFGM_NORMS) -> list[tuple[str, Any]]:
    """(method label, AttackSpec) for each κ-swept attack and value, and each I-FGM norm (ε searched)."""
    from advlens.evaluation.spec import AttackSpec

    out = []
    for label, attack, given in KAPPA_ATTACKS:
        for k in dict.fromkeys(float(k) for k in kappas):
            out.append((label, AttackSpec(attack, {**given, **(budget or {}), "kappa": k}, sweep="kappa")))
    for norm in ifgm:
        out.append((f"I-FGM (ℓ{'∞' if norm == 'inf' else norm})", AttackSpec("ifgm", {"norm": norm})))
    return out


def kappa_experiment(source: str | Sequence[str], target: str, images: list[str], out, *, kappas: Sequence[float],
                     targets: str = "all", budget: dict[str, Any] | None = None, ifgm: Sequence[str] = IFGM_NORMS,
                     seed: int = 0, device: str = "cpu", on_rows=None) -> dict[str, Any]:
    """Craft on ``source`` with EAD (EN, L1), C&W over ``kappas`` and I-FGM; judge on ``target``; store in ``out``.

    Returns {"table": the evaluation's case table, "curve": {method: {case: [(κ, ASR %), ...]}}, "seconds"}.
    """
    import time
    from pathlib import Path

    from advlens.evaluation import evaluate
    from advlens.evaluation.store import ResultStore
    from advlens.evaluation.tables import case_table

    out = Path(out)
    specs = kappa_specs(kappas, budget, ifgm)
    start = time.perf_counter()
    evaluate(target, [s for _, s in specs], images, targets, out, seed=seed, device=device, craft_on=parse_sources(source),
             command=["advlens.transfer", "kappa"], on_rows=on_rows)
    seconds = time.perf_counter() - start
    with ResultStore(out, create=False) as store:
        table = case_table(store)
    return {"table": table, "curve": kappa_curve(table), "seconds": seconds}


def method_label(attack: str, params: dict[str, Any]) -> str:
    if attack == "ead":
        return f"EAD ({str(params.get('decision_rule', 'en')).upper()})"
    if attack == "cw":
        return "C&W (L2)"
    if attack == "ifgm":
        norm = str(params.get("norm", "inf"))
        return f"I-FGM (ℓ{'∞' if norm == 'inf' else norm})"
    return attack


def kappa_curve(table: Sequence[dict[str, Any]]) -> dict[str, dict[str, list[tuple[Any, Any]]]]:
    """{method: {case: [(κ or None, ASR %), ...]}} from a case table (κ ascending; None for I-FGM)."""
    curve: dict[str, dict[str, list[tuple[Any, Any]]]] = {}
    for row in table:
        label = method_label(row["attack"], row["params"])
        kappa = row["sweep_value"] if row.get("sweep_param") == "kappa" else row["params"].get("kappa")
        curve.setdefault(label, {}).setdefault(row["case"], []).append((kappa, row["asr"]))
    for cases in curve.values():
        for points in cases.values():
            points.sort(key=lambda p: -1 if p[0] is None else p[0])
    return curve


def curve_markdown(curve: dict[str, dict[str, list[tuple[Any, Any]]]], case: str = "average") -> str:
    """ASR % by κ for each method in one case, beside the paper's average case (Table 8)."""
    kappas = sorted({k for cases in curve.values() for k, _ in cases.get(case, []) if k is not None})
    head = ["method", *[f"κ={k:g}" for k in kappas]]
    lines = [f"Transfer ASR % ({case} case) by κ; the paper's Table 8 average case in brackets", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, cases in curve.items():
        points = dict(cases.get(case, []))
        paper = PAPER_AVERAGE_ASR.get(method)
        cells = [method]
        if None in points:  # I-FGM: one number
            cells += [f"{points[None]:.1f}" + (f" [{paper}]" if isinstance(paper, float) else "")] + [""] * (len(kappas) - 1)
        else:
            for k in kappas:
                v = points.get(k)
                ref = paper.get(int(k)) if isinstance(paper, dict) and float(k).is_integer() else None
                cells.append(("–" if v is None else f"{v:.1f}") + ("" if ref is None else f" [{ref:g}]"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def curve_png(curve: dict[str, dict[str, list[tuple[Any, Any]]]], path, case: str = "average",
              title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    flat = 0
    for method, cases in curve.items():
        points = cases.get(case, [])
        if not points:
            continue
        if points[0][0] is None:  # I-FGM: no κ, one level
            ax.axhline(points[0][1] or 0.0, linestyle=(":", "--", "-.")[flat % 3], linewidth=1, label=method,
                       color="grey")
            flat += 1
        else:
            ax.plot([k for k, _ in points], [v or 0.0 for _, v in points], marker="o", label=method)
    ax.set_xlabel("confidence κ (crafted on the source)")
    ax.set_ylabel(f"transfer ASR % on the target ({case} case)")
    ax.set_ylim(-2, 102)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """python -m advlens.transfer --source mnist-cnn --target mnist-cnn-distilled --images mnist:0-99 --out DIR"""
    import argparse
    import json
    import sys
    from pathlib import Path

    from advlens.evaluation.spec import parse_images, parse_targets
    from advlens.evaluation.tables import to_markdown

    p = argparse.ArgumentParser(prog="python -m advlens.transfer",
                                description="The κ-transfer experiment (thesis Table 8, EAD paper Fig. 4): EAD (EN, L1), "
                                            "C&W over a κ grid and I-FGM, crafted on --source, judged on --target.")
    p.add_argument("--source", default="mnist-cnn", help="model(s) to craft on; several = the mean of their logits")
    p.add_argument("--target", default="mnist-cnn-distilled")
    p.add_argument("--images", default="mnist:0-99")
    p.add_argument("--targets", default="all", help="all (best/average/worst), random, next, least-likely, untargeted")
    p.add_argument("--kappas", default=",".join(map(str, PAPER_KAPPAS)))
    p.add_argument("--ifgm", default=",".join(IFGM_NORMS), help="I-FGM norms (ε searched), or '' for none")
    p.add_argument("--binary-search-steps", type=int, default=None, help="EAD/C&W budget (default: the paper's 9)")
    p.add_argument("--steps", type=int, default=None, help="EAD/C&W iterations per binary step (default 1000)")
    p.add_argument("--initial-const", type=float, default=None, help="EAD/C&W initial c (default 0.001)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)
    try:
        kappas = [float(k) for k in args.kappas.split(",") if k.strip()]
        budget = {k: v for k, v in (("binary_search_steps", args.binary_search_steps), ("steps", args.steps),
                                    ("initial_const", args.initial_const)) if v is not None}
        res = kappa_experiment(args.source, args.target, parse_images(args.images), args.out, kappas=kappas,
                               targets=parse_targets(args.targets), budget=budget,
                               ifgm=[n.strip() for n in args.ifgm.split(",") if n.strip()], seed=args.seed,
                               device=args.device)
    except (ValueError, ModelUnavailable) as err:
        print(f"advlens.transfer: error: {str(err).strip().splitlines()[0]}", file=sys.stderr)
        return 2
    title = f"crafted on {args.source}, judged on {args.target}, {args.images}"
    md = to_markdown(res["table"]) + "\n" + "\n\n".join(
        curve_markdown(res["curve"], case) for case in ("best", "average", "worst", "random")
        if any(case in c for c in res["curve"].values()))
    (args.out / "transfer.md").write_text(f"# κ-transfer: {title}\n\nwall time {res['seconds']:.0f} s\n\n{md}")
    (args.out / "transfer.json").write_text(json.dumps({"curve": res["curve"], "seconds": res["seconds"]}, indent=2))
    case = "average" if any("average" in c for c in res["curve"].values()) else next(
        (k for c in res["curve"].values() for k in c), "average")
    curve_png(res["curve"], args.out / "transfer.png", case, title)
    sys.stdout.write(md)
    print(f"→ {args.out / 'transfer.md'}, {args.out / 'transfer.png'} ({res['seconds']:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
