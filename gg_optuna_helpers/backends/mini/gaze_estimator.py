"""The frozen mini gaze estimator: a small CNN image -> (pitch, yaw), trained once per cache dir.

It judges generated images in stage 2 (the gaze-consistency loss and the ``gaze_error_deg``
metric), like the pretrained gaze estimator of the real GazeGaussian. It is trained on the
training subjects only, with a fixed seed and a fixed recipe, so every trial gets the same judge.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from . import cache, data

CACHE_NAME = "mini_gaze_estimator_v1.pt"
EPOCHS = 12
BATCH_SIZE = 32
LR = 2e-3
SEED = 7


class GazeEstimator(nn.Module):
    """Image (B,3,32,32) -> gaze (B,2: pitch, yaw in radians)."""

    def __init__(self) -> None:
        super().__init__()

        def stage(n_in: int, n_out: int) -> list[nn.Module]:
            return [nn.Conv2d(n_in, n_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]

        self.net = nn.Sequential(*stage(3, 16), *stage(16, 32), *stage(32, 32), nn.Flatten(),
                                 nn.Linear(32 * (data.IMAGE_SIZE // 8) ** 2, 64), nn.ReLU(),
                                 nn.Linear(64, 2))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image) * data.GAZE_RANGE.to(image.device)


def gaze_vector(gaze: torch.Tensor) -> torch.Tensor:
    """Unit 3-D gaze directions (B,3) from (pitch, yaw) (B,2), as in ETH-XGaze."""
    pitch, yaw = gaze.unbind(-1)
    return torch.stack([-pitch.cos() * yaw.sin(), -pitch.sin(), -pitch.cos() * yaw.cos()], -1)


def angular_error(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Angle (B,) in radians between gaze directions given as (pitch, yaw)."""
    cosine = (gaze_vector(predicted) * gaze_vector(target)).sum(-1)
    return torch.acos(cosine.clamp(-1 + 1e-7, 1 - 1e-7))


def train(device: str) -> dict:
    """Train the estimator on the training subjects; return ``{"model": state_dict}``."""
    generator = torch.Generator().manual_seed(SEED)
    torch.manual_seed(SEED)
    model = GazeEstimator().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    split = data.load_split("train").to(device)
    for _ in range(EPOCHS):
        for batch in torch.randperm(len(split), generator=generator).split(BATCH_SIZE):
            batch = batch.to(device)
            loss = angular_error(model(split.images[batch]), split.gaze[batch]).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return {"model": model.state_dict()}


def load_frozen(cache_dir: Path, device: str) -> GazeEstimator:
    """The estimator from ``cache_dir`` (trained and cached there first if absent), frozen."""
    model = GazeEstimator().to(device)
    model.load_state_dict(cache.cached(Path(cache_dir) / CACHE_NAME, device,
                                       lambda: train(device))["model"])
    model.eval()
    model.requires_grad_(False)
    return model
