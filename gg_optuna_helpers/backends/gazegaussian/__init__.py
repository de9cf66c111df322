"""The ``gazegaussian`` backend: trials run a checkout of the real GazeGaussian repo.

Works with upstream ``ucwxb/GazeGaussian`` and the DiT fork ``kram254/GazeGaussian``; what can be
searched follows from the checkout's options. Backend options (``--backend-option KEY=VALUE``):

``repo`` (required), ``data``, ``val_data``, ``val_split`` (subjects|frames), ``val_samples``,
``iters_per_epoch``, ``num_workers``, ``dataset``, ``loss_begin``, ``meshhead_checkpoint``
(stage 2) and ``opt.NAME`` (any repo option). See docs/gazegaussian.md.

Importing this package never imports the checkout: that happens in :meth:`make_trainer`, inside
the trial's own process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...errors import ConfigError
from ...spaces import Limits
from ..base import STAGES, Export, Trainer, TrainerContext
from . import export as _export
from . import options as _options
from .check import RepoReport, check_repo
from .checkout import Checkout, inspect, repo_root

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

__all__ = ["BACKEND", "GazeGaussianBackend", "RepoReport", "check_repo", "checkout_of"]


def checkout_of(options: dict[str, Any]) -> Checkout:
    """The checkout named by backend option ``repo``, read (not imported)."""
    return inspect(repo_root(options))


def _stage(stage: str) -> str:
    if stage not in STAGES:
        raise ConfigError(f"Unknown stage {stage!r}: choose one of {', '.join(STAGES)}.")
    return stage


class GazeGaussianBackend:
    """Adapter from the Backend protocol to a GazeGaussian checkout."""

    name = "gazegaussian"

    def limits(self, stage: str, options: dict[str, Any]) -> Limits:
        return _options.limits(_stage(stage), checkout_of(options), options)

    def defaults(self, stage: str, options: dict[str, Any]) -> dict[str, Any]:
        return _options.defaults(_stage(stage), checkout_of(options))

    def make_trainer(self, ctx: TrainerContext) -> Trainer:
        from .trainers import TRIALS  # imports torch helpers only; the checkout comes later

        return TRIALS[_stage(ctx.stage)](ctx, checkout_of(ctx.options))

    def export(self, stage: str, trial: FrozenTrial, script: str | None = None) -> Export:
        """``python train_<stage>.py --flag ...``: what the trial trained with (see export.py)."""
        return _export.export(_stage(stage), trial, script)


BACKEND = GazeGaussianBackend()
