"""Attack iteration time against one forward+backward pass of the same model and batch, measured in one run.

    python benchmarks/bench_core.py [--device cpu] [--batches 1 9 90] [--steps 200] [--compile]

Prints a markdown table. The ratio is what the attack adds on top of the model: 1.0 would be free bookkeeping.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from advlens.engine import parse_device, run_attack
from advlens.images import load_image
from advlens.models import get_spec, load_model
from attacks.targets import random_targets


def fwd_bwd_seconds(model, x: torch.Tensor, repeats: int) -> float:
    """Median time of one forward pass plus the backward pass to the input, as an attack needs it."""
    times = []
    for _ in range(repeats + 3):
        start = time.perf_counter()
        xr = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(model(xr).sum(), xr)
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times[3:])[len(times[3:]) // 2]


def attack_seconds_per_iteration(name: str, model, x, labels, targets, steps: int) -> float:
    run_attack(name, model, x, labels, targets, steps=5, binary_search_steps=1, abort_early=False)  # warm-up
    result = run_attack(name, model, x, labels, targets, steps=steps, binary_search_steps=1, abort_early=False)
    return result.seconds / result.iterations


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="mnist-cnn")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 9, 90])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--attacks", nargs="+", default=["ead", "ead-ista", "cw"])
    parser.add_argument("--compile", action="store_true",
                        help="wrap the model in torch.compile (off by default: slower on CPU, see BENCHMARKS.md)")
    args = parser.parse_args()
    device = parse_device(args.device)
    spec = get_spec(args.model)
    model = load_model(args.model, device)
    if args.compile:
        model = torch.compile(model)  # attribute access (model.device) passes through to the PixelModel
    gallery = 1000 if spec.dataset == "mnist" else 20
    print(f"model {args.model}, device {device} ({platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads), torch {torch.__version__}, {args.steps} iterations per run"
          f"{', torch.compile' if args.compile else ''}\n")
    print("| attack | batch | fwd+bwd (ms) | iteration (ms) | ratio |")
    print("|---|---|---|---|---|")
    for batch in args.batches:
        images = [load_image(f"{spec.dataset}:{i % gallery}", spec) for i in range(batch)]
        x = torch.cat([im.tensor for im in images]).to(device)
        labels = torch.tensor([im.label if im.label is not None else 0 for im in images], device=device)
        targets = random_targets(labels, spec.num_classes, torch.Generator().manual_seed(0))
        base = fwd_bwd_seconds(model, x, repeats=max(20, args.steps // 4))
        for name in args.attacks:
            it = attack_seconds_per_iteration(name, model, x, labels, targets, args.steps)
            print(f"| {name} | {batch} | {base * 1e3:.2f} | {it * 1e3:.2f} | {it / base:.2f} |", flush=True)


if __name__ == "__main__":
    main()
