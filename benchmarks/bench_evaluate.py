"""Throughput of `advlens evaluate` against one-at-a-time attacks, and the Ray backend against in-process.

    OMP_NUM_THREADS=2 python -m benchmarks.bench_evaluate [--digits 10] [--singles 18] [--attack ead] [--ray]
        [--workers 2] [--threads 1] [--budget paper|K,N]

The work: held-out digits mnist:0 … mnist:{digits-1}, every incorrect target (the papers' protocol), the attack
with the paper's budget (9 binary-search steps × 1000 iterations, early abort on) unless ``--budget K,N`` says
otherwise. Three ways of doing it:

1. `advlens evaluate` in-process: all cases in chunks of 90 (ten digits × nine targets per batch);
2. one case at a time, as a user looping over `advlens attack` would: the attack on a batch of one, timed on the
   first ``--singles`` cases and extrapolated to all of them; the CLI's process start-up (measured once) is
   reported beside it, since each `advlens attack` pays it again;
3. with ``--ray``: the same evaluation through `--backend ray` on a local cluster (cluster start-up timed apart).

Prints a markdown section with the machine, the command and rows per second.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from advlens.evaluation import evaluate
from advlens.evaluation.plan import make_plan
from advlens.evaluation.spec import AttackSpec
from advlens.models import load_model
from attacks.registry import get_attack


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--digits", type=int, default=10)
    parser.add_argument("--singles", type=int, default=18, help="cases timed one at a time (then extrapolated)")
    parser.add_argument("--attack", default="ead")
    parser.add_argument("--budget", default="paper", help="paper, or K,N: K binary-search steps × N iterations")
    parser.add_argument("--ray", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per Ray worker")
    args = parser.parse_args()

    given = {}
    if args.budget != "paper":
        k, n = (int(v) for v in args.budget.split(","))
        given = {"binary_search_steps": k, "steps": n}
    attack = AttackSpec(args.attack, given)
    images = [f"mnist:{i}" for i in range(args.digits)]
    model = load_model("mnist-cnn")
    plan = make_plan("mnist-cnn", model, [attack], images, "all", 0)
    cases = plan.cases

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        evaluate("mnist-cnn", [attack], images, "all", Path(tmp) / "inproc")
        batched = time.perf_counter() - t0

        chunks = [c for c in plan.chunks]
        single_cases = [(c, i) for c in chunks for i in range(len(c))][:args.singles]
        entry = get_attack(args.attack)
        t0 = time.perf_counter()
        for chunk, i in single_cases:
            x = chunk.inputs()[i:i + 1]
            entry(model, x, torch.tensor(chunk.labels[i:i + 1]), torch.tensor(chunk.targets[i:i + 1]), **attack.params)
        per_single = (time.perf_counter() - t0) / len(single_cases)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "advlens.cli", "attacks"], check=True, capture_output=True)
        startup = time.perf_counter() - t0

        ray_line = ""
        if args.ray:
            import ray

            t0 = time.perf_counter()
            ray.init(num_cpus=args.workers * args.threads, include_dashboard=False, log_to_driver=False)
            ray_start = time.perf_counter() - t0
            t0 = time.perf_counter()
            evaluate("mnist-cnn", [attack], images, "all", Path(tmp) / "ray", backend="ray", workers=args.workers,
                     threads=args.threads)
            on_ray = time.perf_counter() - t0
            ray.shutdown()
            ray_line = (f"| `evaluate --backend ray` ({args.workers} workers × {args.threads} threads; cluster start {ray_start:.1f} s"
                        f" not counted) | {on_ray:.1f} | {cases / on_ray:.2f} | {on_ray / batched:.2f}× the in-process time |\n")

    budget = "paper budget (9 × 1000, early abort)" if args.budget == "paper" else f"{args.budget} budget"
    print(f"### `advlens evaluate` throughput: {args.attack}, {budget}, {args.digits} digits × 9 targets = {cases} cases\n")
    command = " ".join(shlex.quote(a) for a in ["python", "-m", "benchmarks.bench_evaluate", *sys.argv[1:]])
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
          f"{time.strftime('%Y-%m-%d')}. Command: `{command}`\n")
    print("| how | seconds | cases/s | |")
    print("|---|---|---|---|")
    print(f"| `advlens evaluate` in-process (chunks of {len(plan.chunks[0])}) | {batched:.1f} | {cases / batched:.2f} | |")
    single_total = per_single * cases
    print(f"| one case at a time (batch of 1; {len(single_cases)} timed, × {cases}) | {single_total:.1f} | "
          f"{cases / single_total:.2f} | evaluate is {single_total / batched:.1f}× faster |")
    with_startup = single_total + startup * cases
    print(f"| … as separate `advlens attack` processes (+{startup:.1f} s start-up each) | {with_startup:.1f} | "
          f"{cases / with_startup:.2f} | evaluate is {with_startup / batched:.1f}× faster |")
    sys.stdout.write(ray_line)


if __name__ == "__main__":
    main()
