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
