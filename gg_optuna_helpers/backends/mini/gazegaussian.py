"""Stage 2, the mini GazeGaussian: gaze redirection with a DiT neural renderer.

Source image + target gaze -> the same subject at the target gaze. As in the real pipeline, the
stage-1 MeshHead (frozen here) renders a 32-channel feature map of the subject at the target gaze,
and a neural renderer, a DiT (:class:`~.nets.DiT`: embedding dim :data:`EMBED_DIM`, searched depth,
heads and patch size), turns it and the source image into a correction of the MeshHead's RGB.
The DiT is conditioned (adaLN-Zero) on an appearance code of the source image plus a code of the
target gaze.

Training loss (weights searched; perceptual: :class:`~.losses.PerceptualLoss`)::

    L1 + vgg_importance * perceptual + eye_loss_importance * L1(eye region)
       + gaze_loss_importance * angle(frozen gaze estimator(output), target gaze)
       + orthogonality_loss_importance * cos^2(appearance code, gaze code)

The objective, on held-out subjects, is fixed (independent of every searched value)::

    value = L1(image) + 0.005 * gaze_error_deg     (lower is better; PSNR recorded alongside)

``gaze_error_deg`` is the mean angle between the target gaze and the gaze the frozen estimator
reads from the output.
"""

from __future__ import annotations

import torch
from torch import nn

from ..base import TrainerContext
from . import data, gaze_estimator, meshhead
from .losses import PerceptualLoss, orthogonality
from .nets import ConvEncoder, DiT, mlp
from .training import EpochTrainer, masked_l1, psnr

EMBED_DIM = 64
GAZE_ERROR_WEIGHT = 0.005
DEFAULTS = {"lr": 1e-4, "dit_depth": 6, "dit_num_heads": 8, "dit_patch_size": 8,
            "vgg_importance": 0.1, "eye_loss_importance": 1.0, "gaze_loss_importance": 0.1,
            "orthogonality_loss_importance": 0.01}
"""The defaults of the real GazeGaussian (DiT fork)."""


class MiniGazeGaussian(nn.Module):
    """Frozen MeshHead feature map + source image -> DiT -> image at the target gaze."""

    def __init__(self, head: meshhead.MiniMeshHead, dit_depth: int, dit_num_heads: int,
                 dit_patch_size: int) -> None:
        super().__init__()
        self.meshhead = head
        self.appearance_encoder = ConvEncoder(EMBED_DIM, data.IMAGE_SIZE)
        self.gaze_encoder = mlp([2, EMBED_DIM, EMBED_DIM])
        self.renderer = DiT(meshhead.FEATURES + 3, 3, data.IMAGE_SIZE, dit_patch_size,
                            dit_depth, dit_num_heads, EMBED_DIM)

    def forward(self, batch: data.Batch) -> tuple[torch.Tensor, ...]:
        """Output image, MeshHead RGB, appearance code and gaze code."""
        with torch.no_grad():
            features, head_rgb = self.meshhead.render(batch.source, batch.source_gaze,
                                                      batch.pose, batch.target_gaze)
        appearance = self.appearance_encoder(batch.source)
        gaze_code = self.gaze_encoder(batch.target_gaze / data.GAZE_RANGE.to(features.device))
        residual = self.renderer(torch.cat([features, batch.source], 1), appearance + gaze_code)
        return head_rgb + residual, head_rgb, appearance, gaze_code


class GazeGaussianTrainer(EpochTrainer):
    """Trains :class:`MiniGazeGaussian` with the searched lr, DiT shape and loss weights."""

    samples_per_epoch = 64
    val_pairs = 32
    lr_scale = 300.0  # at the default DiT lr 2.5e-3 trains, 3e-3 diverges
    batch_size = 4

    def __init__(self, ctx: TrainerContext) -> None:
        p = ctx.params
        checkpoint_path = ctx.options.get("meshhead_checkpoint")
        checkpoint = (meshhead.baseline_checkpoint(ctx) if checkpoint_path is None
                      else meshhead.load_checkpoint(checkpoint_path, ctx.device))
        head = meshhead.frozen(checkpoint, ctx.device)
        self.estimator = gaze_estimator.load_frozen(ctx.cache_dir, ctx.device)
        self.perceptual = PerceptualLoss().to(ctx.device)
        self.loss_weights = {name: float(p[name]) for name in (
            "vgg_importance", "eye_loss_importance", "gaze_loss_importance",
            "orthogonality_loss_importance")}
        super().__init__(ctx, lambda: MiniGazeGaussian(
            head, int(p["dit_depth"]), int(p["dit_num_heads"]), int(p["dit_patch_size"])),
            float(p["lr"]), self.batch_size)

    def loss(self, batch: data.Batch, generator: torch.Generator) -> torch.Tensor:
        image, _, appearance, gaze_code = self.model(batch)
        w = self.loss_weights
        return ((image - batch.target).abs().mean()
                + w["vgg_importance"] * self.perceptual(image, batch.target)
                + w["eye_loss_importance"] * masked_l1(image, batch.target, batch.target_mask)
                + w["gaze_loss_importance"] * gaze_estimator.angular_error(
                    self.estimator(image), batch.target_gaze).mean()
                + w["orthogonality_loss_importance"] * orthogonality(appearance, gaze_code))

    def predict(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Validation outputs (N,3,H,W) and the MeshHead's RGB for the same pairs."""
        self.model.eval()
        with torch.no_grad():
            image, head_rgb, _, _ = self.model(self.val_batch)
        return image, head_rgb

    def validate(self) -> dict[str, float]:
        image, val = self.predict()[0], self.val_batch
        with torch.no_grad():
            gaze_error = gaze_estimator.angular_error(self.estimator(image.clamp(0, 1)),
                                                      val.target_gaze).rad2deg().mean().item()
        l1 = (image - val.target).abs().mean().item()
        return {"value": l1 + GAZE_ERROR_WEIGHT * gaze_error, "l1": l1,
                "gaze_error_deg": gaze_error, "psnr": psnr(image, val.target),
                "eye_l1": masked_l1(image, val.target, val.target_mask).item()}

    def preview_columns(self) -> list[torch.Tensor]:
        image, head_rgb = self.predict()
        return [self.val_batch.source, head_rgb, image, self.val_batch.target]
