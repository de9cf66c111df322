"""Network building blocks: MLPs, a small convolutional encoder and a DiT with adaLN-Zero.

The DiT follows Peebles & Xie (2023): patch embedding, fixed 2-D sin-cos position embedding,
transformer blocks whose LayerNorms are shifted, scaled and gated by the conditioning vector
(adaLN-Zero: the gates start at zero, so every block starts as the identity), and a final layer
that maps each token back to a ``patch x patch`` tile.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers of the given widths with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class ConditionedMLP(nn.Module):
    """An MLP over points (B,P,F) whose first layer also takes a per-image vector (B,G).

    Equal to an MLP on the concatenation [point, image], but the image part of the first layer is
    computed once per image instead of once per point (and added in place: this is memory-bound).
    """

    def __init__(self, point_features: int, image_features: int, sizes: list[int]) -> None:
        super().__init__()
        self.point_in = nn.Linear(point_features, sizes[0])
        self.image_in = nn.Linear(image_features, sizes[0], bias=False)
        self.rest = mlp(sizes)

    def forward(self, points: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.rest(self.point_in(points).add_(self.image_in(image)[:, None]).relu_())


class ConvEncoder(nn.Module):
    """Image (B,3,S,S) -> code (B,out): three stride-2 convolutions and a linear layer."""

    def __init__(self, out_features: int, size: int, width: int = 16) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
        )
        self.head = nn.Linear(2 * width * (size // 8) ** 2, out_features)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.convs(image).flatten(1))


def sincos_position_embedding(grid: int, dim: int) -> torch.Tensor:
    """Fixed 2-D sin-cos embedding (grid*grid, dim) of the token positions; ``dim % 4 == 0``."""
    quarter = dim // 4
    frequencies = 1.0 / 10000 ** (torch.arange(quarter) / quarter)
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    parts = []
    for position in (rows.flatten(), cols.flatten()):
        angles = position[:, None].float() * frequencies[None]
        parts += [torch.sin(angles), torch.cos(angles)]
    return torch.cat(parts, dim=1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class DiTBlock(nn.Module):
    """Self-attention and MLP, each behind a LayerNorm modulated and gated by the conditioning."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(approximate="tanh"),
                                 nn.Linear(mlp_ratio * dim, dim))
        self.ada_ln = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        nn.init.zeros_(self.ada_ln[1].weight)
        nn.init.zeros_(self.ada_ln[1].bias)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        q, k, v = self.qkv(x).view(batch, tokens, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada_ln(cond).chunk(6, dim=1)
        x = x + gate1[:, None] * self.attention(modulate(self.norm1(x), shift1, scale1))
        return x + gate2[:, None] * self.mlp(modulate(self.norm2(x), shift2, scale2))


class DiT(nn.Module):
    """Feature map (B,C_in,S,S) + conditioning (B,dim) -> image-sized output (B,C_out,S,S)."""

    def __init__(self, in_channels: int, out_channels: int, size: int, patch_size: int,
                 depth: int, num_heads: int, dim: int) -> None:
        super().__init__()
        if size % patch_size or dim % num_heads:
            raise ValueError(f"patch_size must divide {size} and num_heads must divide {dim}, "
                             f"but got {patch_size=} and {num_heads=}")
        self.patch_size, self.grid, self.out_channels = patch_size, size // patch_size, out_channels
        self.patch_embed = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)
        self.register_buffer("position", sincos_position_embedding(self.grid, dim),
                             persistent=False)
        self.blocks = nn.ModuleList(DiTBlock(dim, num_heads) for _ in range(depth))
        self.final_norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.final_ada_ln = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
        self.final = nn.Linear(dim, patch_size * patch_size * out_channels)
        for layer in (self.final_ada_ln[1], self.final):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        std = math.sqrt(2.0 / (in_channels * patch_size**2 + dim))  # xavier, as in DiT
        nn.init.normal_(self.patch_embed.weight, std=std)
        nn.init.zeros_(self.patch_embed.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2) + self.position
        for block in self.blocks:
            tokens = block(tokens, cond)
        shift, scale = self.final_ada_ln(cond).chunk(2, dim=1)
        tiles = self.final(modulate(self.final_norm(tokens), shift, scale))
        return self.unpatchify(tiles)

    def unpatchify(self, tiles: torch.Tensor) -> torch.Tensor:
        """(B, grid*grid, p*p*C) -> (B, C, grid*p, grid*p)."""
        p, g, c = self.patch_size, self.grid, self.out_channels
        x = tiles.view(-1, g, g, p, p, c).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(-1, c, g * p, g * p)
