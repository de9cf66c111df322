"""The ``mini`` backend object: limits, defaults and trainers of the two embedded stages."""

from __future__ import annotations

from typing import Any

from ...errors import ConfigError
from ...spaces import SPACES, Limits
from ..base import STAGES, Trainer, TrainerContext
from . import data, gazegaussian, meshhead


def _check_stage(stage: str) -> None:
    if stage not in STAGES:
        raise ConfigError(f"The mini backend has the stages {', '.join(STAGES)}, "
                          f"but got stage={stage!r}.")


class MiniBackend:
    """Synthetic data + mini MeshHead + mini DiT GazeGaussian, trained on a CPU in minutes."""

    name = "mini"

    def limits(self, stage: str, options: dict[str, Any]) -> Limits:
        """Both stages: batch size 1 or 2; DiT heads divide 64; patches divide the 32x32 input."""
        _check_stage(stage)
        return Limits(frozenset(SPACES[stage].names), choices={"batch_size": (1, 2)},
                      embed_dim=gazegaussian.EMBED_DIM, featmap_size=data.IMAGE_SIZE)

    def defaults(self, stage: str, options: dict[str, Any]) -> dict[str, Any]:
        _check_stage(stage)
        return dict(meshhead.DEFAULTS if stage == "meshhead" else gazegaussian.DEFAULTS)

    def make_trainer(self, ctx: TrainerContext) -> Trainer:
        _check_stage(ctx.stage)
        if ctx.stage == "meshhead":
            return meshhead.MeshHeadTrainer(ctx)
        return gazegaussian.GazeGaussianTrainer(ctx)
