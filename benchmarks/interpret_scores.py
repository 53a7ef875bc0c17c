"""Mean interpretability scores (StrAttack section 6) of C&W, EAD and StrAttack on the bundled images.

    PYTHONPATH=. python benchmarks/interpret_scores.py [--datasets mnist imagenet] [--imagenet-count 20]
        [--budget reduced|paper] [--attacks cw ead strattack] [--threads 1]

For each attack: success rate, mean ASM-based IS at ν = 90 (eq. 23 with B_ASM, eq. 61), mean CAM-based IS
(B = top 10 % of C(x0, t0)), and the mean IS-vs-ν curve (Fig. 3a), all over successful samples only.
MNIST: held-out digits mnist:0..19, targets ``random_targets(labels, 10, Generator().manual_seed(0))``, Grad-CAM
on the registry layer (the CNN has no GAP head). ImageNet: EfficientNet-Lite0 on the 20 bundled foolbox samples
it classifies correctly, random targets (seed 0), the original CAM (Zhou et al.) on the features its GAP + linear
head pools. Prints a markdown table; the paper reports CAM-IS 0.65 (C&W) and 0.77 (StrAttack) on ImageNet.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from advlens.images import load_image
from advlens.models import get_spec, load_model
from attacks import cw_l2, ead
from attacks.strattack import strattack
from attacks.targets import random_targets
from interpret.asm import adversarial_saliency_map
from interpret.cam import class_activation_maps
from interpret.scores import IS_PERCENTILES, cam_interpretability, interpretability_curve, nan_mean

ATTACKS = {"cw": cw_l2, "ead": ead, "strattack": strattack}
CAM_OPTIONS = {  # where each model's CAM looks (see interpret.cam)
    "mnist-cnn": dict(method="gradcam", layer="8"),
    "efficientnet-lite0": dict(method="cam", layer="_avg_pooling:input", linear="_fc"),
}

BUDGETS = {  # attack parameters per dataset; "reduced" fits a 2-core CPU, "paper" is Appendix F's budget
    "reduced": {
        "mnist": {
            "cw": dict(initial_const=1.0, binary_search_steps=6, steps=500),
            "ead": dict(beta=1e-2, initial_const=1.0, binary_search_steps=6, steps=500),
            "strattack": dict(binary_search_steps=6, steps=300),
        },
        "imagenet": {
            "cw": dict(initial_const=5.0, binary_search_steps=2, steps=50, learning_rate=0.02),
            "ead": dict(beta=1e-3, initial_const=5.0, binary_search_steps=2, steps=50, learning_rate=0.02),
            "strattack": dict(binary_search_steps=2, steps=50, refine_search_steps=1, refine_steps=30),
        },
    },
    "paper": {
        "mnist": {
            "cw": dict(binary_search_steps=9, steps=1000),
            "ead": dict(beta=1e-2, binary_search_steps=9, steps=1000),
            "strattack": dict(),
        },
        "imagenet": {
            "cw": dict(binary_search_steps=9, steps=1000),
            "ead": dict(beta=1e-3, binary_search_steps=9, steps=1000),
            "strattack": dict(),
        },
    },
}


def load_batch(dataset: str, model_name: str, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    spec = get_spec(model_name)
    images = [load_image(f"{dataset}:{i}", spec) for i in range(count)]
    return torch.cat([im.tensor for im in images]), torch.tensor([im.label for im in images])


def scores_for(model, model_name: str, result) -> dict[str, float]:
    """Mean ASM-IS at ν = 90, CAM-IS at ν = 90 and the IS(ν) curve over the successful samples."""
    ok = result.success.cpu()
    delta = result.perturbation.detach().cpu()
    asm = adversarial_saliency_map(model, result.original, result.labels, result.targets).cpu()
    curve = interpretability_curve(delta, asm, IS_PERCENTILES)
    cam = class_activation_maps(model, result.original, result.labels, **CAM_OPTIONS[model_name])
    out = {"asr": 100.0 * ok.float().mean().item(), "is_asm": nan_mean(curve[90][ok]),
           "is_cam": nan_mean(cam_interpretability(delta, cam, 90)[ok])}
    out.update({f"is@{nu}": nan_mean(v[ok]) for nu, v in curve.items()})
    return out


def run(dataset: str, budget: str, attack_names: list[str], imagenet_count: int) -> list[dict]:
    model_name = "mnist-cnn" if dataset == "mnist" else "efficientnet-lite0"
    model = load_model(model_name)
    num_classes = get_spec(model_name).num_classes
    x, labels = load_batch(dataset, model_name, 20 if dataset == "mnist" else imagenet_count)
    if dataset == "imagenet":  # attack only what the model gets right, as the papers do
        with torch.no_grad():
            keep = model(x).argmax(1) == labels
        x, labels = x[keep], labels[keep]
    targets = random_targets(labels, num_classes, torch.Generator().manual_seed(0))
    rows = []
    for name in attack_names:
        params = BUDGETS[budget][dataset][name]
        start = time.perf_counter()
        result = ATTACKS[name](model, x, labels, targets, **params)
        attack_s = time.perf_counter() - start
        row = {"dataset": dataset, "attack": name, "n": len(labels), "params": params, "attack_s": attack_s,
               **scores_for(model, model_name, result)}
        rows.append(row)
        print(_row(row), flush=True)
    return rows


def _row(r: dict) -> str:
    curve = " ".join(f"{r[f'is@{nu}']:.3f}" for nu in IS_PERCENTILES)
    return (f"| {r['dataset']} | {r['attack']} | {r['n']} | {r['asr']:.0f}% | {r['is_asm']:.3f} | {r['is_cam']:.3f} | "
            f"{curve} | {r['attack_s']:.0f} s | `{r['params']}` |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["mnist", "imagenet"], choices=["mnist", "imagenet"])
    parser.add_argument("--attacks", nargs="+", default=["cw", "ead", "strattack"])
    parser.add_argument("--budget", default="reduced", choices=sorted(BUDGETS))
    parser.add_argument("--imagenet-count", type=int, default=20, help="first N bundled ImageNet samples (≤ 20)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (1 is fastest on a busy machine)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print("| dataset | attack | n | ASR | ASM-IS ν=90 | CAM-IS ν=90 | IS at ν = " + " ".join(map(str, IS_PERCENTILES))
          + " | attack time | parameters |")
    print("|---|---|---|---|---|---|---|---|---|")
    for dataset in args.datasets:
        run(dataset, args.budget, args.attacks, args.imagenet_count)


if __name__ == "__main__":
    main()
