"""Running one trial of a study: its folder, its spec, its worker, its records and artifacts.

:class:`Objective` is what ``study.optimize`` calls. It claims the trial's folder (kept for a
re-queued trial, which resumes from its ``last.pt``), writes the spec, records a first heartbeat
and a snapshot (so that a new VM knows the trial), runs the worker, and keeps the preview and the
best checkpoint as Optuna artifacts. A trial that a worker started beyond the total ends at once
as ``surplus``.
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
from .errors import TrialFailed
from .meshhead_link import link_meshhead
from .presets import warmup_epochs
from .protocol import BEST, LAST, PREVIEW, TrialSpec
from .records import Failure, TrialAttr, best, put
from .recovery import retried_number
from .runner import TimeLimits, WarmWorker, log_tail, run_trial
from .storage import StudyStorage
from .trial_dirs import claim, known_dirs, study_uid
from .trial_log import describe_trial

log = logging.getLogger("gg_optuna_helpers")
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)  # count towards n_trials
TAKEN_STATES = FINISHED_STATES + (TrialState.RUNNING,)  # hold a place of the n_trials
ARTIFACT_MAX_BYTES = 200 * 2**20


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
        spec = self._spec(trial, original)
        # A new VM then knows this trial and its folder; with a heartbeat already recorded, so
        # that there it turns stale and is re-queued rather than left RUNNING.
        self.storage.rdb.record_heartbeat(trial_id)
        self.storage.snapshot(force=True)
        return self._run(trial, spec, set(stored.intermediate_values))

    def _spec(self, trial: optuna.Trial, original: int | None) -> TrialSpec:
        """Claim the trial's folder (its original number's for a retry) and describe the work."""
        cfg = self.cfg
        params = cfg.space.suggest(trial)
        number = trial.number if original is None else original
        trial_dir = self.results.trial_dir(cfg.study_name, number)
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
        """Train ``spec`` in a worker; record why it failed; keep its preview and checkpoint."""
        trial_dir = Path(spec.trial_dir)
        limits = TimeLimits(trial_timeout=self.cfg.trial_timeout,
                            epoch_timeout=self.cfg.epoch_timeout)
        try:
            outcome = run_trial(trial, spec, limits=limits, reported=reported,
                                on_tick=self.storage.snapshot, warm=self.warm)
        except TrialFailed as e:
            put(trial, TrialAttr.FAILURE, e.reason)
            put(trial, TrialAttr.FAILURE_LOG, (e.detail + "\n" + log_tail(trial_dir)).strip())
            raise
        except KeyboardInterrupt:
            put(trial, TrialAttr.FAILURE, Failure.INTERRUPTED)
            raise
        finally:
            self._upload(trial, trial_dir / PREVIEW)
        self._upload(trial, trial_dir / BEST)
        return outcome.best_value

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
        if path.exists() and path.stat().st_size <= ARTIFACT_MAX_BYTES:
            try:
                optuna.artifacts.upload_artifact(artifact_store=self.artifacts,
                                                 file_path=str(path), study_or_trial=trial)
            except OSError as e:  # e.g. a full disk: the trial's own files are what matter
                log.warning("Could not keep %s as an artifact (%s).", path, e.strerror or e)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.storage.snapshot(force=True)
        self.failures_in_a_row = self.failures_in_a_row + 1 if trial.state == TrialState.FAIL else 0
        if self.failures_in_a_row >= self.cfg.max_failures_in_a_row:
            study.stop()  # run_study says why (else this optimize call runs all trials left)
        log.info(describe_trial(trial, self.best))
        if trial.state == TrialState.COMPLETE and trial.value < self.best:
            self.best = trial.value


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


__all__ = ["ARTIFACT_MAX_BYTES", "FINISHED_STATES", "Objective", "TAKEN_STATES", "best_value"]
