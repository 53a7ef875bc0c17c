"""The EAD paper's ε search, vectorised: each image's smallest ε on Table 4's grid at which an attack succeeds.

The dense scan (the EAD authors' fgm.py/ifgm.py) runs the attack at every grid point in ascending order and drops
an image at its first success. Success is not monotone in ε, so nothing coarser is exact; this module runs the
same scan with many ε per batched pass. Every image still searching contributes rows (image, ε) for a chunk of
consecutive grid points — 8 at first, doubling, capped so that a pass holds at most ``PIXELS_PER_PASS`` pixels
(~170 MNIST digits on a CPU, where larger passes only add overshoot; thousands on an accelerator).
After a chunk, an image's answer is its first success in the chunk; the images without one go on to the next.
Each row computes what a separate run at its ε computes, so the answer is the dense scan's, and the work is the
dense scan's plus the rest of each image's last chunk (at most as much again, by the doubling). The host reads the
device back once per chunk, to drop the images that have succeeded; never per grid point.

Measured on 2 CPU cores (I-FGM, MNIST CNN): one digit's ℓ∞ search (ε = 0.328, 328 grid points) 2.9 s against the
dense scan's 14.1 s; on 20 digits at once the two cost about the same on a CPU, where a 20-image pass is already
efficient. An accelerator runs a chunk's rows in parallel, where the gain should be larger (not measured: no GPU).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from attacks.base import Callback, IterationState
from attacks.driver import wants_stop

GRIDS: dict[str, tuple[float, int]] = {"inf": (1e-3, 1000), "2": (1e-2, 1000), "1": (1.0, 1000)}  # Table 4
PIXELS_PER_PASS = {"cpu": 2**17, "other": 2**22}  # rows × pixels of one pass: 167 / 5350 MNIST digits
FIRST_CHUNK = 8  # grid points per image in the first pass; doubled every pass


@dataclass
class Groups:
    """An attack's outcome on groups of rows (one group per image and ε, restarts already chosen among)."""

    best: Tensor  # the adversarial example kept, the original where none
    found: Tensor  # (G,) bool
    final: Tensor  # the last iterate
    loss: Tensor  # (G,) the attack's loss at the last iterate
    success: Tensor  # (G,) bool: the last iterate is adversarial


def paper_grid(norm: str, device: torch.device) -> tuple[Tensor, float]:
    """Table 4's grid for ``norm`` (k·resolution, k = 1…points, in [0,1] pixel units) and its resolution."""
    resolution, points = GRIDS[norm]
    return grid_values(torch.arange(1, points + 1), resolution).float().to(device), resolution


def grid_values(k: Tensor, resolution: float) -> Tensor:
    """k·resolution in float64, as the decimals they stand for (k/1000, not k·0.001 = 0.07100000000000001)."""
    scale = 1 / resolution
    if abs(scale - round(scale)) < 1e-9:
        return k.double() / round(scale)
    return k.double() * resolution


Result = tuple[Tensor, Tensor, Tensor, Tensor, int, bool, Tensor]


def search(name: str, x0: Tensor, grid: Tensor, resolution: float, run: Callable[[Tensor, Tensor], Groups],
           callback: Optional[Callback], *, restarts: int = 1) -> Result:
    """The dense scan of ``grid`` for every image of ``x0``, vectorised; ``run(images, eps)`` attacks one group
    per (image index, ε) pair.

    Returns (adversarial, success, ε per sample, loss history (grid points tried, N), grid points tried, stopped,
    found ε per sample as a float64 CPU tensor with NaN where none).
    """
    device, n, total = x0.device, x0.shape[0], grid.shape[0]
    best, found = x0.clone(), torch.zeros(n, dtype=torch.bool, device=device)
    const, last_loss = torch.zeros(n, device=device), torch.zeros(n, device=device)
    history = torch.zeros(total, n, device=device)
    found_at = torch.full((n,), -1, dtype=torch.long)  # on the host: the grid index of each image's success
    active = torch.arange(n)  # on the host: the images still searching
    pixels = PIXELS_PER_PASS["cpu" if device.type == "cpu" else "other"]
    cap = max(1, pixels // (x0[0].numel() * restarts))
    offset, chunk, stopped = 0, FIRST_CHUNK, False
    while active.numel() and offset < total and not stopped:
        a = active.numel()
        k = min(chunk, max(1, cap // a), total - offset)
        chunk *= 2
        idx = active.to(device)
        eps = grid[offset:offset + k]
        g = run(idx.repeat_interleave(k), eps.repeat(a))  # groups image-major, ε fastest
        ok = g.found.view(a, k)
        firsts = torch.where(ok.any(1), ok.int().argmax(1), k)  # each image's first success in the chunk, k: none
        firsts_host = firsts.cpu()  # the chunk's one read-back
        used = int(firsts_host.max()) + 1 if bool((firsts_host < k).all()) else k  # where the dense scan stops
        pick = firsts.clamp(max=k - 1)
        rows = torch.arange(a, device=device) * k + pick
        adv = g.best[rows]
        steps = torch.arange(k, device=device)
        loss = g.loss.view(a, k)
        # An image's loss stays at its value at its success for the rest of the chunk (the scan has dropped it).
        loss = torch.where(steps[None] > firsts[:, None], loss.gather(1, pick[:, None]), loss)
        if callback is not None:
            used, stopped = _replay(name, callback, g, idx, eps, firsts, pick, adv, loss, best, found, const,
                                    last_loss, offset, used, total, k)
        take = firsts < used
        best[idx] = torch.where(take[:, None, None, None], adv, best[idx])
        found[idx] = found[idx] | take
        const[idx] = torch.where(take, eps[pick], eps[used - 1])
        window = history[offset:offset + used]
        window.copy_(last_loss.expand(used, n))
        window[:, idx] = loss[:, :used].T
        last_loss[idx] = loss[:, used - 1]
        took = firsts_host < used
        found_at[active[took]] = offset + firsts_host[took]
        active = active[~took]
        offset += used
    eps_found = torch.where(found_at >= 0, grid_values(found_at + 1, resolution), math.nan)
    return best, found, const, history, offset, stopped, eps_found


def _replay(name: str, callback: Callback, g: Groups, idx: Tensor, eps: Tensor, firsts: Tensor, pick: Tensor,
            adv: Tensor, loss: Tensor, best: Tensor, found: Tensor, const: Tensor, last_loss: Tensor, offset: int,
            used: int, total: int, k: int) -> tuple[int, bool]:
    """Show the callback the chunk one grid point at a time, as the dense scan would have met them.

    Returns how many of the chunk's grid points count and whether the callback asked to stop.
    """
    a = idx.shape[0]
    final = g.final.view(a, k, *g.final.shape[1:])
    success = g.success.view(a, k)
    for j in range(used):
        upto = firsts <= j  # succeeded at or before ε_j: the scan has dropped them
        b, bf, c, cur = best.clone(), found.clone(), const.clone(), best.clone()
        ok, row = found.clone(), last_loss.clone()
        b[idx] = torch.where(upto[:, None, None, None], adv, best[idx])
        bf[idx] = found[idx] | upto
        c[idx] = torch.where(upto, eps[pick], eps[j])
        cur[idx] = torch.where(upto[:, None, None, None], b[idx], final[:, j])
        ok[idx] = upto | success[:, j]
        row[idx] = loss[:, j]
        state = IterationState(attack=name, iteration=offset + j + 1, total_iterations=total, binary_step=0,
                               step=offset + j, current=cur, losses={"loss": row, "epsilon": c}, success=ok,
                               best=b, best_found=bf, const=c)
        if wants_stop(callback(state)):
            return j + 1, True
    return used, False
