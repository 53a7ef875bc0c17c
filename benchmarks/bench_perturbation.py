"""Perturbation analysis (issue 15): the fooling-ratio curves, ρ̂₂'s cost, quadratic-ℓ2 against an explicit J.

    OMP_NUM_THREADS=1 python benchmarks/bench_perturbation.py [--digits 1000] [--models mnist-fc,mnist-lenet5]
        [--points 11] [--ae-digits 20] [--write]

1. **Fooling-ratio curves** (Fig. 3): 8 methods × ``points`` ε × the first ``digits`` held-out digits per model,
   ε on the paper's axis (FC 0–0.1, LeNet-5 0–0.2, C&W CNN 0–0.3), fooling ratio over the correctly classified,
   unclipped x + η (``interpret.robustness.fooling_curves``); wall time of the whole curve. The paper's orderings
   are then checked on each: Alg1 ≥ FGSM at the small ε (the lower third of the axis), Alg1-10 ≥ DeepFool and
   Alg1-10 ≥ PGD at every ε — reported as held or not, with the worst gap.
2. **Table 3** on the same digits: ρ̂₁, ρ̂₂, DeepFool's ε₉₉, with the paper's values beside them.
3. **ρ̂₂'s cost**: ``rho2_terms`` over the digits ÷ one plain forward+backward pass (cross-entropy) of the same
   batch: the goal is ≤ 1.1 (ρ̂₂ is one forward and one backward pass per image). Median of 5.
4. **quadratic-ℓ2** on the autoencoder, ``ae-digits`` digits: the matrix-free power iteration (30 JVP+VJP steps)
   against forming J (one batched backward of 784 copies) and ``torch.linalg.eigh`` of JᵀJ; per digit.

Prints a markdown section; ``--write`` puts it into BENCHMARKS.md under HEADING (before "## GPU" when new).

``--runner DIR`` instead times the same curve both ways on each model: the one-pass ``fooling_curves`` and
``advlens fooling --out`` (one evaluation row per digit, method and ε > 0 in DIR/results.db), with the database's
size (report JSON and perturbation blobs apart) and the largest difference between the two curves.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from advlens.models import load_model, load_regressor
from advlens.perturbation_cli import load_digits
from attacks import regression as R
from benchmarks.sections import BENCHMARKS_MD, environment_line, median_seconds, replace_section
from interpret.robustness import METHODS, fooling_curves, predictions, rho2_terms, robustness

HEADING = "## Perturbation analysis: fooling-ratio curves, ρ̂₂, quadratic-ℓ2 (issue 15)"
INSERT_BEFORE = "## GPU"
EPS_MAX = {"mnist-fc": 0.1, "mnist-lenet5": 0.2, "mnist-cnn": 0.3}
PAPER = {"mnist-fc": (0.036, 0.034, 0.076), "mnist-lenet5": (0.077, 0.061, 0.164)}  # Table 3 (their nets)


def orderings(grid: list[float], c: dict) -> list[str]:
    small = [j for j, e in enumerate(grid) if 0 < e <= grid[-1] / 3]
    out = []
    for a, b, where, idx in (("Alg1", "FGSM", "small ε", small), ("Alg1-10", "DeepFool", "every ε", range(len(grid))),
                             ("Alg1-10", "PGD", "every ε", range(len(grid)))):
        gaps = [c[a][j] - c[b][j] for j in idx]
        worst = min(gaps) if gaps else 0.0
        out.append(f"{a} ≥ {b} ({where}): {'held' if worst >= 0 else 'not held'} (worst gap {worst:+.1f} points)")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", type=int, default=1000)
    parser.add_argument("--models", default="mnist-fc,mnist-lenet5")
    parser.add_argument("--points", type=int, default=11)
    parser.add_argument("--ae-digits", type=int, default=20)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--runner", default=None, metavar="DIR", help="time the curve through the evaluation runner "
                                                                      "against the one-pass path (DIR: a new folder)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    if args.runner:
        print(runner_cost(args))
        return
    x, y = load_digits(list(range(args.digits)))
    lines = [HEADING, "", f"`{' '.join(['python benchmarks/bench_perturbation.py', *(argv or sys.argv[1:])])}` — "
             f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}. {environment_line()}. Held-out digits "
             f"mnist:0–{args.digits - 1}; a shared machine (other jobs running), so wall times are upper bounds.", ""]
    for name, model, grid, c, seconds in timed_curves(args, x, y):
        correct = int((predictions(model, x) == y).sum())
        lines += [f"### {name}: {len(METHODS)} methods × {len(grid)} ε × {args.digits} digits in {seconds:.1f} s",
                  "", f"{correct} of {args.digits} correctly classified; fooling ratio (%) over those, unclipped:", "",
                  "| ε | " + " | ".join(METHODS) + " |", "|---" * (len(METHODS) + 1) + "|"]
        for j, e in enumerate(grid):
            lines.append(f"| {e:.3f} | " + " | ".join(f"{c[m][j]:.1f}" for m in METHODS) + " |")
        lines += ["", "The paper's orderings on this network: " + "; ".join(orderings(grid, c)) + ".", ""]
        start = time.perf_counter()
        r = robustness(model, x, y)
        rs = time.perf_counter() - start
        paper = PAPER.get(name)
        ref = f" (paper's {name.split('-')[1].upper()}: {paper[0]} / {paper[1]} / {paper[2]})" if paper else ""
        lines += [f"Table 3 (ℓ∞): ρ̂₁ = {r.rho1:.4f}, ρ̂₂ = {r.rho2:.4f}, DeepFool ε₉₉ = {r.deepfool_eps99:.4f}"
                  f"{ref}; {rs:.1f} s.", ""]
        xc, yc = x, y

        def plain() -> None:
            xg = xc.clone().requires_grad_(True)
            torch.autograd.grad(F.cross_entropy(model(xg), yc), xg)

        plain()
        base = median_seconds(plain)
        rho = median_seconds(lambda: rho2_terms(model, xc, yc, batch=len(xc)))
        lines += [f"ρ̂₂'s cost over {len(xc)} digits: {1000 * rho:.1f} ms against {1000 * base:.1f} ms for one "
                  f"forward+backward pass of the same batch: ratio **{rho / base:.2f}** (goal ≤ 1.1).", ""]
    ae = load_regressor("mnist-ae")
    xa = x[:args.ae_digits]
    R.power_iteration(ae, xa[:1], 2)  # the first double backward initialises autograd's machinery once
    power = median_seconds(lambda: R.power_iteration(ae, xa, 30), 3)
    explicit = median_seconds(lambda: torch.linalg.eigh(R.jacobian(ae, xa).transpose(1, 2) @ R.jacobian(ae, xa)), 3)
    jac_only = median_seconds(lambda: R.jacobian(ae, xa), 3)
    v, lam, _ = R.power_iteration(ae, xa, 30)
    j = R.jacobian(ae, xa)
    top = torch.linalg.eigvalsh(j.transpose(1, 2) @ j)[:, -1]
    err = float(((lam - top).abs() / top).max())
    n = len(xa)
    lines += [f"### quadratic-ℓ2 on `mnist-ae`, {n} digits", "",
              f"- matrix-free power iteration (30 JVP+VJP): {1000 * power / n:.1f} ms a digit "
              f"(largest relative error of λ_max against eigvalsh: {err:.1e});",
              f"- explicit J (784 × 784, one batched backward) and eigh of JᵀJ: {1000 * explicit / n:.1f} ms a digit "
              f"(of which forming J: {1000 * jac_only / (2 * n):.1f} ms).", ""]
    section = "\n".join(lines) + "\n"
    print(section)
    if args.write:
        old = BENCHMARKS_MD.read_text(encoding="utf-8") if BENCHMARKS_MD.exists() else ""
        BENCHMARKS_MD.write_text(replace_section(old, HEADING, section, INSERT_BEFORE), encoding="utf-8")


def timed_curves(args: argparse.Namespace, x: torch.Tensor, y: torch.Tensor) -> Iterator[tuple]:
    """Per model of ``--models``: (name, model, ε grid, the one-pass Fig. 3 curves, their seconds)."""
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        model = load_model(name)
        grid = [float(e) for e in np.linspace(0, EPS_MAX[name], args.points)]
        start = time.perf_counter()
        curves = fooling_curves(model, x, y, grid, methods=METHODS)
        yield name, model, grid, curves, time.perf_counter() - start


def runner_cost(args: argparse.Namespace) -> str:
    """The Fig. 3 curve one pass against through the evaluation runner: wall time, rows, DB size, agreement."""
    import sqlite3

    from advlens.evaluation import evaluate
    from advlens.perturbation_cli import fooling_from_store, fooling_specs

    x, y = load_digits(list(range(args.digits)))
    out = [f"`python benchmarks/bench_perturbation.py {' '.join(sys.argv[1:])}` — "
           f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}. {environment_line()}.", ""]
    for name, _, grid, direct, one_pass in timed_curves(args, x, y):
        folder = Path(args.runner) / name
        specs = fooling_specs(METHODS, grid)
        kept: list[str] = []
        start = time.perf_counter()
        outcome = evaluate(name, [s for c in specs.values() for s in c if s is not None],
                           [f"mnist:{i}" for i in range(args.digits)], "untargeted", folder,
                           on_plan=lambda plan: kept.extend(f"mnist:{i}" for i in range(args.digits)
                                                            if f"mnist:{i}" not in set(plan.skipped)))
        through = time.perf_counter() - start
        start = time.perf_counter()
        stored = fooling_from_store(folder, name, specs, kept)
        read = time.perf_counter() - start
        with sqlite3.connect(folder / "results.db") as conn:
            rows, report, blob = conn.execute("SELECT COUNT(*), SUM(LENGTH(report)), SUM(LENGTH(perturbation)) "
                                              "FROM results").fetchone()
        size = sum(f.stat().st_size for f in folder.iterdir() if f.name.startswith("results.db"))
        gap = max(float(np.abs(stored[m] - direct[m]).max()) for m in METHODS)
        out += [f"### {name}: {len(METHODS)} methods × {len(grid)} ε × {args.digits} digits, one pass against the runner",
                "", f"- one pass (`fooling_curves`): {one_pass:.1f} s;",
                f"- runner (`advlens fooling --out`, in-process, {outcome.added:,} rows of {len(kept)} correct digits): "
                f"{through:.1f} s (×{through / one_pass:.1f}), reading the table back {read:.2f} s;",
                f"- results.db {size / 2**20:.1f} MiB: report JSON {report / 2**20:.1f} MiB "
                f"({report / rows:.0f} B a row), zlib'd perturbations {blob / 2**20:.1f} MiB ({blob / rows:.0f} B a row);",
                f"- largest difference between the two curves: {gap:.2f} points.", ""]
    return "\n".join(out)


if __name__ == "__main__":
    main()
