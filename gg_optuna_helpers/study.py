"""Create or resume a study and run it to its total number of finished trials.

``run_study(StudyConfig(stage="meshhead"))`` is the whole job of notebooks 01/02 and of
``python -m gg_optuna_helpers run``. Re-running it after a disconnect finishes only what is left:
dead trials are re-queued by the storage heartbeat and resume from their last checkpoint.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import sys
import socket
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import FrozenTrial, TrialState
from tqdm.auto import tqdm

from .backends import STAGES, get_backend
from .errors import ConfigError, StudyNotFound, TrialFailed
from .meshhead_link import link_meshhead
from .presets import make_pruner, make_sampler, warmup_epochs
from .protocol import BEST, LAST, PREVIEW, TrialSpec
from .runner import Limits, WarmWorker, frozen, log_tail, run_trial
from .spaces import SPACES, SearchSpace
from .config_checks import check_backend_options, check_numbers, check_places
from .layout import check_study_name
from .storage import StudyStorage, open_storage, open_study
from .trial_dirs import check_study_dir, claim, known_dirs, study_uid

log = logging.getLogger("gg_optuna_helpers")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
ARTIFACT_MAX_BYTES = 200 * 2**20


@dataclass
class StudyConfig:
    """Every knob of one study. Unset names get sensible defaults in :meth:`resolved`."""

    stage: str
    backend: str = "mini"
    study_name: str | None = None  # default: "<backend>_<stage>"
    storage: str = "gg_results"  # a folder (snapshots) or a sqlite:// / postgresql:// URL
    results_dir: str | None = None  # trial folders; default: the storage folder
    n_trials: int = 20  # finished trials in total, across restarts
    max_epochs: int = 20
    pruner: str = "median"
    sampler: str = "tpe"
    seed: int = 42
    timeout: float | None = None  # seconds for this call
    trial_timeout: float | None = None
    epoch_timeout: float | None = None
    patience: int | None = 5  # early stopping; None: off
    min_delta: float = 0.0
    device: str = "auto"
    space: SearchSpace | None = None
    edits: dict[str, Any] = field(default_factory=dict)  # e.g. {"batch_size": [1]}
    backend_options: dict[str, Any] = field(default_factory=dict)
    meshhead_study: str | None = None  # gazegaussian stage: where the best MeshHead comes from
    change_meshhead: bool = False  # allow a MeshHead other than the one the study recorded
    heartbeat_interval: int = 10
    local_dir: str | None = None
    show_progress_bar: bool = True
    max_failures_in_a_row: int = 5
    warm_worker: bool = True  # start the next trial's process while the current one trains

    def resolved(self) -> StudyConfig:
        """A checked copy with defaults filled in; bad values raise one-sentence ConfigErrors."""
        cfg = copy.deepcopy(self)
        if cfg.stage not in STAGES:
            raise ConfigError(f"Unknown stage {cfg.stage!r}: choose one of {', '.join(STAGES)}.")
        check_numbers(cfg)
        make_pruner(cfg.pruner, max_epochs=cfg.max_epochs)
        make_sampler(cfg.sampler)
        cfg.study_name = check_study_name(cfg.study_name or f"{cfg.backend}_{cfg.stage}")
        cfg.meshhead_study = check_study_name(cfg.meshhead_study or f"{cfg.backend}_meshhead",
                                              "MeshHead study name")
        cfg.storage = os.fspath(cfg.storage)
        if cfg.results_dir is None:
            cfg.results_dir = "gg_results" if "://" in cfg.storage else cfg.storage
        check_places(cfg)
        check_backend_options(cfg)
        backend = get_backend(cfg.backend)
        limits = backend.limits(cfg.stage, cfg.backend_options)
        space = cfg.space or SPACES[cfg.stage].fitted(limits, keep=cfg.edits)
        cfg.space = space.replace(**cfg.edits)
        cfg.space.validate(limits, cfg.backend)
        return cfg


def run_study(config: StudyConfig) -> optuna.Study:
    """Create or resume the study and run it until ``n_trials`` trials have finished."""
    cfg = config.resolved()
    log_to_stdout()
    _check_prior(cfg)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our one line per trial replaces its
    storage = open_storage(cfg.storage, study_name=cfg.study_name, local_dir=cfg.local_dir,
                           heartbeat_interval=cfg.heartbeat_interval)
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
        prior = open_study(cfg.storage, cfg.study_name)
    except StudyNotFound:
        prior = None
    if prior is not None:
        _check_compatible(prior, cfg)
    uid = prior and study_uid(prior, make=False)
    study_dir = Path(cfg.results_dir).resolve() / cfg.study_name
    check_study_dir(study_dir, uid, known_dirs(prior))


def _run(cfg: StudyConfig, storage: StudyStorage) -> optuna.Study:
    study = _create_or_load(cfg, storage)
    _recover_dead_trials(study, storage)
    objective = _Objective(cfg, storage, study)
    log.info("Study %r (%s, %s backend) in %s", cfg.study_name, cfg.stage, cfg.backend,
             storage.describe())
    deadline = time.monotonic() + cfg.timeout if cfg.timeout else None
    try:
        objective.warm = WarmWorker() if cfg.warm_worker else None
        while (left := cfg.n_trials - _count(study, FINISHED + (TrialState.RUNNING,))) > 0:
            if objective.failures_in_a_row >= cfg.max_failures_in_a_row:
                log.warning("Stopping: %d trials failed in a row; see user_attrs['failure'] and "
                            "the worker logs in %s.", objective.failures_in_a_row, cfg.results_dir)
                break
            remaining = deadline - time.monotonic() if deadline else None
            if remaining is not None and remaining <= 0:
                break
            study.optimize(objective, n_trials=left, timeout=remaining, catch=(TrialFailed,),
                           callbacks=[objective.after_trial, _stop_at_total(cfg.n_trials)],
                           show_progress_bar=cfg.show_progress_bar, gc_after_trial=True)
    except KeyboardInterrupt:
        _requeue_interrupted(study, storage)
        log.warning("Interrupted: the running trial was stopped and re-queued; run again to "
                    "resume it from its last checkpoint.")
        raise
    finally:
        if objective.warm is not None:
            objective.warm.close()
    _log_done(study, cfg)
    return study


class _Objective:
    """Runs one trial in a worker process; logs one line per finished trial."""

    def __init__(self, cfg: StudyConfig, storage: StudyStorage, study: optuna.Study) -> None:
        self.cfg, self.storage = cfg, storage
        self.study_dir = Path(cfg.results_dir).resolve() / cfg.study_name
        self.cache_dir = Path(cfg.results_dir).resolve() / ".cache" / cfg.backend
        self.artifacts = optuna.artifacts.FileSystemArtifactStore(
            str(_mkdir(Path(cfg.results_dir).resolve() / "artifacts")))
        self.options = dict(cfg.backend_options)
        if cfg.stage == "gazegaussian":
            ckpt = self.options["meshhead_checkpoint"] = link_meshhead(study, storage, cfg)
            log.info("Using the best MeshHead of study %r: %s", cfg.meshhead_study, ckpt)
        self.study = study
        self.uid, self.known = study_uid(study), known_dirs(study)
        self.warm: WarmWorker | None = None
        self.failures_in_a_row = 0
        self.best = _best_value(study)

    def __call__(self, trial: optuna.Trial) -> float:
        cfg = self.cfg
        if self._surplus(trial):
            trial.set_user_attr("failure", "surplus")
            trial.set_user_attr("failure_log", f"{cfg.n_trials} trials were already finished or "
                                               "running in other workers; nothing was trained")
            raise TrialFailed("surplus")
        original = _retried_number(frozen(trial))
        params = cfg.space.suggest(trial)
        number = trial.number if original is None else original
        trial_dir = self.study_dir / f"trial_{number:04d}"
        claim(trial_dir, self.uid, number, fresh=original is None, known=self.known)
        trial.set_user_attr("trial_dir", str(trial_dir))
        trial.set_user_attr("max_epochs", cfg.max_epochs)
        spec = TrialSpec(
            backend=cfg.backend, stage=cfg.stage, params=params, max_epochs=cfg.max_epochs,
            trial_dir=str(trial_dir), cache_dir=str(self.cache_dir), seed=cfg.seed,
            device=cfg.device, resume=str(trial_dir / LAST) if original is not None else None,
            patience=cfg.patience, min_delta=cfg.min_delta,
            warmup_epochs=warmup_epochs(cfg.pruner, cfg.max_epochs),
            options=self._options_for(trial.number))
        limits = Limits(trial_timeout=cfg.trial_timeout, epoch_timeout=cfg.epoch_timeout)
        # A new VM then knows this trial and its folder; with a heartbeat already recorded, so
        # that there it turns stale and is re-queued rather than left RUNNING.
        self.storage.rdb.record_heartbeat(trial._trial_id)
        self.storage.snapshot(force=True)
        try:
            outcome = run_trial(trial, spec, limits=limits, on_tick=self.storage.snapshot,
                                warm=self.warm)
        except TrialFailed as e:
            trial.set_user_attr("failure", e.reason)
            trial.set_user_attr("failure_log", (e.detail + "\n" + log_tail(trial_dir)).strip())
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("failure", "interrupted")
            raise
        finally:
            self._upload(trial, trial_dir / PREVIEW)
        self._upload(trial, trial_dir / BEST)
        return outcome.best_value

    def _surplus(self, trial: optuna.Trial) -> bool:
        """True for the newest of the trials that workers started at once beyond the total."""
        active = self.study.get_trials(deepcopy=False, states=FINISHED + (TrialState.RUNNING,))
        running = [t.number for t in active if t.state == TrialState.RUNNING]
        return len(active) > self.cfg.n_trials and trial.number == max(running)

    def _options_for(self, number: int) -> dict[str, Any]:
        """Backend options; the test hook ``faults`` ({trial number: fault}) picks one trial."""
        options = dict(self.options)
        faults = options.pop("faults", None)
        if isinstance(faults, str):
            faults = json.loads(faults)
        if faults and str(number) in {str(k) for k in faults}:
            options["fault"] = {str(k): v for k, v in faults.items()}[str(number)]
        return options

    def _upload(self, trial: optuna.Trial, path: Path) -> None:
        if path.exists() and path.stat().st_size <= ARTIFACT_MAX_BYTES:
            try:
                optuna.artifacts.upload_artifact(artifact_store=self.artifacts,
                                                 file_path=str(path), study_or_trial=trial)
            except OSError as e:  # e.g. a full disk: the trial's own files are what matter
                log.warning("Could not keep %s as an artifact (%s).", path, e.strerror or e)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.storage.snapshot(force=True)
        self.failures_in_a_row = self.failures_in_a_row + 1 if trial.state == TrialState.FAIL else 0
        log.info(describe_trial(trial, self.best))
        if trial.state == TrialState.COMPLETE and trial.value < self.best:
            self.best = trial.value


class _TqdmHandler(logging.Handler):
    """Writes to the current stdout, above a running progress bar instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(self.format(record), file=sys.stdout)


def log_to_stdout() -> None:
    """Show our one line per trial on stdout (a notebook cell, a terminal), once."""
    if not any(isinstance(h, _TqdmHandler) for h in log.handlers):
        handler = _TqdmHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def describe_trial(trial: FrozenTrial, best_before: float = math.inf) -> str:
    """One line per finished trial: its value, where it was pruned, or why it failed."""
    attrs = trial.user_attrs
    tag = " (baseline)" if attrs.get("baseline") else ""
    if trial.state == TrialState.COMPLETE:
        stop = (f", early-stopped at epoch {attrs['early_stopped_at']}"
                if "early_stopped_at" in attrs else "")
        mark = "  <- new best" if trial.value < best_before else ""
        return f"Trial {trial.number}{tag}: value {trial.value:.5g}{stop}{mark}"
    if trial.state == TrialState.PRUNED:
        return f"Trial {trial.number}{tag}: pruned at epoch {attrs.get('pruned_at', trial.last_step)}"
    reason = attrs.get("failure", "disconnected (re-queued)")
    detail = attrs.get("failure_log", "").splitlines()[:1]
    return f"Trial {trial.number}{tag}: failed: {reason}" + (f" ({detail[0]})" if detail else "")


def _stop_at_total(n_trials: int):
    """Stop once finished trials plus those other workers are running reach ``n_trials``.

    Optuna's MaxTrialsCallback counts finished trials only, so each of several workers would
    start one more trial at the end. A running trial that later fails frees its place again.
    """
    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        if _count(study, FINISHED + (TrialState.RUNNING,)) >= n_trials:
            study.stop()

    return callback


def _create_or_load(cfg: StudyConfig, storage: StudyStorage) -> optuna.Study:
    pruner = make_pruner(cfg.pruner, max_epochs=cfg.max_epochs)
    common = dict(study_name=cfg.study_name, storage=storage.rdb, pruner=pruner)
    try:
        study, created = optuna.create_study(direction="minimize", **common), True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(**common)
        _check_compatible(study, cfg)
        created = "stage" not in study.user_attrs and not study.get_trials(deepcopy=False)
    study_uid(study)
    seed = _sampler_seed(cfg, storage, len(study.get_trials(deepcopy=False)))
    study.sampler = make_sampler(cfg.sampler, seed=seed, n_trials=cfg.n_trials)
    if not created:
        return study
    for key in ("backend", "stage", "max_epochs"):
        study.set_user_attr(key, getattr(cfg, key))
    defaults = get_backend(cfg.backend).defaults(cfg.stage, cfg.backend_options)
    baseline = {k: v for k, v in defaults.items() if k in cfg.space.names}
    outside = [f"{k}={v!r}" for k, v in baseline.items() if not cfg.space[k].contains(v)]
    if outside:
        log.warning("No baseline trial: the repo's defaults lie outside the edited search space "
                    "(%s).", ", ".join(outside))
    else:
        study.enqueue_trial(baseline, user_attrs={"baseline": True})
    return study


def _sampler_seed(cfg: StudyConfig, storage: StudyStorage, stored: int) -> int:
    """``cfg.seed`` for a new study, moved on by the trials already stored, so that a restarted
    run does not draw the configurations of the run before it again. With a database URL, mixed
    with the machine and process too: workers started together (even on identical Colab VMs,
    whose pids may match) sample different configurations."""
    if storage.durable is not None:
        return cfg.seed + stored
    worker = f"{cfg.seed}:{stored}:{socket.gethostname()}:{os.getpid()}"
    return int.from_bytes(hashlib.sha256(worker.encode()).digest()[:4], "big")


def _check_compatible(study: optuna.Study, cfg: StudyConfig) -> None:
    if len(study.directions) != 1 or study.direction != optuna.study.StudyDirection.MINIMIZE:
        raise ConfigError(
            f"Study {cfg.study_name!r} already exists with direction "
            f"{[d.name.lower() for d in study.directions]}, but these studies minimize: "
            "choose another study name or storage.")
    for key in ("backend", "stage"):
        found = study.user_attrs.get(key)
        if found is not None and found != getattr(cfg, key):
            raise ConfigError(
                f"Study {cfg.study_name!r} was created for {key} {found!r}, not "
                f"{getattr(cfg, key)!r}: choose another study name.")
    searched = {}
    for trial in study.get_trials(deepcopy=False):
        searched.update(trial.distributions)
    for name, old in searched.items():
        if name in cfg.space.names:
            new = cfg.space[name].distribution()
            if type(old) is not type(new) or getattr(old, "log", 0) != getattr(new, "log", 0):
                raise ConfigError(
                    f"Study {cfg.study_name!r} searched {name!r} as {_kind(old)}, so it cannot "
                    f"become {_kind(new)} now: keep its kind (a range stays a range, choices stay "
                    "choices), or choose another study name.")


def _kind(dist: optuna.distributions.BaseDistribution) -> str:
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return f"choices {list(dist.choices)}"
    return f"a range {dist.low:g}..{dist.high:g}"


def _recover_dead_trials(study: optuna.Study, storage: StudyStorage) -> None:
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
        running = _count(study, (TrialState.RUNNING,))
        if not running or time.monotonic() > deadline:
            return
        if not told:
            log.info("Waiting up to %d s to tell whether %d running trial(s) are still alive...",
                     grace, running)
            told = True
        time.sleep(1)


def _requeue_interrupted(study: optuna.Study, storage: StudyStorage) -> None:
    """Queue a retry of trials stopped by Ctrl-C, so the next run resumes them."""
    retry = storage.rdb.get_heartbeat_stale_trial_callback()
    queued = {_retried_number(t) for t in study.get_trials(deepcopy=False)}
    for trial in study.get_trials(states=(TrialState.FAIL,)):
        if trial.user_attrs.get("failure") == "interrupted" and trial.number not in queued:
            trial.user_attrs = {k: v for k, v in trial.user_attrs.items()
                                if k not in ("failure", "failure_log")}
            retry(study, trial)


def _retried_number(trial: FrozenTrial) -> int | None:
    """The original trial number of a re-queued trial (stable across repeated retries)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)


def best_checkpoint(storage: StudyStorage | str, study_name: str) -> Path | None:
    """The ``best.pt`` of the best finished trial of ``study_name``, or None."""
    try:
        best = open_study(storage, study_name).best_trial
    except (ConfigError, ValueError):
        return None
    path = Path(best.user_attrs.get("trial_dir", "")) / BEST
    return path if path.is_file() else None


def _best_value(study: optuna.Study) -> float:
    values = [t.value for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    return min(values, default=math.inf)


def _count(study: optuna.Study, states: tuple[TrialState, ...]) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _log_done(study: optuna.Study, cfg: StudyConfig) -> None:
    finished = _count(study, FINISHED)
    best = _best_value(study)
    log.info("Study %r: %d/%d trials finished; best value %s.", cfg.study_name, finished,
             cfg.n_trials, f"{best:.5g}" if math.isfinite(best) else "none yet")
