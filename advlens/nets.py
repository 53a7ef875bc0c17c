"""Network architectures that advlens trains and ships itself."""

from torch import nn


class MnistCNN(nn.Sequential):
    """The Carlini–Wagner MNIST network: conv32–conv32–pool–conv64–conv64–pool–fc200–fc200–fc10 (logits)."""

    def __init__(self) -> None:
        super().__init__(
            nn.Conv2d(1, 32, 3), nn.ReLU(),
            nn.Conv2d(32, 32, 3), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.ReLU(),
            nn.Conv2d(64, 64, 3), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, 200), nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(200, 200), nn.ReLU(),
            nn.Linear(200, 10),
        )


class MnistFC(nn.Sequential):
    """The perturbation-analysis paper's fully connected MNIST network: 784-150-100-10 (ReLU, logits).

    Module "0" is an identity on the (N, 1, 28, 28) input, so that the CAM code has a spatial layer to look at.
    """

    def __init__(self) -> None:
        super().__init__(
            nn.Identity(), nn.Flatten(),
            nn.Linear(784, 150), nn.ReLU(),
            nn.Linear(150, 100), nn.ReLU(),
            nn.Linear(100, 10),
        )


class LeNet5(nn.Sequential):
    """LeNet-5 (LeCun et al. 1998) on 28×28 digits, ReLU and max-pooling: conv6(5, pad 2)–pool–conv16(5)–pool–
    fc120–fc84–fc10 (logits)."""

    def __init__(self) -> None:
        super().__init__(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, 10),
        )


class MnistAutoencoder(nn.Sequential):
    """A fully connected MNIST autoencoder, 784-256-32-256-784 (a 32-unit code: 95.9% compression), sigmoid output
    in [0,1], shaped (N, 1, 28, 28) like its input."""

    CODE = 32

    def __init__(self) -> None:
        super().__init__(
            nn.Flatten(),
            nn.Linear(784, 256), nn.ReLU(),
            nn.Linear(256, self.CODE),  # the code: linear
            nn.Linear(self.CODE, 256), nn.ReLU(),
            nn.Linear(256, 784), nn.Sigmoid(),
            nn.Unflatten(1, (1, 28, 28)),
        )


class MnistSmall(nn.Sequential):
    """The small MNIST network of Wong et al.'s fast adversarial training (locuslab/fast_adversarial): conv16(4, s2)–
    conv32(4, s2)–fc100–fc10 (logits), about 166k parameters; a fifteenth of the C&W network's cost per pass."""

    def __init__(self) -> None:
        super().__init__(
            nn.Conv2d(1, 16, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 4, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * 7 * 7, 100), nn.ReLU(),
            nn.Linear(100, 10),
        )
