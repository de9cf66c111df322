"""The epoch loop shared by both mini trainers.

An epoch draws ``samples_per_epoch`` random (source, target) pairs from the training subjects with
a generator seeded by (trial seed, epoch), so a trial resumed from a checkpoint sees exactly the
batches it would have seen.

The optimizer is SGD with Nesterov momentum, with no gradient clipping, not Adam as in the real
repos: Adam's normalised steps never make these small networks blow up at any learning rate in the
searched ranges (measured), while SGD has a real stability threshold, so a too-high learning rate
makes the loss non-finite and the trial ends as ``diverged``. The searched ``lr`` is multiplied by
a per-stage ``lr_scale`` that maps the real repos' Adam learning rates onto SGD steps of the same
effect here: the default learning rate trains, the top of the range diverges.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from ..base import TrainerContext
from .._images import image_grid, write_png
from . import data, faults

MOMENTUM = 0.9
PREVIEW_ROWS = 4


class EpochTrainer(ABC):
    """Trainer protocol implementation; subclasses define the loss, validation and preview."""

    samples_per_epoch: int
    val_pairs: int
    lr_scale: float

    def __init__(self, ctx: TrainerContext, build_model: Callable[[], nn.Module], lr: float,
                 batch_size: int) -> None:
        self.fault = faults.check(ctx.options.get("fault"))
        self.seed, self.device, self.batch_size = ctx.seed, ctx.device, batch_size
        torch.manual_seed(ctx.seed)
        self.model = build_model().to(ctx.device)
        self.optimizer = torch.optim.SGD(
            [p for p in self.model.parameters() if p.requires_grad], lr=lr * self.lr_scale,
            momentum=MOMENTUM, nesterov=True)
        self.train_split = data.load_split("train").to(ctx.device)
        self.val_split = data.load_split("val").to(ctx.device)
        self.val_batch = data.make_batch(self.val_split, *data.fixed_pairs(
            self.val_split, self.val_pairs))

    @abstractmethod
    def loss(self, batch: data.Batch, generator: torch.Generator) -> torch.Tensor:
        """The training loss of one batch (``generator`` for any extra sampling)."""

    @abstractmethod
    def validate(self) -> dict[str, float]:
        """Held-out metrics; ``"value"`` is the objective."""

    @abstractmethod
    def preview_columns(self) -> list[torch.Tensor]:
        """Columns of validation images (each (N,3,H,W)) for :meth:`preview`."""

    def batches(self, generator: torch.Generator) -> Iterator[data.Batch]:
        source, target = data.random_pairs(self.train_split, self.samples_per_epoch, generator)
        for start in range(0, self.samples_per_epoch, self.batch_size):
            chunk = slice(start, start + self.batch_size)
            yield data.make_batch(self.train_split, source[chunk], target[chunk])

    def train_epoch(self, epoch: int) -> dict[str, float]:
        poison = faults.strike(self.fault, epoch)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        self.model.train()
        total = 0.0
        for batch in self.batches(generator):
            loss = self.loss(batch.poisoned() if poison else batch, generator)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            value = loss.item()
            if not math.isfinite(value):
                return {"loss": value}
            total += value * len(batch)
        return {"loss": total / self.samples_per_epoch}

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])

    def preview(self, path: Path) -> None:
        """PNG grid: one row for each of 4 validation pairs spread over the subjects."""
        with torch.no_grad():
            columns = self.preview_columns()
        rows = torch.linspace(0, self.val_pairs - 1, PREVIEW_ROWS).round().long()
        write_png(path, image_grid([column[rows] for column in columns]))


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """Mean per-image PSNR in dB for images in [0, 1]."""
    mse = (prediction.clamp(0, 1) - target).pow(2).flatten(1).mean(1)
    return (-10 * torch.log10(mse.clamp_min(1e-10))).mean().item()


def masked_l1(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error inside a soft mask (B,1,H,W)."""
    weight = mask.expand_as(target)
    return (weight * (prediction - target).abs()).sum() / weight.sum().clamp_min(1e-6)
