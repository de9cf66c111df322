"""The small contract between the trial worker and a training backend.

The worker (``gg_optuna_helpers.worker``) knows nothing of Optuna. For one trial it asks a
backend for a :class:`Trainer`, then loops ``train_epoch`` -> ``validate`` -> checkpoint, and
writes one metrics line per epoch. A backend only has to implement this file's two protocols;
the analysis asks it (:meth:`Backend.export`) how to run the best trial again.

Checkpoints written by the worker are ``torch.save`` dicts::

    {"format": 1, "backend": str, "stage": str, "params": dict, "epoch": int,
     "best_value": float, "trainer": Trainer.state_dict(), ...}

so a later stage can rebuild a model from a previous stage's ``best.pt`` (``params`` gives its
architecture, ``trainer`` its weights). ``best.pt`` is written without the entries of
``state_dict()`` named ``optimizer`` or ``*_optimizer`` (at any depth): keep optimizer state
under such a key, and nothing a later stage reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..spaces import Limits

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

STAGES = ("meshhead", "gazegaussian")


@dataclass
class TrainerContext:
    """Everything a backend needs to build one trial's trainer.

    ``options`` are backend options from the trial spec (e.g. ``repo`` for the real backend,
    ``meshhead_checkpoint`` for the GazeGaussian stage, ``fault`` for the mini test hooks).
    ``cache_dir`` is a folder shared by all trials of a results folder, for things trained once.
    """

    stage: str
    params: dict[str, Any]
    max_epochs: int
    seed: int
    device: str
    trial_dir: Path
    cache_dir: Path
    options: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Trainer(Protocol):
    """One trial's training state. All methods are called in the worker's child process."""

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """Train one epoch (``epoch`` counts from 1); return training stats, e.g. ``{"loss": x}``.

        A non-finite ``"loss"`` ends the trial as ``diverged``.
        """

    def validate(self) -> dict[str, float]:
        """Evaluate on held-out data. ``"value"`` is the objective (lower is better); its formula
        must not depend on any searched parameter. Other keys (``psnr``, ``gaze_error_deg``, ...)
        are recorded as user attrs."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: model and optimizer state, RNG state if it matters."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def preview(self, path: Path) -> None:
        """Write a small PNG of validation outputs to ``path``."""


@dataclass(frozen=True)
class Export:
    """A finished trial's configuration as something to run again (see :meth:`Backend.export`).

    ``options``: the settings by the name the code to run gives them. ``command``: one shell
    line. ``where``: where to run it. ``notes``: what differs from the trial or needs care.
    ``snippet``: the same settings as Python, for in-process use ("" if there is none).
    """

    options: dict[str, Any]
    command: str
    where: str
    notes: list[str] = field(default_factory=list)
    snippet: str = ""


class Backend(Protocol):
    """A training backend: ``mini`` (embedded) or ``gazegaussian`` (a real checkout)."""

    name: str

    def limits(self, stage: str, options: dict[str, Any]) -> Limits:
        """The backend's real limits for ``stage``."""

    def defaults(self, stage: str, options: dict[str, Any]) -> dict[str, Any]:
        """The backend's default hyperparameters: the study's baseline trial."""

    def make_trainer(self, ctx: TrainerContext) -> Trainer:
        """Build the trainer for one trial."""

    def export(self, stage: str, trial: FrozenTrial, script: str | None = None) -> Export:
        """How to run ``trial``'s configuration again (its ``params``, its trial folder);
        ``script``: the training script to name instead of the default one."""
