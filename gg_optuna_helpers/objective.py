"""Running one trial of a study: its folder, its spec, its worker, its records and artifacts.

:class:`Objective` is what ``study.optimize`` calls. It claims the trial's folder (kept for a
re-queued trial, which resumes from its ``last.pt``), writes the spec, records a first heartbeat
and a snapshot (so that a new VM knows the trial), runs the worker, and keeps the preview as an
Optuna artifact. A trial that a worker started beyond the total ends at once as ``surplus``.

Disks: a trial whose folder is full or gone (``disk_full``, ``disk_gone``) is re-queued and the
study stops at once (:class:`~.errors.DiskFault`, one line); a snapshot that cannot be written is
retried while the trial runs, and the study stops after that trial if it still fails. Once a
trial has ended for good its folder keeps only ``best.pt`` of a COMPLETE trial (trial_dirs.tidy).
Before the first trial, the checkpoints the study will write are compared with the free space.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from .config import StudyConfig
from .errors import ConfigError, DiskFault, TrialFailed
from .meshhead_link import link_meshhead
from .presets import warmup_epochs
from .protocol import LAST, PREVIEW, TrialSpec
from .records import Failure, TrialAttr, best, get, put
from .recovery import retried_number
from .runner import (TimeLimits, WarmWorker, disk_advice, disk_failure, disk_faults, log_tail,
                     run_trial, unreachable)
from .storage import StudyStorage
from .trial_dirs import (checkpoint_sizes, claim, format_bytes, free_bytes, known_dirs,
                         study_uid, tidy)
from .trial_log import describe_trial

log = logging.getLogger("gg_optuna_helpers")
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)  # count towards n_trials
TAKEN_STATES = FINISHED_STATES + (TrialState.RUNNING,)  # hold a place of the n_trials
ARTIFACT_MAX_BYTES = 200 * 2**20
DISK_FAULTS = (Failure.DISK_FULL, Failure.DISK_GONE)
FAILURE_KEYS = (TrialAttr.FAILURE.value, TrialAttr.FAILURE_LOG.value)


def best_value(study: optuna.Study) -> float:
    """The study's best value so far (inf before any trial completed)."""
    found = best(study.get_trials(deepcopy=False))
    return math.inf if found is None else found.value


class Objective:
    """Runs one trial in a worker process; logs one line per finished trial."""

    def __init__(self, cfg: StudyConfig, storage: StudyStorage, study: optuna.Study) -> None:
        self.cfg, self.storage, self.study = cfg, storage, study
        self.results = cfg.results
        self.artifacts = optuna.artifacts.FileSystemArtifactStore(str(_mkdir(
            self.results.artifacts)))
        self.options = dict(cfg.backend_options)
        if cfg.stage == "gazegaussian":
            ckpt = self.options["meshhead_checkpoint"] = link_meshhead(study, storage, cfg)
            log.info("Using the best MeshHead of study %r: %s", cfg.meshhead_study, ckpt)
        self.study_id = storage.rdb.get_study_id_from_name(cfg.study_name)
        self.uid, self.known = study_uid(storage.rdb, cfg.study_name), known_dirs(study)
        self.warm: WarmWorker | None = None
        self.failures_in_a_row = 0
        self.best = best_value(study)
        self.sized = False  # the free-space check had checkpoints to go on
        self._check_start()

    def __call__(self, trial: optuna.Trial) -> float:
        if self._surplus(trial):
            put(trial, TrialAttr.FAILURE, Failure.SURPLUS)
            put(trial, TrialAttr.FAILURE_LOG, f"{self.cfg.n_trials} trials were already finished "
                                              "or running in other workers; nothing was trained")
            raise TrialFailed(Failure.SURPLUS)
        trial_id = self.storage.rdb.get_trial_id_from_study_id_trial_number(self.study_id,
                                                                             trial.number)
        stored = self.storage.rdb.get_trial(trial_id)
        original = retried_number(stored)
        number = trial.number if original is None else original
        trial_dir = self.results.trial_dir(self.cfg.study_name, number)
        try:
            spec = self._spec(trial, original, trial_dir)
            # A new VM then knows this trial and its folder; with a heartbeat already recorded,
            # so that there it turns stale and is re-queued rather than left RUNNING.
            self.storage.rdb.record_heartbeat(trial_id)
            self.storage.snapshot(force=True)
            return self._run(trial, spec, set(stored.intermediate_values))
        except TrialFailed as e:
            put(trial, TrialAttr.FAILURE, e.reason)
            put(trial, TrialAttr.FAILURE_LOG, (e.detail + "\n" + log_tail(trial_dir)).strip())
            if e.reason in DISK_FAULTS:
                self._stop_for_disk(trial, trial_id, e.detail)
            raise

    def _spec(self, trial: optuna.Trial, original: int | None, trial_dir: Path) -> TrialSpec:
        """Claim the trial's folder (its original number's for a retry) and describe the work."""
        cfg = self.cfg
        params = cfg.space.suggest(trial)
        number = trial.number if original is None else original
        with disk_faults(self.results.folder):
            claim(trial_dir, self.uid, number, fresh=original is None, known=self.known)
        put(trial, TrialAttr.TRIAL_DIR, str(trial_dir))
        put(trial, TrialAttr.MAX_EPOCHS, cfg.max_epochs)
        return TrialSpec(
            backend=cfg.backend, stage=cfg.stage, params=params, max_epochs=cfg.max_epochs,
            trial_dir=str(trial_dir), cache_dir=str(self.results.cache(cfg.backend)),
            seed=cfg.seed, device=cfg.device,
            resume=str(trial_dir / LAST) if original is not None else None,
            patience=cfg.patience, min_delta=cfg.min_delta,
            warmup_epochs=warmup_epochs(cfg.pruner, cfg.max_epochs),
            options=self._options_for(trial.number))

    def _run(self, trial: optuna.Trial, spec: TrialSpec, reported: set[int]) -> float:
        """Train ``spec`` in a worker; keep its preview (best.pt stays in the trial folder)."""
        limits = TimeLimits(trial_timeout=self.cfg.trial_timeout,
                            epoch_timeout=self.cfg.epoch_timeout)
        try:
            outcome = run_trial(trial, spec, limits=limits, reported=reported,
                                on_tick=self.storage.snapshot, warm=self.warm)
        except KeyboardInterrupt:
            put(trial, TrialAttr.FAILURE, Failure.INTERRUPTED)
            raise
        finally:
            self._upload(trial, Path(spec.trial_dir) / PREVIEW)
        return outcome.best_value

    def _stop_for_disk(self, trial: optuna.Trial, trial_id: int, detail: str) -> None:
        """Re-queue the trial (it resumes from its checkpoint) and stop the study in one line."""
        self.storage.snapshot(force=True)  # before the retry exists: a new VM that restores
        self._requeue(trial_id)  # this snapshot re-queues the RUNNING trial itself, once
        raise DiskFault(f"Stopped: {detail}; trial {trial.number} is re-queued to resume from "
                        f"its last checkpoint, and {self._kept()}.") from None

    def _requeue(self, trial_id: int) -> None:
        """Queue a retry of the running trial, as the heartbeat does for a dead one's: it
        resumes from its last checkpoint in the same folder."""
        retry = self.storage.rdb.get_heartbeat_stale_trial_callback()
        frozen = self.storage.rdb.get_trial(trial_id)
        frozen.user_attrs = {k: v for k, v in frozen.user_attrs.items() if k not in FAILURE_KEYS}
        if retry is not None:
            retry(self.study, frozen)

    def _kept(self) -> str:
        """Where the finished trials are, as the latest snapshot left them."""
        storage = self.storage
        if storage.durable is None:
            return "every finished trial is kept"
        if storage.snapshot_error is None:
            return f"every finished trial is kept in {storage.durable}"
        return (f"every finished trial is kept in this machine's live copy {storage.live} (the "
                f"snapshot {storage.durable} cannot be written)")

    def _snapshot_fault(self) -> str:
        """What went wrong with the snapshot and what to do (no final period)."""
        error, folder = self.storage.snapshot_error, self.storage.durable.parent
        why = unreachable(folder) or getattr(error, "strerror", None) or str(error)
        reason = disk_failure(error, folder) or Failure.DISK_GONE
        return disk_advice(reason, self.storage.durable, why) + (
            f" on this machine: its live copy {self.storage.live} holds every finished trial "
            "until the snapshot can be written")

    def _surplus(self, trial: optuna.Trial) -> bool:
        """True for the newest of the trials that workers started at once beyond the total."""
        active = self.study.get_trials(deepcopy=False, states=TAKEN_STATES)
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
        try:
            if path.exists() and path.stat().st_size <= ARTIFACT_MAX_BYTES:
                optuna.artifacts.upload_artifact(artifact_store=self.artifacts,
                                                 file_path=str(path), study_or_trial=trial)
        except OSError as e:  # a full or gone disk: the trial's own files are what matter, and
            log.debug("Could not keep %s as an artifact (%s).", path, e)  # the study says so

    def after_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.storage.snapshot(force=True)
        self.failures_in_a_row = self.failures_in_a_row + 1 if trial.state == TrialState.FAIL else 0
        if self.failures_in_a_row >= self.cfg.max_failures_in_a_row:
            study.stop()  # run_study says why (else this optimize call runs all trials left)
        log.info(describe_trial(trial, self.best))
        if trial.state == TrialState.COMPLETE and trial.value < self.best:
            self.best = trial.value
        if not self.sized:  # the first checkpoints of this run (before tidy removes last.pt)
            self.sized = self._check_space(start=False)
        tidy_trial(trial)
        if self.storage.snapshot_error is not None:  # retried since the trial began: still fails
            raise DiskFault(f"Stopped after trial {trial.number}: {self._snapshot_fault()}.")

    # --- disks: before the first trial, and each trial's folder once it has ended ---------------

    def _check_start(self) -> None:
        """A snapshot that cannot be written stops the run before any trial; leftover
        checkpoints of ended trials are removed; the free space is checked."""
        if self.storage.snapshot_error is not None:
            raise DiskFault(f"Not started: {self._snapshot_fault()}.")
        latest = {get(t, TrialAttr.TRIAL_DIR): t for t in self.study.get_trials(deepcopy=False)}
        for trial in latest.values():  # each folder's latest attempt (a kill before its tidy)
            tidy_trial(trial)
        self.sized = self._check_space(start=True)

    def _check_space(self, *, start: bool) -> bool:
        """Compare the checkpoints the trials left may write with the free space: refuse at the
        start when not even one trial fits, else warn in one line when all may not. False when
        there is no checkpoint yet to measure."""
        folder = self.results.study_dir(self.cfg.study_name)
        sizes, free = checkpoint_sizes(folder), free_bytes(folder)
        left = self.cfg.n_trials - len(self.study.get_trials(deepcopy=False,
                                                             states=FINISHED_STATES))
        if sizes is None or free is None or left <= 0:
            return sizes is not None
        last, best_pt = sizes  # last is None: only best.pt to go on, and last.pt is larger
        one = 2 * (last or best_pt) + best_pt  # last.pt, the next one as it is written, best.pt
        need = one + (left - 1) * best_pt  # each trial that completes keeps its best.pt
        if start and free < one:
            measured = (f"up to {format_bytes(one)} of checkpoints (last.pt {format_bytes(last)}, "
                        if last else f"more than {format_bytes(one)} of checkpoints (")
            raise ConfigError(
                f"{folder} has {format_bytes(free)} free, but one trial of this study writes "
                f"{measured}best.pt {format_bytes(best_pt)}): free some space there or choose "
                "another results folder (--results-dir), then run again.")
        if free < need:
            log.warning("%s has %s free, and the %d trials left may write %s%s of checkpoints: "
                        "free some space there, or the study stops as disk_full when it is full "
                        "(its running trial then resumes once there is room).", folder,
                        format_bytes(free), left, "about " if last else "more than ",
                        format_bytes(need))
        return True


def tidy_trial(trial: FrozenTrial) -> None:
    """A trial that has ended for good keeps only what a later step reads: its best.pt if it
    completed, nothing if it was pruned or failed. A trial that is re-queued (interrupted,
    disconnected, a disk fault) keeps its last.pt, to resume from."""
    folder, failure = get(trial, TrialAttr.TRIAL_DIR), Failure.of(trial)
    if folder and trial.state in (*FINISHED_STATES, TrialState.FAIL) and not (
            failure and failure.requeued):
        tidy(Path(folder), keep_best=trial.state == TrialState.COMPLETE)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


__all__ = ["ARTIFACT_MAX_BYTES", "DISK_FAULTS", "FINISHED_STATES", "Objective", "TAKEN_STATES",
           "best_value", "tidy_trial"]
