"""ZOO's speed and results on MNIST (issue 14).

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/bench_zoo.py overhead [--n 1 10] [--iterations 8]
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/bench_zoo.py compare [--digits 20] [--solvers adam newton]

``overhead``: one ZOO iteration's time ÷ one forward pass of the same N × (2B + 1) images through the oracle (the
same chunks, under no_grad), at N = 1 and N = 10, B = 128: the goal is ≤ 1.15 (the queries are the cost, the rest
is bookkeeping). Median over iterations, timed by the callback.

``compare``: success, mean ℓ2 over successes, queries and wall time per digit for ZOO (the app's CPU budget from
advlens.presets, or ``--full`` for the thesis's MNIST setting: 9 × 3,000 iterations from c = 0.01) against C&W at
its default budget, on the first ``--digits`` held-out digits with a fixed random wrong target each (seed 0).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from advlens.images import load_image
from advlens.models import get_spec, load_model
from advlens.presets import starting_params
from attacks.cw import cw_l2
from attacks.oracle import QueryOracle
from attacks.targets import random_targets
from attacks.zoo import zoo


def digits(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    spec = get_spec("mnist-cnn")
    loaded = [load_image(f"mnist:{i}", spec) for i in range(n)]
    labels = torch.tensor([img.label for img in loaded])
    return torch.cat([img.tensor for img in loaded]), labels, random_targets(labels, 10, torch.Generator().manual_seed(0))


def overhead(model, n: int, iterations: int, b: int = 128) -> dict:
    x, labels, targets = digits(n)
    x, labels, targets = x.to(model.device), labels.to(model.device), targets.to(model.device)
    stamps: list[float] = []

    def tick(state) -> None:
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    zoo(model, x, labels, targets, binary_search_steps=1, steps=iterations + 1, coordinates=b, abort_early=False,
        initial_const=2.0, callback=tick)
    per_iteration = statistics.median(b_ - a for a, b_ in zip(stamps, stamps[1:]))
    rows = torch.rand(n * (2 * b + 1), *x.shape[1:], device=model.device)
    oracle = QueryOracle(model, n)
    owners = list(range(n))
    forwards = []
    for _ in range(max(3, iterations // 2)):
        start = time.perf_counter()
        oracle.probabilities(rows, owners, per_owner=2 * b + 1)
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        forwards.append(time.perf_counter() - start)
    forward = statistics.median(forwards)
    return {"n": n, "rows": n * (2 * b + 1), "iteration_s": per_iteration, "forward_s": forward,
            "ratio": per_iteration / forward}


def compare(model, count: int, solvers: list[str], full: bool) -> None:
    x, labels, targets = digits(count)
    device = model.device.type
    zoo_params = dict(starting_params("zoo", "mnist", device))
    if full:
        zoo_params.update(binary_search_steps=9, steps=3000, initial_const=0.01, learning_rate=0.01, reset_adam=False)
    shown = ("binary_search_steps", "steps", "initial_const", "learning_rate", "reset_adam", "coordinates")
    print("ZOO budget:", {k: v for k, v in zoo_params.items() if k in shown})
    runs = {}
    for solver in solvers:
        start = time.perf_counter()
        runs[f"zoo-{solver}"] = (zoo(model, x, labels, targets, **{**zoo_params, "solver": solver}),
                                 time.perf_counter() - start)
    start = time.perf_counter()
    runs["cw (default)"] = (cw_l2(model, x, labels, targets), time.perf_counter() - start)
    print("| attack | success | mean ℓ2 (successes) | queries / digit | wall s / digit |")
    print("|---|---|---|---|---|")
    for name, (result, seconds) in runs.items():
        l2 = (result.adversarial - result.original).flatten(1).norm(dim=1)
        ok = result.success.cpu()
        queries = result.params.get("queries")
        q = f"{queries.float().mean():,.0f}" if queries is not None else "– (white-box)"
        print(f"| {name} | {int(ok.sum())}/{count} | {l2.cpu()[ok].mean():.3f} | {q} | {seconds / count:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=("overhead", "compare"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--digits", type=int, default=20)
    parser.add_argument("--solvers", nargs="+", default=["adam", "newton"])
    parser.add_argument("--full", action="store_true")
    args = parser.parse_args()
    model = load_model("mnist-cnn", args.device)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"device {args.device}")
    if args.what == "overhead":
        print("| N | rows an iteration | iteration (s) | forward of the same rows (s) | ratio |")
        print("|---|---|---|---|---|")
        for n in args.n:
            r = overhead(model, n, args.iterations)
            print(f"| {r['n']} | {r['rows']:,} | {r['iteration_s']:.3f} | {r['forward_s']:.3f} | {r['ratio']:.3f} |")
    else:
        compare(model, args.digits, args.solvers, args.full)


if __name__ == "__main__":
    main()
