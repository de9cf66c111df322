"""Stage-2 loss terms that need more than one line: perceptual and orthogonality losses.

The perceptual loss is the stand-in for LPIPS-VGG (which needs downloaded weights): a fixed
three-level feature extractor built in code. Its first level is hand-designed (luminance edges in
two directions, a Laplacian, two colour-opponent channels); deeper levels use fixed random
filters from a fixed seed. As in LPIPS, features are unit-normalised across channels, compared
with a squared difference, averaged over space and summed over levels.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

FEATURE_SEED = 1234


def _hand_designed_filters() -> torch.Tensor:
    """(8,3,3,3): luminance Sobel x/y, Laplacian, R-G and B-Y opponents, and R, G, B blurs."""
    sobel = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]) / 4
    laplacian = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]) / 4
    blur = torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16
    luminance = torch.tensor([0.299, 0.587, 0.114])
    colour_filters = [
        luminance[:, None, None] * sobel, luminance[:, None, None] * sobel.T,
        luminance[:, None, None] * laplacian,
        torch.tensor([1.0, -1.0, 0.0])[:, None, None] * blur,
        torch.tensor([-0.5, -0.5, 1.0])[:, None, None] * blur,
    ]
    colour_filters += [torch.eye(3)[c][:, None, None] * blur for c in range(3)]
    return torch.stack(colour_filters)


class PerceptualLoss(nn.Module):
    """Fixed-feature perceptual distance between image batches (B,3,H,W); see module docstring."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(FEATURE_SEED)

        def random_filters(n_out: int, n_in: int) -> torch.Tensor:
            return torch.randn(n_out, n_in, 3, 3, generator=generator) / (3 * n_in ** 0.5)

        self.register_buffer("level1", _hand_designed_filters())
        self.register_buffer("level2", random_filters(16, 8))
        self.register_buffer("level3", random_filters(32, 16))

    def features(self, image: torch.Tensor) -> list[torch.Tensor]:
        levels, x = [], image
        for i, weight in enumerate((self.level1, self.level2, self.level3)):
            if i:
                x = F.avg_pool2d(x, 2)
            x = F.conv2d(x, weight, padding=1)
            x = F.leaky_relu(x, 0.2) if i else x
            levels.append(x)
        return levels

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = prediction.new_zeros(())
        for a, b in zip(self.features(prediction), self.features(target)):
            total = total + (F.normalize(a, dim=1, eps=1e-6) - F.normalize(b, dim=1, eps=1e-6)
                             ).pow(2).sum(1).mean()
        return total


def orthogonality(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Mean squared cosine between paired codes (B,D): 0 when each pair is orthogonal."""
    return F.cosine_similarity(first, second, dim=1, eps=1e-6).pow(2).mean()
