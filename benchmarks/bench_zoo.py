"""ZOO's speed and results on MNIST (issue 14).

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/bench_zoo.py overhead [--n 1 10] [--iterations 8]
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/bench_zoo.py compare [--digits 20] [--solvers adam newton]
        [--no-cw] [--full | --steps S --binary-steps K --const C --lr ETA] [--save rows.json]
    python benchmarks/bench_zoo.py table adam.json newton.json cw.json
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/bench_zoo.py paper-timing [--iterations 300]
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/bench_zoo.py art [--digits 5] [--logits] [--art-predict-batch 257]

``overhead``: one ZOO iteration's time ÷ one forward pass of the same N × (2B + 1) images through the oracle (the
same chunks, under no_grad), at N = 1 and N = 10, B = 128: the goal is ≤ 1.15 (the queries are the cost, the rest
is bookkeeping). Median over iterations, timed by the callback.

``compare``: success, mean ℓ2 over successes, queries and wall time per digit for ZOO (the app's CPU budget from
advlens.presets, or ``--full`` for the thesis's MNIST setting: 9 × 3,000 iterations from c = 0.01) against C&W at
its default budget, on the first ``--digits`` held-out digits with a fixed random wrong target each (seed 0), per
digit and in summary (CPU seconds too: on a shared machine they are the comparable number). ZOO-Newton and the
hybrid run at the c and η tests/test_zoo.py measured them with (``SOLVER_OVERRIDES``) unless ``--full`` or an
override is given. ``--save`` writes the rows so that runs made in separate processes can be joined by ``table``.

``paper-timing``: ZOO-ADAM at the thesis's MNIST setting on one digit for ``--iterations`` of the first c: wall and
CPU seconds an iteration, extrapolated to 9 × 3,000 iterations and 20 digits.

``art``: ART's ``ZooAttack`` at the app's ZOO budget on the same digits and targets (see :func:`art`).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Optional

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


def _l2(result_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return (result_adv - x).flatten(1).norm(dim=1).cpu()


def _table(rows: dict[str, dict], count: int, reference: str = "cw (default)") -> None:
    """Per-digit ℓ2 (– where it failed) and queries, then success, mean ℓ2 over successes, mean ℓ2 on the digits
    where the attack and ``reference`` both succeed (and its ratio), queries and wall time per digit."""
    names = list(rows)
    print("| digit | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for i in range(count):
        cells = []
        for name in names:
            r = rows[name]
            l2 = f"{r['l2'][i]:.3f}" if r["ok"][i] else "–"
            q = r["queries"]
            cells.append(l2 if q is None else f"{l2} ({int(q[i]):,} q)")
        print(f"| {i} ({rows[names[0]]['label'][i]}→{rows[names[0]]['target'][i]}) | " + " | ".join(cells) + " |")
    print()
    print("| attack | success | mean ℓ2 (successes) | mean ℓ2 where C&W also succeeds (÷ C&W's) | queries / digit "
          "| wall s / digit | CPU s / digit |")
    print("|---|---|---|---|---|---|---|")
    ref = rows.get(reference)
    for name, r in rows.items():
        ok = r["ok"]
        mean = f"{r['l2'][ok].mean():.3f}" if ok.any() else "–"
        both = ok & ref["ok"] if ref is not None else ok
        ratio = ""
        if ref is not None and both.any():
            ratio = f"{r['l2'][both].mean():.3f} ({r['l2'][both].mean() / ref['l2'][both].mean():.2f}×)"
        q = r["queries"]
        qs = f"{q.float().mean():,.0f}" if q is not None else "– (white-box)"
        print(f"| {name} | {int(ok.sum())}/{count} | {mean} | {ratio} | {qs} | {r['seconds'] / count:.1f} | {r['cpu'] / count:.1f} |")


def _row(result, x, labels, targets, seconds: float, cpu: float) -> dict:
    queries = result.params.get("queries")
    return {"l2": _l2(result.adversarial, x), "ok": result.success.cpu(), "seconds": seconds, "cpu": cpu,
            "queries": None if queries is None else torch.as_tensor(queries).cpu(),
            "label": labels.tolist(), "target": targets.tolist()}


# ZOO-Newton and the hybrid at the app's iterations but at the η and c tests/test_zoo.py measured them with
# (NEWTON_RATE, OTHER_BUDGET): the float32 Hessian estimate is mostly noise at h = 1e-4, so the app's η = 0.05 is not
# theirs.
SOLVER_OVERRIDES = {"newton": dict(learning_rate=0.5, initial_const=10.0),
                    "adam-newton": dict(learning_rate=0.3, initial_const=10.0)}


def compare(model, count: int, solvers: list[str], full: bool, overrides: dict, with_cw: bool = True,
            save: Optional[Path] = None) -> None:
    x, labels, targets = digits(count)
    x, labels, targets = x.to(model.device), labels.to(model.device), targets.to(model.device)
    device = model.device.type
    zoo_params = dict(starting_params("zoo", "mnist", device))
    if full:
        zoo_params.update(binary_search_steps=9, steps=3000, initial_const=0.01, learning_rate=0.01, reset_adam=False)
    zoo_params.update(overrides)
    shown = ("binary_search_steps", "steps", "initial_const", "learning_rate", "reset_adam", "coordinates",
             "abort_early")
    rows: dict[str, dict] = {}
    for solver in solvers:
        params = {**zoo_params, **({} if full else SOLVER_OVERRIDES.get(solver, {})), **overrides, "solver": solver}
        print(f"zoo-{solver}:", {k: v for k, v in params.items() if k in shown}, flush=True)
        start, cpu = time.perf_counter(), time.process_time()
        result = zoo(model, x, labels, targets, **params)
        rows[f"zoo-{solver}"] = _row(result, x, labels, targets, time.perf_counter() - start, time.process_time() - cpu)
        print(f"  {time.perf_counter() - start:.0f} s", flush=True)
    if with_cw:
        start, cpu = time.perf_counter(), time.process_time()
        result = cw_l2(model, x, labels, targets)
        rows["cw (default)"] = _row(result, x, labels, targets, time.perf_counter() - start, time.process_time() - cpu)
        print(f"cw (default): {time.perf_counter() - start:.0f} s", flush=True)
    if save is not None:  # one run's rows, for ``table`` to join with runs made in other processes
        save.write_text(json.dumps({name: {k: (v.tolist() if isinstance(v, torch.Tensor) else v) for k, v in r.items()}
                                    for name, r in rows.items()}))
    _table(rows, count)


def table(files: list[Path]) -> None:
    """The ``compare`` table of the rows saved by several ``compare --save`` runs (same digits)."""
    rows: dict[str, dict] = {}
    for f in files:
        for name, r in json.loads(f.read_text()).items():
            rows[name] = {**r, "l2": torch.tensor(r["l2"]), "ok": torch.tensor(r["ok"]),
                          "queries": None if r["queries"] is None else torch.tensor(r["queries"])}
    cw = [name for name in rows if name.startswith("cw")]
    order = [name for name in rows if name not in cw] + cw
    _table({name: rows[name] for name in order}, len(next(iter(rows.values()))["ok"]))


def paper_timing(model, iterations: int, digit: int = 0) -> None:
    """The thesis's MNIST setting (c₀ = 0.01, η = 0.01, B = 128, projection) on one digit for ``iterations``
    iterations of the first c, no abort: seconds per iteration, measured by the callback, to extrapolate from."""
    x, labels, targets = digits(digit + 1)
    x, labels, targets = x[digit:], labels[digit:], targets[digit:]
    stamps: list[float] = []
    start, cpu_start = time.perf_counter(), time.process_time()
    result = zoo(model, x.to(model.device), labels.to(model.device), targets.to(model.device), solver="adam",
                 binary_search_steps=1, steps=iterations, initial_const=0.01, learning_rate=0.01, abort_early=False,
                 callback=lambda state: stamps.append(time.perf_counter()))
    total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    per = statistics.median(gaps)
    mean = statistics.fmean(gaps)
    queries = int(torch.as_tensor(result.params["queries"]).sum())
    print(f"digit {digit}: {iterations} iterations, {queries:,} queries, {total:.1f} s wall, {cpu:.1f} s CPU (this "
          f"process); wall seconds an iteration: median {per:.3f}, mean {mean:.3f}; CPU seconds an iteration "
          f"{cpu / iterations:.3f}; success {bool(result.success[0])}, loss {float(result.loss_history[-1, 0]):.3f}")
    full = 9 * 3000
    for what, sec in (("wall", mean), ("CPU", cpu / iterations)):
        print(f"extrapolated ({what} s/iteration): 9 × 3,000 iterations = {full * sec / 60:.1f} min a digit, "
              f"{20 * full * sec / 3600:.1f} h for 20 digits")


def art(model, count: int, probabilities: bool, abort_early: bool, params: dict,
        predict_batch: Optional[int] = None) -> None:
    """ART 1.20.1's ``ZooAttack`` on the same digits and targets, at the same budget as the app's ZOO: one c, the
    same iterations, ``nb_parallel`` = B, the same η, no resize and no importance sampling (neither is in the app's
    MNIST ZOO), one digit at a time (``batch_size`` = 1: ART's batch > 1 updates only sample 0's coordinates).
    Queries are counted by wrapping the classifier's ``predict``; ART reports none. ART asks ``predict`` for batches
    of its ``batch_size`` (1): 2B + 1 single-image forwards an iteration. ``predict_batch`` overrides that size (the
    same rows, the same answers, fewer calls) to make the run fit a shared CPU; its wall times are then not ART's."""
    import numpy as np
    from art.attacks.evasion import ZooAttack
    from art.estimators.classification import PyTorchClassifier

    x, labels, targets = digits(count)
    net: torch.nn.Module = torch.nn.Sequential(model, torch.nn.Softmax(dim=1)) if probabilities else model
    classifier = PyTorchClassifier(model=net, loss=torch.nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
                                   nb_classes=10, clip_values=(0.0, 1.0), device_type=model.device.type)
    seen = [0]
    predict = classifier.predict

    def counting(rows, batch_size: int = 128, **kwargs):
        seen[0] += len(rows)
        return predict(rows, batch_size=predict_batch or batch_size, **kwargs)

    classifier.predict = counting  # type: ignore[method-assign]
    settings = dict(confidence=0.0, targeted=True, learning_rate=params["learning_rate"],
                    max_iter=params["steps"], binary_search_steps=params["binary_search_steps"],
                    initial_const=params["initial_const"], abort_early=abort_early, use_resize=False,
                    use_importance=False, nb_parallel=params["coordinates"], batch_size=1, variable_h=1e-4,
                    verbose=False)
    print("ART ZooAttack:", settings, "outputs:", "probabilities" if probabilities else "logits",
          "predict batch:", predict_batch or "ART's (batch_size)", flush=True)
    np.random.seed(0)
    l2, ok, queries, seconds, cpu = [], [], [], [], []
    for i in range(count):
        attack = ZooAttack(classifier, **settings)
        seen[0] = 0
        start, cpu_start = time.perf_counter(), time.process_time()
        adv = attack.generate(x[i:i + 1].numpy(), y=targets[i:i + 1].numpy())
        seconds.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
        queries.append(seen[0])
        adv_t = torch.from_numpy(adv)
        with torch.no_grad():
            pred = int(model(adv_t.to(model.device)).argmax(1))
        ok.append(pred == int(targets[i]))
        l2.append(float((adv_t - x[i:i + 1]).norm()))
        noise = attack._current_noise  # ART's cumulative noise after the last iteration
        print(f"| {i} ({int(labels[i])}→{int(targets[i])}) | {'yes' if ok[-1] else 'no'} (predicts {pred}) | "
              f"{l2[-1]:.3f} | {queries[-1]:,} | {seconds[-1]:.1f} ({cpu[-1]:.1f} CPU) | noise min {noise.min():.3g} max "
              f"{noise.max():.3g}, {int((noise != 0).sum())} pixels nonzero |", flush=True)
    oks = torch.tensor(ok)
    l2s = torch.tensor(l2)
    mean = f"{l2s[oks].mean():.3f}" if oks.any() else "–"
    print(f"ART ZooAttack: {int(oks.sum())}/{count}, mean ℓ2 (successes) {mean}, queries / digit "
          f"{statistics.fmean(queries):,.0f}, wall s / digit {statistics.fmean(seconds):.1f} (CPU "
          f"{statistics.fmean(cpu):.1f})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=("overhead", "compare", "table", "paper-timing", "art"))
    parser.add_argument("files", nargs="*", type=Path, help="table: the JSON files of compare --save")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--digits", type=int, default=20)
    parser.add_argument("--solvers", nargs="*", default=["adam", "newton"])
    parser.add_argument("--save", type=Path, help="compare: also write the rows to this JSON file")
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--no-cw", action="store_true", help="compare: ZOO only")
    parser.add_argument("--steps", type=int, help="compare: iterations per c (overrides the budget)")
    parser.add_argument("--binary-steps", type=int, help="compare: values of c (overrides the budget)")
    parser.add_argument("--const", type=float, help="compare: the first c (overrides the budget)")
    parser.add_argument("--lr", type=float, help="compare: η (overrides the budget)")
    parser.add_argument("--logits", action="store_true", help="art: give ART the logits, not the probabilities")
    parser.add_argument("--art-predict-batch", type=int, help="art: rows per predict call (ART's own: batch_size)")
    parser.add_argument("--art-steps", type=int, help="art: iterations (default: the app's)")
    parser.add_argument("--art-abort", action="store_true", help="art: ART's early abort on (every max_iter // 10)")
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
    elif args.what == "compare":
        names = {"steps": args.steps, "binary_search_steps": args.binary_steps, "initial_const": args.const,
                 "learning_rate": args.lr}
        compare(model, args.digits, args.solvers, args.full, {k: v for k, v in names.items() if v is not None},
                with_cw=not args.no_cw, save=args.save)
    elif args.what == "table":
        table(args.files)
    elif args.what == "paper-timing":
        paper_timing(model, args.iterations)
    else:
        budget = {"coordinates": 128, **starting_params("zoo", "mnist", args.device)}
        if args.art_steps:
            budget["steps"] = args.art_steps
        art(model, args.digits, probabilities=not args.logits, abort_early=args.art_abort, params=budget,
            predict_batch=args.art_predict_batch)


if __name__ == "__main__":
    main()
