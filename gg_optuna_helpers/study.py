"""Create or resume a study and run it to its total number of finished trials.

``run_study(StudyConfig(stage="meshhead"))`` is the whole job of notebooks 01/02 and of
``python -m gg_optuna_helpers run``. Re-running it after a disconnect finishes only what is left:
dead trials are re-queued by the storage heartbeat and resume from their last checkpoint
(recovery.py). One trial is run by objective.py; the knobs are in config.py.
"""

from __future__ import annotations

import hashlib
import math
import os
import socket
import time

import optuna
from optuna.study import MaxTrialsCallback

from .backends import get_backend
from .config import StudyConfig
from .errors import DiskFault, StudyNotFound, TrialFailed
from .objective import FINISHED_STATES, TAKEN_STATES, Objective, best_value
from .presets import make_pruner, make_sampler
from .records import Failure, StudyAttr, TrialAttr, get, put
from .recovery import check_compatible, recover_dead_trials, requeue_interrupted
from .layout import is_url
from .runner import FULL, GONE, WarmWorker, disk_advice
from .storage import (StudyStorage, live_only, local_base, open_storage, open_study,
                      optuna_storage)
from .trial_dirs import check_study_dir, known_dirs, study_uid
from .trial_log import log, log_to_stdout

HALF_CREATED_WAIT = 2.0  # seconds a study without stage or trials is given to be set up


def run_study(config: StudyConfig) -> optuna.Study:
    """Create or resume the study and run it until ``n_trials`` trials have finished.

    A full or unreachable disk that no trial could record (Drive still gone, the live
    database's disk full) is a :class:`~.errors.DiskFault`: one line, in a notebook too."""
    try:
        return _run_study(config)
    except Exception as e:
        line = disk_line(e, str(config.storage))
        if line is None or isinstance(e, DiskFault):
            raise
        raise DiskFault(line) from None


def _run_study(config: StudyConfig) -> optuna.Study:
    cfg = config.resolved()
    log_to_stdout()
    _check_prior(cfg)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our one line per trial replaces its
    storage = open_storage(cfg.storage, study_name=cfg.study_name, local_dir=cfg.local_dir,
                           heartbeat_interval=cfg.heartbeat_interval, fresh=cfg.fresh)
    try:
        return _run(cfg, storage)
    finally:
        optuna.logging.set_verbosity(verbosity)
        storage.snapshot(force=True)
        storage.close()


def _check_prior(cfg: StudyConfig) -> None:
    """Refuse, from the study as stored now (read, nothing written), a run that cannot resume
    it, and a results folder holding trials of another study (no study yet: any there)."""
    try:
        rdb = optuna_storage(cfg.storage, cfg.study_name)
        fresh = cfg.fresh and live_only(cfg.storage, cfg.study_name, cfg.local_dir)
        prior = None if fresh else open_study(rdb, cfg.study_name)  # that copy is set aside
    except StudyNotFound:
        prior = None
    if prior is not None:
        check_compatible(prior, cfg)
    uid = prior and study_uid(rdb, cfg.study_name, make=False)
    check_study_dir(cfg.results.study_dir(cfg.study_name), uid, known_dirs(prior))


def _run(cfg: StudyConfig, storage: StudyStorage) -> optuna.Study:
    study = _create_or_load(cfg, storage)
    recover_dead_trials(study, storage)
    objective = Objective(cfg, storage, study)
    log.info("Study %r (%s, %s backend) in %s", cfg.study_name, cfg.stage, cfg.backend,
             storage.describe())
    deadline = time.monotonic() + cfg.timeout if cfg.timeout else None
    # Running trials hold their place: otherwise each of several workers would start one more
    # trial at the end (a running trial that later fails frees its place again).
    at_total = MaxTrialsCallback(cfg.n_trials, states=TAKEN_STATES)
    try:
        while (left := cfg.n_trials - _count(study, TAKEN_STATES)) > 0:
            if objective.failures_in_a_row >= cfg.max_failures_in_a_row:
                log.warning("Stopping: %d trials failed in a row; see user_attrs['%s'] and the "
                            "worker logs in %s.", objective.failures_in_a_row,
                            TrialAttr.FAILURE.value, cfg.results_dir)
                break
            remaining = deadline - time.monotonic() if deadline else None
            if remaining is not None and remaining <= 0:
                break
            if cfg.warm_worker and objective.warm is None:  # only when a trial will run
                objective.warm = WarmWorker()
            study.optimize(objective, n_trials=left, timeout=remaining, catch=(TrialFailed,),
                           callbacks=[objective.after_trial, at_total],
                           show_progress_bar=cfg.show_progress_bar)  # no gc_after_trial: a
            # trial's memory is its worker's; a full collection here cost 0.1 s per trial
    except KeyboardInterrupt:
        requeue_interrupted(study, storage)
        log.warning("Interrupted: the running trial was stopped and re-queued; run again to "
                    "resume it from its last checkpoint.")
        raise
    finally:
        if objective.warm is not None:
            objective.warm.close()
    _log_done(study, cfg)
    return study


def _create_or_load(cfg: StudyConfig, storage: StudyStorage) -> optuna.Study:
    pruner = make_pruner(cfg.pruner, max_epochs=cfg.max_epochs)
    common = dict(study_name=cfg.study_name, storage=storage.rdb, pruner=pruner)
    try:
        study, stored = optuna.create_study(direction="minimize", **common), 0
        _set_up(study, cfg)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(**common)
        check_compatible(study, cfg)
        stored = len(study.get_trials(deepcopy=False))
        if not stored and _half_created(study):
            _set_up(study, cfg)
    seed = _sampler_seed(cfg, storage, stored)
    study.sampler = make_sampler(cfg.sampler, seed=seed, n_trials=cfg.n_trials)
    return study


def _half_created(study: optuna.Study) -> bool:
    """True for a study whose creator stopped before setting it up (no stage, no trials); a
    worker creating it right now (several workers on one database) gets a moment first."""
    for wait in (0.0, HALF_CREATED_WAIT):
        time.sleep(wait)
        if get(study, StudyAttr.STAGE) is not None or study.get_trials(deepcopy=False):
            return False
    return True


def _set_up(study: optuna.Study, cfg: StudyConfig) -> None:
    """A new study's baseline trial (first: other workers then see a trial) and its attrs."""
    _enqueue_baseline(study, cfg)
    for key in (StudyAttr.BACKEND, StudyAttr.STAGE, StudyAttr.MAX_EPOCHS):
        put(study, key, getattr(cfg, key.value))


def _enqueue_baseline(study: optuna.Study, cfg: StudyConfig) -> None:
    """Queue the repo's defaults as the first trial, if the search space holds them."""
    defaults = get_backend(cfg.backend).defaults(cfg.stage, cfg.backend_options)
    baseline = {k: v for k, v in defaults.items() if k in cfg.space.names}
    outside = [f"{k}={v!r}" for k, v in baseline.items() if not cfg.space[k].contains(v)]
    if outside:
        log.warning("No baseline trial: the repo's defaults lie outside the edited search space "
                    "(%s).", ", ".join(outside))
    else:
        study.enqueue_trial(baseline, user_attrs={TrialAttr.BASELINE.value: True})


def _sampler_seed(cfg: StudyConfig, storage: StudyStorage, stored: int) -> int:
    """``cfg.seed`` for a new study, moved on by the trials already stored, so that a restarted
    run does not draw the configurations of the run before it again. With a database URL, mixed
    with the machine and process too: workers started together (even on identical Colab VMs,
    whose pids may match) sample different configurations."""
    if storage.durable is not None:
        return cfg.seed + stored
    worker = f"{cfg.seed}:{stored}:{socket.gethostname()}:{os.getpid()}"
    return int.from_bytes(hashlib.sha256(worker.encode()).digest()[:4], "big")


def _count(study: optuna.Study, states: tuple) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def _log_done(study: optuna.Study, cfg: StudyConfig) -> None:
    finished = _count(study, FINISHED_STATES)
    value = best_value(study)
    log.info("Study %r: %d/%d trials finished; best value %s.", cfg.study_name, finished,
             cfg.n_trials, f"{value:.5g}" if math.isfinite(value) else "none yet")



def disk_line(e: BaseException | None, storage: str | None) -> str | None:
    """One line for a full or gone disk anywhere in ``e``'s chain, or None: an OSError before a
    study could hold its folder (Drive still gone), or SQLite's "database or disk is full" from
    the study database (Optuna cannot record the trial then: the next run resumes it)."""
    while e is not None:
        if isinstance(e, OSError) and e.errno in FULL + GONE:
            reason = Failure.DISK_FULL if e.errno in FULL else Failure.DISK_GONE
            return f"Stopped: {disk_advice(reason, e.filename or 'a disk', e.strerror)}."
        if "database or disk is full" in str(e):
            url = storage and is_url(storage)
            place = storage if url else local_base(None, write=False)
            return (f"Stopped: no space left for the study database in {place} (database or "
                    "disk is full): free some space there, then run again; the trial that was "
                    "running then resumes from its last checkpoint" + (
                        "." if url else ", and the snapshot holds every finished trial."))
        e = e.__cause__ or e.__context__
    return None


__all__ = ["run_study"]
