"""What the helper records on studies and trials: attribute keys, failure reasons, metrics.

Every writer and reader of a study's or a trial's user attrs goes through this module, so that a
key is spelled once. The backend's validation metrics live in their own namespace
(``metric.<name>``), so a metric can never overwrite the bookkeeping (``failure``, ``baseline``)::

    trial.user_attrs["failure"]            why a FAIL trial failed (a Failure value)
    trial.user_attrs["metric.psnr"]        one part of the validation metric
"""

from __future__ import annotations

import enum
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

METRIC_PREFIX = "metric."


class TrialAttr(str, enum.Enum):
    """User attrs the helper writes on a trial."""

    BASELINE = "baseline"  # True on trial 0, the repo's default hyperparameters
    TRIAL_DIR = "trial_dir"  # the folder holding its checkpoints, metrics and logs
    MAX_EPOCHS = "max_epochs"  # the study's budget when this trial ran
    START_EPOCH = "start_epoch"  # the first epoch this attempt trained (> 0 on a resume)
    EPOCHS = "epochs"  # epochs this attempt trained
    SECONDS_PER_EPOCH = "seconds_per_epoch"
    PRUNED_AT = "pruned_at"
    EARLY_STOPPED_AT = "early_stopped_at"
    FAILURE = "failure"  # a Failure value
    FAILURE_LOG = "failure_log"  # the detail and the tail of the worker's log


class StudyAttr(str, enum.Enum):
    """User attrs the helper writes on a study."""

    BACKEND = "backend"
    STAGE = "stage"
    MAX_EPOCHS = "max_epochs"
    MESHHEAD_CHECKPOINT = "meshhead_checkpoint"  # gazegaussian stage: the MeshHead it trains on
    MESHHEAD_STUDY = "meshhead_study"


class Failure(str, enum.Enum):
    """Why a trial ended without a value."""

    OOM = "oom"  # out of GPU (or host) memory
    DIVERGED = "diverged"  # a NaN or infinite loss or metric
    CRASHED = "crashed"  # any other error in the worker (its log tail is kept)
    TIMEOUT = "timeout"  # --trial-timeout or --epoch-timeout passed
    DISK_FULL = "disk_full"  # no space left for checkpoints or metrics; the study stops, re-queued
    DISK_GONE = "disk_gone"  # its folder could not be reached (Drive disconnected, unmounted, an
    #                          I/O error); the study stops, re-queued
    INTERRUPTED = "interrupted"  # Ctrl-C; re-queued, the next run resumes it
    SURPLUS = "surplus"  # started by a worker after the total was reached; nothing trained
    DISCONNECTED = "disconnected"  # no reason recorded: its runtime died; re-queued

    @classmethod
    def of(cls, trial: FrozenTrial) -> Failure | None:
        """The reason a FAIL trial failed (None for other states)."""
        if trial.state != TrialState.FAIL:
            return None
        try:
            return cls(trial.user_attrs.get(TrialAttr.FAILURE, cls.DISCONNECTED))
        except ValueError:
            return cls.CRASHED

    @property
    def requeued(self) -> bool:
        """True for the reasons whose trial is queued again, to resume from its checkpoint."""
        return self in (Failure.DISK_FULL, Failure.DISK_GONE, Failure.INTERRUPTED,
                        Failure.DISCONNECTED)


def get(trial: FrozenTrial | optuna.Study, key: TrialAttr | StudyAttr, default: Any = None) -> Any:
    """One recorded attr of a trial or a study."""
    return trial.user_attrs.get(key.value, default)


def put(trial: optuna.Trial | optuna.Study, key: TrialAttr | StudyAttr, value: Any) -> None:
    """Record one attr on a running trial or a study."""
    trial.set_user_attr(key.value, value.value if isinstance(value, enum.Enum) else value)


def put_metrics(trial: optuna.Trial, parts: dict[str, float]) -> None:
    """Record the parts of the validation metric, each under ``metric.<name>``."""
    for name, value in parts.items():
        trial.set_user_attr(METRIC_PREFIX + name, value)


def metrics(trial: FrozenTrial) -> dict[str, Any]:
    """The recorded parts of a trial's validation metric, by name."""
    return {k[len(METRIC_PREFIX):]: v for k, v in trial.user_attrs.items()
            if k.startswith(METRIC_PREFIX)}


def is_baseline(trial: FrozenTrial) -> bool:
    return bool(get(trial, TrialAttr.BASELINE))


def baseline(trials: list[FrozenTrial]) -> FrozenTrial | None:
    """The baseline trial (the repo's defaults): the completed one marked ``baseline`` (a retry
    keeps the mark), else the first marked one in any state, else None."""
    marked = [t for t in trials if is_baseline(t)]
    return next((t for t in marked if t.state == TrialState.COMPLETE), None) or next(
        iter(marked), None)


def best(trials: list[FrozenTrial], *, maximize: bool = False) -> FrozenTrial | None:
    """The completed trial with the lowest value (the highest if ``maximize``; the first of
    equals), if there is one. The package's own studies minimize."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    sign = -1 if maximize else 1
    return min(complete, key=lambda t: (sign * t.value, t.number), default=None)


__all__ = ["METRIC_PREFIX", "Failure", "StudyAttr", "TrialAttr", "baseline", "best", "get",
           "is_baseline", "metrics", "put", "put_metrics"]
