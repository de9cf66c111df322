"""Picking a study up again: dead trials re-queued, Ctrl-C'd trials queued again, and a
stored study checked against the configuration that wants to resume it."""

from __future__ import annotations

import copy
import logging
import time
import warnings

import optuna
import sqlalchemy
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

from .config import StudyConfig
from .errors import ConfigError
from .records import Failure, StudyAttr, TrialAttr, get
from .storage import StudyStorage

log = logging.getLogger("gg_optuna_helpers")


def recover_dead_trials(study: optuna.Study, storage: StudyStorage) -> None:
    """Fail, and so re-queue with their reported epochs, the study's dead trials before this
    process starts anything.

    Opened alone (``storage.trials_alone``: this process holds the study's lease and no other
    live process of its runtime uses the live copy), no trial can be alive: every RUNNING one
    is dead, even one that never beat (a kill between a trial's creation and its first heartbeat
    leaves one Optuna's staleness check never sees), and a FAIL that a kill left un-queued is
    queued. Otherwise (a database URL, or another worker here) the heartbeat decides: a trial
    silent for the grace period is dead, and so is one seen with no heartbeat at all when this
    wait began and still without one after it (a live trial beats within a second of starting).
    """
    if storage.trials_alone is not None:
        _requeue_found(study, storage.rdb, storage.trials_alone)
        return
    grace = storage.rdb.grace_period or 0
    deadline = time.monotonic() + grace + storage.rdb.heartbeat_interval
    silent = _never_beat(study, storage.rdb)
    told = False
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            fail_stale_trials(study)
        running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
        if running and time.monotonic() > deadline:
            for trial_id in silent & _never_beat(study, storage.rdb):
                _fail_and_requeue(study, storage.rdb, trial_id)
        if not running or time.monotonic() > deadline:
            return
        if not told:
            log.info("Waiting up to %d s to tell whether %d running trial(s) are still alive...",
                     grace, running)
            told = True
        time.sleep(1)


def _requeue_found(study: optuna.Study, rdb: RDBStorage, found: list[FrozenTrial]) -> None:
    """The trials a run found when it opened the study alone: none was alive then."""
    running = [t for t in found if t.state == TrialState.RUNNING]
    for trial in running:
        _fail_and_requeue(study, rdb, trial._trial_id)
    retry = rdb.get_heartbeat_stale_trial_callback()
    retried = retried_numbers(study.get_trials(deepcopy=False))
    unqueued = [t for t in found if Failure.of(t) == Failure.DISCONNECTED  # FAIL, no reason
                and t.number not in retried and not retry.gives_up(t)]
    for trial in unqueued:  # a kill fell between failing it and queuing its retry
        retry(study, trial)
    if running or unqueued:
        log.info("Re-queued %d trial(s) that a stopped run left unfinished: each resumes from "
                 "its last checkpoint.", len(running) + len(unqueued))


def _fail_and_requeue(study: optuna.Study, rdb: RDBStorage, trial_id: int) -> None:
    """What Optuna's staleness check does with a stale trial (unless another process did)."""
    try:
        if not rdb.set_trial_state_values(trial_id, state=TrialState.FAIL):
            return
    except optuna.exceptions.UpdateFinishedTrialError:
        return  # another worker failed it first, and re-queues it
    rdb.get_heartbeat_stale_trial_callback()(study, copy.deepcopy(rdb.get_trial(trial_id)))


def _never_beat(study: optuna.Study, rdb: RDBStorage) -> set[int]:
    """Ids of the study's RUNNING trials that have no heartbeat at all."""
    query = sqlalchemy.text(
        "select t.trial_id from trials t where t.study_id = :study and t.state = 'RUNNING' "
        "and not exists (select 1 from trial_heartbeats h where h.trial_id = t.trial_id)")
    with rdb.engine.connect() as db:
        study_id = rdb.get_study_id_from_name(study.study_name)
        return {row[0] for row in db.execute(query, {"study": study_id})}


def requeue_interrupted(study: optuna.Study, storage: StudyStorage) -> None:
    """Queue a retry of trials stopped by Ctrl-C, so the next run resumes them."""
    retry = storage.rdb.get_heartbeat_stale_trial_callback()
    retried = retried_numbers(study.get_trials(deepcopy=False))
    failure_keys = (TrialAttr.FAILURE.value, TrialAttr.FAILURE_LOG.value)
    for trial in study.get_trials(states=(TrialState.FAIL,)):
        if Failure.of(trial) == Failure.INTERRUPTED and trial.number not in retried:
            trial.user_attrs = {k: v for k, v in trial.user_attrs.items()
                                if k not in failure_keys}
            retry(study, trial)


def retried_numbers(trials: list[FrozenTrial]) -> set[int]:
    """Numbers of the trials some trial retries (each retry lists its chain's numbers)."""
    return {n for t in trials for n in t.system_attrs.get("retry_history", ())}


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


__all__ = ["check_compatible", "recover_dead_trials", "requeue_interrupted", "retried_number",
           "retried_numbers"]
