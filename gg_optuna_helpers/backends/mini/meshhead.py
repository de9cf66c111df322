"""Stage 1, the mini MeshHead: a coordinate field that renders a subject at a head pose and gaze.

Like the real MeshHead it has separate shape, pose and eye MLPs whose hidden widths are searched
(one hidden layer each here) and whose input and output sizes are fixed by the model (positional
encodings in, 32 features out, as the real 32-channel rasterizer). For a pixel coordinate:

- an appearance encoder turns a source image of the subject (same session, another gaze) into a
  code, so a new subject needs no training: validation subjects are never trained on;
- the pose MLP deforms the coordinate into the head's canonical frame;
- the shape MLP gives 32 features from the canonical position, the code and the source pixel;
- the eye MLP gives 32 eye features and an eye-mask logit from the canonical position, the
  position on the eyeball turned to the target gaze (learned eyeball radius), the code, the gazes
  and the source pixel the iris came from;
- RGB = source pixel, with the eyeball part moved where the mask says eye, plus a linear map of
  the features (shape + eye mask x eye).

Training samples 256 pixels per image (half uniform, half near the eyes, as NeRF-style fields
sample rays) with the hard-coded loss ``MSE(rgb) + 0.1 * BCE(eye mask)``. The objective, on
held-out subjects and whole images, is fixed::

    value = L1(image) + L1(eye region)          (lower is better; PSNR recorded alongside)
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ...errors import ConfigError
from ..base import TrainerContext
from . import cache, data
from .nets import ConditionedMLP, ConvEncoder
from .training import EpochTrainer, masked_l1, psnr

FEATURES = 32
CODE = 32
FREQUENCIES = 4
ENCODING = 2 + 4 * FREQUENCIES
PIXELS_PER_IMAGE = 256
MASK_LOSS_WEIGHT = 0.1
ARCHITECTURE = ("shape_mlp_hidden", "pose_mlp_hidden", "eye_mlp_hidden")
DEFAULTS = {"lr": 1e-3, "batch_size": 1, "shape_mlp_hidden": 256, "pose_mlp_hidden": 128,
            "eye_mlp_hidden": 128}
"""The real MeshHead's defaults (``lr_net``, ``batch_size`` and the MLP hidden widths)."""
BASELINE_EPOCHS = 10
BASELINE_CACHE_NAME = "mini_meshhead_baseline_v1.pt"


def fourier(coords: torch.Tensor) -> torch.Tensor:
    """Positional encoding (..., 2) -> (..., ENCODING): xy and sin/cos at octave frequencies."""
    scaled = coords[..., None] * (torch.pi * 2.0 ** torch.arange(FREQUENCIES, device=coords.device))
    return torch.cat([coords, scaled.sin().flatten(-2), scaled.cos().flatten(-2)], dim=-1)


def sample(image: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Bilinear samples (B,P,3) of images (B,3,H,W) at coordinates (B,P,2) in [-1, 1]."""
    return F.grid_sample(image, coords[:, None], align_corners=False)[:, :, 0].transpose(1, 2)


def pixel_grid(device: str) -> torch.Tensor:
    """Pixel centres (H*W, 2) as (x, y) in [-1, 1], row-major."""
    centers = (torch.arange(data.IMAGE_SIZE, device=device) + 0.5) / data.IMAGE_SIZE * 2 - 1
    y, x = torch.meshgrid(centers, centers, indexing="ij")
    return torch.stack([x.flatten(), y.flatten()], dim=1)


class MiniMeshHead(nn.Module):
    """The stage-1 field; see the module docstring."""

    def __init__(self, shape_mlp_hidden: int, pose_mlp_hidden: int, eye_mlp_hidden: int) -> None:
        super().__init__()
        self.encoder = ConvEncoder(CODE, data.IMAGE_SIZE)
        self.pose_mlp = ConditionedMLP(ENCODING, 3, [pose_mlp_hidden, 2])
        self.shape_mlp = ConditionedMLP(ENCODING + 3, CODE, [shape_mlp_hidden, FEATURES])
        self.eye_mlp = ConditionedMLP(2 * ENCODING + 3, CODE + 4, [eye_mlp_hidden, FEATURES + 1])
        self.eyeball_radius = nn.Parameter(torch.tensor(0.15))
        self.to_rgb = nn.Linear(FEATURES, 3)
        nn.init.zeros_(self.pose_mlp.rest[-1].weight)
        nn.init.zeros_(self.pose_mlp.rest[-1].bias)

    def iris_shift(self, gaze: torch.Tensor) -> torch.Tensor:
        """Image-plane shift (B,2) of the iris for gaze (B,2: pitch, yaw) on the learned eyeball."""
        pitch, yaw = gaze.unbind(-1)
        return self.eyeball_radius * torch.stack([pitch.cos() * yaw.sin(), -pitch.sin()], -1)

    def forward(self, source: torch.Tensor, source_gaze: torch.Tensor, pose: torch.Tensor,
                gaze: torch.Tensor, coords: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Features (B,P,32), RGB (B,P,3) and eye-mask logits (B,P) at ``coords`` (P,2) of the
        source's subject at head ``pose`` and ``gaze``."""
        batch, points = source.shape[0], coords.shape[0]
        code = self.encoder(source)
        coords = coords.expand(batch, points, 2)
        canonical = coords + self.pose_mlp(fourier(coords), pose / data.POSE_RANGE.to(pose.device))
        shift = self.iris_shift(gaze)
        eyeball = fourier(canonical - shift[:, None])
        seen = sample(source, coords)  # the source pixel here
        seen_iris = sample(source, coords + (self.iris_shift(source_gaze) - shift)[:, None])
        shape = self.shape_mlp(torch.cat([fourier(canonical), seen], -1), code)
        eye = self.eye_mlp(torch.cat([fourier(canonical), eyeball, seen_iris], -1),
                           torch.cat([code, gaze / data.GAZE_RANGE.to(gaze.device),
                                      source_gaze / data.GAZE_RANGE.to(gaze.device)], -1))
        eye_logit = eye[..., -1]
        in_eye = torch.sigmoid(eye_logit)[..., None]
        features = shape + in_eye * eye[..., :-1]
        moved = seen + in_eye * (seen_iris - seen)  # skin stays, the eyeball turns
        return features, moved + self.to_rgb(features), eye_logit

    def render(self, source: torch.Tensor, source_gaze: torch.Tensor, pose: torch.Tensor,
               gaze: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Whole images: the feature map (B,32,H,W) and RGB (B,3,H,W)."""
        features, rgb, _ = self(source, source_gaze, pose, gaze, pixel_grid(source.device))
        size = data.IMAGE_SIZE

        def as_image(x: torch.Tensor) -> torch.Tensor:
            return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], size, size)

        return as_image(features), as_image(rgb)


def build(params: dict[str, Any]) -> MiniMeshHead:
    """The MeshHead whose architecture ``params`` (a stage-1 trial's params) describe."""
    return MiniMeshHead(**{name: int(params[name]) for name in ARCHITECTURE})


class MeshHeadTrainer(EpochTrainer):
    """Trains :class:`MiniMeshHead` with the searched ``lr`` and ``batch_size``."""

    samples_per_epoch = 64
    val_pairs = 32
    lr_scale = 100.0  # at the default widths lr 4e-3 trains, 5e-3 diverges; wider diverges earlier

    def __init__(self, ctx: TrainerContext) -> None:
        super().__init__(ctx, lambda: build(ctx.params), float(ctx.params["lr"]),
                         int(ctx.params["batch_size"]))
        self.grid = pixel_grid(ctx.device)

    def loss(self, batch: data.Batch, generator: torch.Generator) -> torch.Tensor:
        pixels = self.sample_pixels(batch.target_mask, generator)
        _, rgb, eye_logit = self.model(batch.source, batch.source_gaze, batch.pose,
                                       batch.target_gaze, self.grid[pixels])
        target = batch.target.flatten(2)[:, :, pixels].transpose(1, 2)
        mask = batch.target_mask.flatten(2)[:, 0, pixels]
        return F.mse_loss(rgb, target) + MASK_LOSS_WEIGHT * F.binary_cross_entropy_with_logits(
            eye_logit, mask)

    def sample_pixels(self, masks: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """PIXELS_PER_IMAGE pixel indices: half uniform, half from around the eyes."""
        near_eyes = F.max_pool2d(masks, 5, stride=1, padding=2).mean(0).flatten().cpu()
        uniform = torch.randperm(len(self.grid), generator=generator)[:PIXELS_PER_IMAGE // 2]
        eyes = torch.multinomial(near_eyes + 1e-3, PIXELS_PER_IMAGE // 2, generator=generator)
        return torch.cat([uniform, eyes]).to(self.device)

    def predict(self) -> torch.Tensor:
        """Validation images (N,3,H,W), rendered in chunks."""
        self.model.eval()
        val = self.val_batch
        with torch.no_grad():
            return torch.cat([self.model.render(val.source[i:i + 16], val.source_gaze[i:i + 16],
                                                val.pose[i:i + 16], val.target_gaze[i:i + 16])[1]
                              for i in range(0, len(val), 16)])

    def validate(self) -> dict[str, float]:
        prediction, val = self.predict(), self.val_batch
        l1 = (prediction - val.target).abs().mean().item()
        eye_l1 = masked_l1(prediction, val.target, val.target_mask).item()
        return {"value": l1 + eye_l1, "l1": l1, "eye_l1": eye_l1,
                "psnr": psnr(prediction, val.target)}

    def preview_columns(self) -> list[torch.Tensor]:
        return [self.val_batch.source, self.val_batch.target, self.predict()]


def load_checkpoint(path: str | Path, device: str) -> dict[str, Any]:
    """A stage-1 checkpoint (the worker's ``best.pt`` of a mini MeshHead trial)."""
    if not Path(path).is_file():
        raise ConfigError(f"meshhead_checkpoint {str(path)!r} does not exist: pass the best.pt "
                          "of a mini MeshHead trial, or leave it out to use the baseline.")
    checkpoint = cache.load(Path(path), device)
    if checkpoint.get("backend", "mini") != "mini" or not {"params", "trainer"} <= set(checkpoint):
        raise ConfigError(f"meshhead_checkpoint {str(path)!r} is not a mini MeshHead checkpoint "
                          "(a torch.save dict with 'params' and 'trainer').")
    return checkpoint


def frozen(checkpoint: dict[str, Any], device: str) -> MiniMeshHead:
    """The MeshHead of a stage-1 checkpoint (``params`` and ``trainer`` keys), frozen."""
    model = build(checkpoint["params"]).to(device)
    model.load_state_dict(checkpoint["trainer"]["model"])
    model.eval()
    return model.requires_grad_(False)


def baseline_checkpoint(ctx: TrainerContext) -> dict[str, Any]:
    """A MeshHead trained once with :data:`DEFAULTS`, cached in ``ctx.cache_dir``."""

    def train() -> dict[str, Any]:
        trainer = MeshHeadTrainer(replace(ctx, stage="meshhead", params=dict(DEFAULTS), seed=0,
                                          max_epochs=BASELINE_EPOCHS, options={}))
        for epoch in range(1, BASELINE_EPOCHS + 1):
            trainer.train_epoch(epoch)
        return {"params": dict(DEFAULTS), "trainer": trainer.state_dict()}

    return cache.cached(ctx.cache_dir / BASELINE_CACHE_NAME, ctx.device, train)
