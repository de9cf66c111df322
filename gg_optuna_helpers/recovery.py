"""Picking a study up again: dead trials re-queued, Ctrl-C'd trials queued again, and a
stored study checked against the configuration that wants to resume it."""

from __future__ import annotations

import logging
import time
import warnings

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

from .config import StudyConfig
from .errors import ConfigError
from .records import Failure, StudyAttr, TrialAttr, get
from .storage import StudyStorage

log = logging.getLogger("gg_optuna_helpers")


def recover_dead_trials(study: optuna.Study, storage: StudyStorage) -> None:
    """Fail (and so re-queue) RUNNING trials whose heartbeat stopped, e.g. before a disconnect.

    A trial of a worker that is still alive keeps beating and is left alone after one grace
    period; a dead one is re-queued before this process starts anything.
    """
    grace = storage.rdb.grace_period or 0
    deadline = time.monotonic() + grace + storage.rdb.heartbeat_interval
    told = False
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            fail_stale_trials(study)
        running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
        if not running or time.monotonic() > deadline:
            return
        if not told:
            log.info("Waiting up to %d s to tell whether %d running trial(s) are still alive...",
                     grace, running)
            told = True
        time.sleep(1)


def requeue_interrupted(study: optuna.Study, storage: StudyStorage) -> None:
    """Queue a retry of trials stopped by Ctrl-C, so the next run resumes them."""
    retry = storage.rdb.get_heartbeat_stale_trial_callback()
    queued = {retried_number(t) for t in study.get_trials(deepcopy=False)}
    failure_keys = (TrialAttr.FAILURE.value, TrialAttr.FAILURE_LOG.value)
    for trial in study.get_trials(states=(TrialState.FAIL,)):
        if Failure.of(trial) == Failure.INTERRUPTED and trial.number not in queued:
            trial.user_attrs = {k: v for k, v in trial.user_attrs.items()
                                if k not in failure_keys}
            retry(study, trial)


def retried_number(trial: FrozenTrial) -> int | None:
    """The original trial number of a re-queued trial (stable across repeated retries)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)


def check_compatible(study: optuna.Study, cfg: StudyConfig) -> None:
    """Refuse to resume a stored study with another direction, backend, stage or kind of
    search for a parameter it searched already."""
    if len(study.directions) != 1 or study.direction != optuna.study.StudyDirection.MINIMIZE:
        raise ConfigError(
            f"Study {cfg.study_name!r} already exists with direction "
            f"{[d.name.lower() for d in study.directions]}, but these studies minimize: "
            "choose another study name or storage.")
    for key in (StudyAttr.BACKEND, StudyAttr.STAGE):
        found, wanted = get(study, key), getattr(cfg, key.value)
        if found is not None and found != wanted:
            raise ConfigError(f"Study {cfg.study_name!r} was created for {key.value} {found!r}, "
                              f"not {wanted!r}: choose another study name.")
    searched = {}
    for trial in study.get_trials(deepcopy=False):
        searched.update(trial.distributions)
    for name, old in searched.items():
        if name in cfg.space.names:
            _check_kind(cfg.study_name, name, old, cfg.space[name].distribution())


def _check_kind(study_name: str, name: str, old, new) -> None:
    if type(old) is not type(new) or getattr(old, "log", 0) != getattr(new, "log", 0):
        raise ConfigError(
            f"Study {study_name!r} searched {name!r} as {_kind(old)}, so it cannot "
            f"become {_kind(new)} now: keep its kind (a range stays a range, choices stay "
            "choices), or choose another study name.")


def _kind(dist: optuna.distributions.BaseDistribution) -> str:
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return f"choices {list(dist.choices)}"
    return f"a range {dist.low:g}..{dist.high:g}"


__all__ = ["check_compatible", "recover_dead_trials", "requeue_interrupted", "retried_number"]
