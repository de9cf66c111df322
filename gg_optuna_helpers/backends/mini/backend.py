"""The ``mini`` backend object: limits, defaults, trainers and export of the two embedded stages."""

from __future__ import annotations

import shlex
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ...errors import ConfigError
from ...records import TrialAttr, get
from ...spaces import SPACES, Limits
from ..base import STAGES, Export, Trainer, TrainerContext
from . import data, gazegaussian, meshhead

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

# faults: the test hook of objective.Objective; repo and data: the notebook form's (unused here)
OPTIONS = ("data", "faults", "meshhead_checkpoint", "repo")
FOUND_ON_MINI = ("Found on the embedded mini backend (synthetic data): a starting point for the "
                 "real run, not a measured optimum of it.")


def _check_stage(stage: str) -> None:
    if stage not in STAGES:
        raise ConfigError(f"The mini backend has the stages {', '.join(STAGES)}, "
                          f"but got stage={stage!r}.")


def _again_on_mini(stage: str, trial: FrozenTrial) -> str:
    """The ``run`` line that trains ``trial``'s params on mini again: every one fixed by
    ``--set``, so the new study's trial 0 is this configuration (its own seed)."""
    words = ["python", "-m", "gg_optuna_helpers", "run", "--backend", "mini", "--stage", stage,
             "--study-name", f"mini_{stage}_again", "--n-trials", "1"]
    epochs = get(trial, TrialAttr.MAX_EPOCHS)
    words += ["--max-epochs", str(epochs)] if epochs else []
    for name, value in trial.params.items():
        words += ["--set", f"{name}={value!r}" if isinstance(value, float) else f"{name}={value}"]
    return f"To train it again on the mini backend: {shlex.join(words)}"


class MiniBackend:
    """Synthetic data + mini MeshHead + mini DiT GazeGaussian, trained on a CPU in minutes."""

    name = "mini"

    def limits(self, stage: str, options: dict[str, Any]) -> Limits:
        """Both stages: batch size 1 or 2; DiT heads divide 64; patches divide the 32x32 input."""
        _check_stage(stage)
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ConfigError(f"Backend option {unknown[0]!r} is not known to the mini backend: "
                              f"known ones are {', '.join(OPTIONS)}.")
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

    def export(self, stage: str, trial: FrozenTrial, script: str | None = None) -> Export:
        """The real repo's command for the trial's params: mini's stages search the real
        stages' parameters, but on synthetic data, so it is a starting point for a real run,
        not a measured optimum of it (the notes say so first)."""
        from .. import get_backend  # through the registry: mini imports no other backend

        _check_stage(stage)
        real = get_backend("gazegaussian").export(stage, trial, script)
        return replace(real, notes=[FOUND_ON_MINI, *real.notes, _again_on_mini(stage, trial)])
