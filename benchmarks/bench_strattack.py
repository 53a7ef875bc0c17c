"""StrAttack: time per ADMM iteration against one forward+backward pass of the same model and batch, one run.

    python -m benchmarks.bench_strattack [--device cpu] [--steps 100] [--rounds 5]

Prints a markdown table. Each round times the model's forward+backward pass, then a StrAttack run, back to back,
so both see the same machine load; the table gives the medians over rounds. An ADMM iteration makes one
forward+backward pass at z^k (for the z-step) and one forward pass without gradient at the sparse iterate δ̂
(to judge it), so its floor is 1 + forward/(forward+backward), not 1.
"""

from __future__ import annotations

import argparse
import platform
import statistics

import torch

from advlens.engine import parse_device
from advlens.images import load_image
from advlens.models import get_spec, load_model
from attacks import strattack
from attacks.targets import random_targets
from benchmarks.sections import median_seconds


def fwd_bwd(model, x: torch.Tensor) -> None:
    xr = x.detach().requires_grad_(True)
    torch.autograd.grad(model(xr).sum(), xr)
    if x.device.type == "cuda":
        torch.cuda.synchronize()


def fwd(model, x: torch.Tensor) -> None:
    with torch.no_grad():
        model(x)
    if x.device.type == "cuda":
        torch.cuda.synchronize()


def attack_seconds(model, x, labels, targets, *, refine_steps: int, **kwargs) -> float:
    result = strattack(model, x, labels, targets, binary_search_steps=1, abort_early=False, refine=refine_steps > 0,
                       refine_search_steps=1, refine_steps=max(refine_steps, 1), **kwargs)
    return result.seconds


def images(spec, batch: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gallery = 1000 if spec.dataset == "mnist" else 20
    loaded = [load_image(f"{spec.dataset}:{i % gallery}", spec) for i in range(batch)]
    x = torch.cat([im.tensor for im in loaded]).to(device)
    labels = torch.tensor([im.label if im.label is not None else 0 for im in loaded], device=device)
    return x, labels, random_targets(labels, spec.num_classes, torch.Generator().manual_seed(0))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=100, help="ADMM iterations per timed run")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    device = parse_device(args.device)
    cases = [  # model, batch, label, grouping
        ("mnist-cnn", 9, "2×2 stride 2", dict(group_size=2, stride=2)),
        ("mnist-cnn", 9, "3×3 stride 2 (overlapping)", dict(group_size=3, stride=2)),
        ("efficientnet-lite0", 1, "13×13 stride 13", dict(group_size=13, stride=13)),
    ]
    print(f"device {device} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads), "
          f"torch {torch.__version__}, {args.steps} iterations per run, median of {args.rounds} rounds\n")
    print("| model | batch | groups | stage | fwd (ms) | fwd+bwd (ms) | iteration (ms) | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for name, batch, label, grouping in cases:
        spec = get_spec(name)
        model = load_model(name, device)
        x, labels, targets = images(spec, batch, device)
        repeats = 20 if spec.dataset == "mnist" else 5
        attack_seconds(model, x, labels, targets, steps=3, refine_steps=3, **grouping)  # warm-up
        rows: dict[str, list[float]] = {"f": [], "fb": [], "admm": [], "refine": []}
        for _ in range(args.rounds):
            rows["f"].append(median_seconds(lambda: fwd(model, x), repeats, warm_up=True))
            rows["fb"].append(median_seconds(lambda: fwd_bwd(model, x), repeats, warm_up=True))
            admm = attack_seconds(model, x, labels, targets, steps=args.steps, refine_steps=0, **grouping)
            both = attack_seconds(model, x, labels, targets, steps=args.steps, refine_steps=args.steps, **grouping)
            rows["admm"].append(admm / args.steps)
            rows["refine"].append(max(both - admm, 0.0) / args.steps)
        f, fb = statistics.median(rows["f"]), statistics.median(rows["fb"])
        for stage in ("admm", "refine"):
            it = statistics.median(rows[stage])
            stage_name = "ADMM (Prop. 2)" if stage == "admm" and grouping["stride"] < grouping["group_size"] else (
                "ADMM (Prop. 1)" if stage == "admm" else "refine (Prop. 3)")
            print(f"| {name} | {batch} | {label} | {stage_name} | {f * 1e3:.2f} | {fb * 1e3:.2f} | {it * 1e3:.2f} | "
                  f"{it / fb:.2f} |", flush=True)


if __name__ == "__main__":
    main()
