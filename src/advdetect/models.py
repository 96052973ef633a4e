"""The networks of both papers. Every model takes pixels in [0, 1]; normalisation is its first layer.

* :class:`MadryCNN` - the Madry et al. MNIST network (GAT's detectors, natural and robust classifiers):
  conv 5x5 32 'same' + ReLU + maxpool 2, conv 5x5 64 'same' + ReLU + maxpool 2, FC 1024 + ReLU, FC out.
  ``num_outputs=1`` gives a detector, 10 a classifier; ``width`` scales the channels for tight CPU budgets.
* :class:`ArcluEncoder` - ARCLU's MNIST encoder to ``m`` dimensions: conv 3x3 64, maxpool, conv 3x3 128,
  maxpool, FC 1024, FC m.
* :class:`WideResNet` (WRN-34-10, the Madry CIFAR network) and :func:`resnet18` for CIFAR-10.
* :class:`MLP` - GAT Appendix F's 2-500-500-500-500-500-1 network (any input size and width).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

MNIST_MEAN, MNIST_STD = (0.0,), (1.0,)  # the Madry network sees raw [0, 1] pixels
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)


class Normalize(nn.Module):
    """(x - mean) / std per channel, as a layer, so that every model's input is pixels in [0, 1]."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def check_image(x: torch.Tensor, channels: int, size: int, who: str) -> None:
    if x.ndim != 4 or x.shape[1] != channels or x.shape[2] != size or x.shape[3] != size:
        raise ValueError(f"{who} expects images of shape (N, {channels}, {size}, {size}), got {tuple(x.shape)}")


def max_pool_2x2(h: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(h, 2)``, exactly. Where no gradient is needed and the sides are even, as two elementwise
    maxima of strided halves: on a CPU about twice as fast as the pooling kernel on the MNIST networks' shapes
    (their evaluations and thresholds); with a gradient the kernel, whose backward pass is the faster one."""
    if (torch.is_grad_enabled() and h.requires_grad) or h.shape[-1] % 2 or h.shape[-2] % 2:
        return F.max_pool2d(h, 2)
    h = torch.maximum(h[..., 0::2, :], h[..., 1::2, :])
    return torch.maximum(h[..., 0::2], h[..., 1::2])


class SmallCNN(nn.Module):
    """Two convolution + ReLU + max-pool 2 stages, FC + ReLU, FC out: the shape of both papers' MNIST networks."""

    def __init__(self, num_outputs: int, channels: tuple[int, int], kernel: int, fc: int, in_channels: int = 1,
                 image_size: int = 28, width: float = 1.0, mean: Sequence[float] = MNIST_MEAN,
                 std: Sequence[float] = MNIST_STD):
        super().__init__()
        c1, c2, f = (max(1, round(v * width)) for v in (*channels, fc))
        self.in_channels, self.image_size, self.num_outputs = in_channels, image_size, num_outputs
        self.normalize = Normalize(mean, std)
        self.conv1 = nn.Conv2d(in_channels, c1, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv2d(c1, c2, kernel, padding=kernel // 2)
        self.fc1 = nn.Linear(c2 * (image_size // 4) ** 2, f)
        self.fc2 = nn.Linear(f, num_outputs)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate representation (after FC + ReLU)."""
        check_image(x, self.in_channels, self.image_size, type(self).__name__)
        h = max_pool_2x2(F.relu(self.conv1(self.normalize(x))))
        h = max_pool_2x2(F.relu(self.conv2(h)))
        return F.relu(self.fc1(h.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.features(x))


class MadryCNN(SmallCNN):
    """Madry et al.'s MNIST network with ``num_outputs`` logits: conv 5x5 32 'same', conv 5x5 64, FC 1024."""

    def __init__(self, num_outputs: int = 10, in_channels: int = 1, image_size: int = 28, width: float = 1.0,
                 mean: Sequence[float] = MNIST_MEAN, std: Sequence[float] = MNIST_STD):
        super().__init__(num_outputs, (32, 64), 5, 1024, in_channels, image_size, width, mean, std)


class ArcluEncoder(SmallCNN):
    """ARCLU's MNIST encoder H: images -> R^m (m = k * l): conv 3x3 64, conv 3x3 128, FC 1024, FC m."""

    def __init__(self, m: int = 10, in_channels: int = 1, image_size: int = 28, width: float = 1.0,
                 mean: Sequence[float] = MNIST_MEAN, std: Sequence[float] = MNIST_STD):
        super().__init__(m, (64, 128), 3, 1024, in_channels, image_size, width, mean, std)
        self.m = m


class GaussianMixtureVAE(nn.Module):
    """The convolutional VAE of the Resisting baseline (Ghosh et al. 2019; ARCLU Table 1: a 10-layer CNN VAE on
    MNIST) whose prior is a mixture of K unit Gaussians, one per class, at fixed ``means`` ``(K, latent)``.

    Encoder: conv 4x4/2 32, conv 4x4/2 64, FC 256 -> the posterior's mean and log-variance in ``latent``
    dimensions; decoder: FC 256, FC 64x7x7, transposed conv 4x4/2 32, transposed conv 4x4/2 to the image,
    sigmoid (ten layers with the two heads). ``forward(x)`` returns the posterior mean, the representation that
    the defence classifies; ``reconstruct(x)`` decodes it."""

    def __init__(self, means: torch.Tensor, in_channels: int = 1, image_size: int = 28, width: float = 1.0):
        super().__init__()
        if image_size % 4:
            raise ValueError(f"GaussianMixtureVAE needs an image size divisible by 4, got {image_size}")
        c1, c2, f = (max(1, round(v * width)) for v in (32, 64, 256))
        self.in_channels, self.image_size, self.latent = in_channels, image_size, means.shape[1]
        self.num_outputs = means.shape[0]
        self.register_buffer("means", means.clone().float())
        s = image_size // 4
        self.enc = nn.Sequential(nn.Conv2d(in_channels, c1, 4, 2, 1), nn.ReLU(), nn.Conv2d(c1, c2, 4, 2, 1), nn.ReLU(),
                                 nn.Flatten(), nn.Linear(c2 * s * s, f), nn.ReLU())
        self.mu = nn.Linear(f, self.latent)
        self.logvar = nn.Linear(f, self.latent)
        self.dec = nn.Sequential(nn.Linear(self.latent, f), nn.ReLU(), nn.Linear(f, c2 * s * s), nn.ReLU(),
                                 nn.Unflatten(1, (c2, s, s)), nn.ConvTranspose2d(c2, c1, 4, 2, 1), nn.ReLU(),
                                 nn.ConvTranspose2d(c1, in_channels, 4, 2, 1))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The posterior's mean and log-variance."""
        check_image(x, self.in_channels, self.image_size, type(self).__name__)
        h = self.enc(x)
        return self.mu(h), self.logvar(h).clamp(-10.0, 10.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Pixel probabilities in [0, 1]."""
        return torch.sigmoid(self.dec(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)[0]

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.forward(x))


class MLP(nn.Module):
    """Fully connected ReLU network ``in_dim -> hidden... -> out_dim`` (GAT App. F: 2-500x5-1)."""

    def __init__(self, in_dim: int = 2, hidden: Sequence[int] = (500,) * 5, out_dim: int = 1):
        super().__init__()
        dims = [in_dim, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(dims[-1], out_dim))
        self.net = nn.Sequential(*layers)
        self.in_dim = in_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"MLP expects inputs of shape (N, {self.in_dim}), got {tuple(x.shape)}")
        return self.net(x)


# --------------------------------------------------------------------------------------------------------- CIFAR-10

class _WideBlock(nn.Module):
    """Pre-activation residual unit of a wide ResNet."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = None if (cin == cout and stride == 1) else nn.Conv2d(cin, cout, 1, stride, 0, bias=False)

    def forward(self, x):
        o = F.relu(self.bn1(x))
        y = self.conv1(o)
        y = self.conv2(F.relu(self.bn2(y)))
        return y + (x if self.shortcut is None else self.shortcut(o))


class WideResNet(nn.Module):
    """Wide ResNet for 32x32 images; ``depth=34, widen=10`` is the Madry CIFAR-10 challenge network
    (3 stages of 5 units, widths 160/320/640)."""

    def __init__(self, depth: int = 34, widen: int = 10, num_outputs: int = 10,
                 mean: Sequence[float] = CIFAR_MEAN, std: Sequence[float] = CIFAR_STD):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError("WideResNet depth must be 6n + 4")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.normalize = Normalize(mean, std)
        self.conv = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        blocks = []
        cin = widths[0]
        for stage, cout in enumerate(widths[1:]):
            for i in range(n):
                blocks.append(_WideBlock(cin, cout, 2 if (stage > 0 and i == 0) else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin, num_outputs)
        self.num_outputs = num_outputs

    def features(self, x):
        check_image(x, 3, 32, "WideResNet")
        h = self.blocks(self.conv(self.normalize(x)))
        return F.adaptive_avg_pool2d(F.relu(self.bn(h)), 1).flatten(1)

    def forward(self, x):
        return self.fc(self.features(x))


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR-style ResNet (3x3 stem, no max-pool) of basic blocks."""

    def __init__(self, blocks_per_stage: Sequence[int] = (2, 2, 2, 2), num_outputs: int = 10, width: int = 64,
                 mean: Sequence[float] = CIFAR_MEAN, std: Sequence[float] = CIFAR_STD):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        layers, cin = [], width
        for stage, n in enumerate(blocks_per_stage):
            cout = width * 2**stage
            for i in range(n):
                layers.append(_BasicBlock(cin, cout, 2 if (stage > 0 and i == 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_outputs)
        self.num_outputs = num_outputs

    def features(self, x):
        check_image(x, 3, 32, "ResNet")
        return F.adaptive_avg_pool2d(self.layers(self.stem(self.normalize(x))), 1).flatten(1)

    def forward(self, x):
        return self.fc(self.features(x))


def resnet18(num_outputs: int = 10, width: int = 64) -> ResNet:
    """ResNet-18 for CIFAR-10 (the smaller network for tight budgets)."""
    return ResNet((2, 2, 2, 2), num_outputs=num_outputs, width=width)


def cifar_network(arch: str, width: float = 1.0, num_outputs: int = 10) -> nn.Module:
    """The CIFAR-10 network: ``"wrn-34-10"`` (GAT's, the Madry challenge network; ARCLU's Wide ResNet) or
    ``"resnet18"`` (cheaper; ``width`` scales its channels, 1.0 = 64), with ``num_outputs`` outputs."""
    if arch == "wrn-34-10":
        return WideResNet(34, 10, num_outputs=num_outputs)
    if arch == "resnet18":
        return resnet18(num_outputs=num_outputs, width=max(1, int(round(64 * width))))
    raise ValueError(f"unknown CIFAR-10 architecture {arch!r}: choose 'wrn-34-10' or 'resnet18'")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
