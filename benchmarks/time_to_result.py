"""Time to result: the default attack on one MNIST digit with all nine targets in one batch, early abort on.

    python -m benchmarks.time_to_result [--attack ead] [--digits 5] [--device cpu]

Prints a markdown table: seconds, iterations run (of binary-search steps × iterations) and targets reached.
"""

from __future__ import annotations

import argparse
import platform
import statistics

import torch

from advlens.engine import parse_device, run_attack
from advlens.images import load_image
from advlens.models import get_spec, load_model
from attacks.targets import all_targets


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--attack", default="ead")
    parser.add_argument("--digits", type=int, default=5, help="held-out digits mnist:0 … mnist:N-1")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = parse_device(args.device)
    spec = get_spec("mnist-cnn")
    model = load_model("mnist-cnn", device)
    print(f"{args.attack} with its defaults, device {device} ({platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads), torch {torch.__version__}\n")
    print("| digit | label | seconds | iterations | targets reached |")
    print("|---|---|---|---|---|")

    def all_targets_of(image):
        return all_targets(image.tensor.to(device), torch.tensor([image.label], device=device), spec.num_classes)

    run_attack(args.attack, model, *all_targets_of(load_image("mnist:0", spec)), steps=5,
               binary_search_steps=1)  # warm-up
    seconds = []
    for i in range(args.digits):
        image = load_image(f"mnist:{i}", spec)
        result = run_attack(args.attack, model, *all_targets_of(image))
        total = result.params["binary_search_steps"] * result.params["steps"]
        seconds.append(result.seconds)
        print(f"| mnist:{i} | {image.label} | {result.seconds:.1f} | {result.iterations} of {total} | "
              f"{int(result.success.sum())}/9 |", flush=True)
    print(f"\nmedian {statistics.median(seconds):.1f} s")


if __name__ == "__main__":
    main()
