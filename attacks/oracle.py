"""A query-only view of a model: [0,1] images in, class probabilities out, every image counted.

This is all a black-box attack (ZOO) may talk to. The wrapper answers under ``torch.no_grad`` with probabilities
only: no logits, no gradients, no parameters. It counts, per attacked image, how many images it was shown on that
image's behalf (a *query* is one image through the model), so an attack cannot under-report its cost: the count
is kept by the wrapper, not by the attack.

Large images are never held whole: :meth:`QueryOracle.probabilities_of` takes a function that builds rows
[start, stop) of the query batch and calls it one forward chunk at a time, so N × (2B + 1) ImageNet queries
(1.5 GB at N = 10, B = 128) exist only a chunk at a time.

Finite differences of h = 1e-4 (ZOO's eq. 12) do not survive TF32, which keeps 10 mantissa bits: on CUDA the
wrapper runs its forward passes with TF32 off for convolutions and matrix products (restored afterwards), or, with
``dtype=torch.float64``, on a float64 copy of the network.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from typing import Optional

import torch
from torch import Tensor

from attacks.model import PixelModel

# Input elements per forward pass. On one CPU thread small passes are faster per image (they stay in cache: 0.98 ms
# an MNIST image at 128 rows, 1.62 ms at 1,285, measured); a GPU wants large ones.
ROW_ELEMENTS = {"cpu": 1 << 17, "cuda": 1 << 24}  # 167 / 21,400 MNIST rows; 1 / 111 ImageNet rows


@contextlib.contextmanager
def no_tf32() -> Iterator[None]:
    """TF32 off for cuDNN convolutions and CUDA matmuls inside the block (PyTorch turns it on for cuDNN by default)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


class QueryOracle:
    """Probabilities F(x) of a batch of images, answered without gradients, with per-image query counts.

    ``images`` is how many images the attack works on; each query names the image it is made for (``owners``), and
    ``queries[i]`` is the number of images the model has seen on behalf of image i. ``rows_seen`` counts every
    image the model was shown, so ``queries.sum() == rows_seen`` always.
    """

    def __init__(self, model: PixelModel, images: int, *, dtype: torch.dtype = torch.float32,
                 row_elements: Optional[int] = None) -> None:
        if dtype == torch.float32:
            self._model = model
        else:  # a private copy: the caller's model stays as it is
            self._model = copy.deepcopy(model).to(dtype)
        self.dtype = dtype
        self.device = model.device
        self.row_elements = row_elements or ROW_ELEMENTS.get(self.device.type, 1 << 22)
        self.queries = [0] * images  # kept on the host: the count never waits for the device
        self.rows_seen = 0

    @property
    def num_classes(self) -> Optional[int]:
        return self._model.num_classes

    def chunk_rows(self, image_numel: int) -> int:
        """Query images per forward pass for images of ``image_numel`` input elements."""
        return max(1, self.row_elements // max(1, image_numel))

    def probabilities(self, x: Tensor, owners: list[int], per_owner: int = 1) -> Tensor:
        """F(x) for the rows of ``x`` (R, C, H, W), in [0,1]. Row r belongs to image ``owners[r // per_owner]``."""
        return self.probabilities_of(lambda start, stop: x[start:stop], x.shape[0], x[0].numel(), owners,
                                     per_owner)[0]

    @torch.no_grad()
    def probabilities_of(self, build: Callable[[int, int], Tensor], rows: int, image_numel: int, owners: list[int],
                         per_owner: int = 1, measure: Optional[Callable[[Tensor, int, int], Tensor]] = None,
                         ) -> tuple[Tensor, Optional[Tensor]]:
        """F of ``rows`` query images that ``build(start, stop)`` makes a forward chunk at a time, so the whole
        (rows, C, H, W) batch never exists at once; row r belongs to image ``owners[r // per_owner]``.

        ``measure(x, start, stop)``, if given, maps each built chunk to one value per row that the caller needs
        from the query images themselves (ZOO: ‖x − x₀‖₂²); the values come back concatenated, else None.
        """
        if len(owners) * per_owner != rows:
            raise ValueError(f"{rows} query images for {len(owners)} owners × {per_owner} rows each.")
        for i in owners:
            self.queries[i] += per_owner
        self.rows_seen += rows
        chunk = self.chunk_rows(image_numel)
        probs, measured = [], []
        with no_tf32() if self.device.type == "cuda" else contextlib.nullcontext():
            for start in range(0, rows, chunk):
                stop = min(rows, start + chunk)
                x = build(start, stop)
                if x.shape[0] != stop - start or x[0].numel() != image_numel:  # the count must be what was run
                    raise ValueError(f"build({start}, {stop}) gave {x.shape[0]} images of {x[0].numel()} elements; "
                                     f"expected {stop - start} of {image_numel}.")
                probs.append(self._model(x.to(self.device, self.dtype)).softmax(1))
                if measure is not None:
                    measured.append(measure(x, start, stop))
        return _joined(probs), (_joined(measured) if measure is not None else None)

    def counts(self) -> Tensor:
        """Queries per image, (N,) long, on the CPU."""
        return torch.tensor(self.queries, dtype=torch.long)


def _joined(parts: list[Tensor]) -> Tensor:
    return parts[0] if len(parts) == 1 else torch.cat(parts)
