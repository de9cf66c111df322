"""Run a study in-process on the ``mini`` trainers, deciding with the package's own functions.

The pruning and search benchmarks compare presets, not machinery, so they skip the child
process and the database (``bench_overhead.py`` measures those) and drive the SAME trainers
the worker builds, with the package's pieces:

- the space of ``StudyConfig(...).resolved()`` (default space fitted to the backend) and its
  ``suggest``; the backend's defaults enqueued as trial 0 (the baseline);
- ``make_sampler`` / ``make_pruner`` presets, seeded and sized as ``run_study`` does;
- per epoch: ``train_epoch``, ``validate``, then the worker's own decisions
  (``Progress.step``: a non-finite value fails the trial as ``diverged``, early stopping with
  patience 5 after the pruner's warm-up), ``trial.report`` and ``should_prune`` as the runner
  relays them; a trial returns its best epoch's value.

Curves are shared, time is charged. A mini trainer is deterministic given (stage, params,
seed): every batch comes from a generator seeded by (seed, epoch) and nothing else draws random
numbers. So the studies of one seed (which share trial 0 and their sampler's random start-up
trials) train each configuration once, through one :class:`CurveBank`, and replay known epochs.
A study's time is the measured seconds (trainer build + epochs) of every trial and epoch it
used, plus the measured time of its own Optuna work: what it would have taken alone.

Time is CPU time of this (single-threaded) process, ``time.process_time()``: on an idle core it
equals wall time, and unlike wall time it does not change when other jobs share the machine.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.pruners import BasePruner
from optuna.trial import TrialState

from gg_optuna_helpers.backends import TrainerContext, get_backend
from gg_optuna_helpers.config import StudyConfig
from gg_optuna_helpers.presets import make_pruner, make_sampler, warmup_epochs
from gg_optuna_helpers.records import TrialAttr
from gg_optuna_helpers.spaces import SearchSpace
from gg_optuna_helpers.worker import Progress, is_diverged

PATIENCE = StudyConfig.patience  # the package's default early stopping
LIVE_TRAINERS = 24  # trainers kept in memory to continue a curve; older ones are rebuilt


class Diverged(Exception):
    """The worker's decision ended the trial as diverged (it then FAILs, as in the package)."""


def package_space(stage: str, edits: dict[str, Any] | None = None) -> SearchSpace:
    """The search space ``run_study`` would use for ``stage`` on the mini backend."""
    return StudyConfig(stage=stage, edits=dict(edits or {})).resolved().space


@dataclass
class Curve:
    """One configuration's validation values and measured seconds, epoch by epoch."""

    setup_seconds: float = 0.0
    values: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    diverged_at: int | None = None


class CurveBank:
    """Trains each (params) configuration of one stage and seed once, on demand."""

    def __init__(self, stage: str, seed: int, max_epochs: int, cache_dir: Path) -> None:
        self.stage, self.seed, self.max_epochs, self.cache_dir = stage, seed, max_epochs, cache_dir
        self.backend = get_backend("mini")
        self.curves: dict[tuple, Curve] = {}
        self.trainers: OrderedDict[tuple, Any] = OrderedDict()
        self.trained_seconds = 0.0  # CPU seconds spent training, all studies together
        self.epochs_trained = 0  # real epochs trained (replays excluded)

    def start_study(self) -> None:
        """A new study begins (nothing to reset here)."""

    def epoch(self, params: dict[str, Any], epoch: int) -> tuple[float, float]:
        """The value (nan from the epoch it diverged) and charged seconds (with the build at
        epoch 1) of ``epoch`` (from 1) of ``params``."""
        key = tuple(sorted(params.items()))
        curve = self.curves.setdefault(key, Curve())
        while curve.diverged_at is None and len(curve.values) < epoch:
            self._train_next(key, params, curve)
        setup = curve.setup_seconds if epoch == 1 else 0.0
        if curve.diverged_at is not None and epoch >= curve.diverged_at:
            return math.nan, curve.seconds[-1] + setup
        return curve.values[epoch - 1], curve.seconds[epoch - 1] + setup

    def _train_next(self, key: tuple, params: dict[str, Any], curve: Curve) -> None:
        start = time.process_time()
        trainer = self.trainers.pop(key, None)
        if trainer is None:
            trainer = self._build(params)
            for done in range(1, len(curve.values) + 1):  # evicted earlier: retrain, uncharged
                trainer.train_epoch(done)
            if not curve.setup_seconds:
                curve.setup_seconds = time.process_time() - start
        epoch = len(curve.values) + 1
        epoch_start = time.process_time()
        loss = trainer.train_epoch(epoch).get("loss", 0.0)
        value = trainer.validate()["value"] if math.isfinite(loss) else math.nan
        now = time.process_time()
        self.trained_seconds += now - start
        self.epochs_trained += 1
        if is_diverged(loss, value):
            curve.diverged_at = epoch
            curve.seconds.append(now - epoch_start)
            return
        curve.values.append(value)
        curve.seconds.append(now - epoch_start)
        if epoch < self.max_epochs:
            self.trainers[key] = trainer
            while len(self.trainers) > LIVE_TRAINERS:
                self.trainers.popitem(last=False)

    def _build(self, params: dict[str, Any]):
        return self.backend.make_trainer(TrainerContext(
            stage=self.stage, params=dict(params), max_epochs=self.max_epochs, seed=self.seed,
            device="cpu", trial_dir=self.cache_dir, cache_dir=self.cache_dir))


@dataclass
class StudyResult:
    """What one in-process study cost and found."""

    sampler: str
    pruner: str
    seed: int
    best: float  # best completed value
    baseline: float  # trial 0's value (the backend's defaults), nan if it did not complete
    epochs: int  # epochs trained, all trials (a pruned trial counts up to its pruning epoch)
    seconds: float  # charged time (see the module docstring)
    optuna_seconds: float  # the part spent in Optuna and the loop itself
    states: dict[str, int]
    best_so_far: list[float]  # after each trial, in order
    seconds_so_far: list[float] = field(default_factory=list)  # charged, after each trial
    pruned_params: list[dict[str, Any]] = field(default_factory=list)  # of the pruned trials

    def trials_to_reach(self, value: float) -> int | None:
        """How many trials this study needed to reach ``value`` or better (None: never)."""
        for n, best in enumerate(self.best_so_far, 1):
            if best <= value:
                return n
        return None


def run_inprocess(bank: CurveBank, space: SearchSpace, *, sampler: str, pruner: str,
                  n_trials: int, patience: int | None = PATIENCE,
                  variant: Callable[[int], BasePruner] | None = None,
                  diverged_as_pruned: bool = False, seconds_limit: float | None = None,
                  sampler_trials: int | None = None) -> StudyResult:
    """One study of ``n_trials`` trials over ``bank``'s trainers, as ``run_study`` decides.

    ``variant``: a pruner factory (max_epochs -> pruner) to try instead of the preset ``pruner``
    (whose warm-up still sets early stopping's). ``diverged_as_pruned``: end a diverged trial as
    PRUNED (which TPE learns from) instead of FAIL (which it ignores), as the package does.
    ``seconds_limit``: also stop once the trials used this many charged seconds (the trial
    under way finishes). ``sampler_trials``: the budget the sampler preset is sized for
    (default ``n_trials``).
    """
    seed, max_epochs = bank.seed, bank.max_epochs
    study = optuna.create_study(
        direction="minimize", study_name=f"mini_{bank.stage}_seed{seed}",
        sampler=make_sampler(sampler, seed=seed, n_trials=sampler_trials or n_trials),
        pruner=(variant or partial(make_pruner, pruner))(max_epochs=max_epochs))
    defaults = bank.backend.defaults(bank.stage, {})
    study.enqueue_trial({k: v for k, v in defaults.items() if k in space.names},
                        user_attrs={TrialAttr.BASELINE.value: True})
    warmup = warmup_epochs(pruner, max_epochs)
    charged = {"seconds": 0.0, "epochs": 0}
    seconds_so_far: list[float] = []

    def objective(trial: optuna.Trial) -> float:
        params = space.suggest(trial)
        progress = Progress()
        for epoch in range(1, max_epochs + 1):
            charged["epochs"] += 1
            value, seconds = bank.epoch(params, epoch)
            charged["seconds"] += seconds
            step = progress.step(epoch, value, min_delta=0.0, patience=patience,
                                 warmup_epochs=warmup)
            if step.diverged:
                raise optuna.TrialPruned() if diverged_as_pruned else Diverged()
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
            if step.stop:
                break
        return progress.best_value

    def after_trial(study: optuna.Study, _: optuna.trial.FrozenTrial) -> None:
        seconds_so_far.append(charged["seconds"])
        if seconds_limit is not None and charged["seconds"] >= seconds_limit:
            study.stop()

    bank.start_study()
    trained_before = bank.trained_seconds
    start = time.process_time()
    study.optimize(objective, n_trials=n_trials, catch=(Diverged,), callbacks=[after_trial])
    optuna_seconds = time.process_time() - start - (bank.trained_seconds - trained_before)
    trials = study.get_trials(deepcopy=False)
    best_so_far, best = [], math.inf
    for t in trials:
        if t.state == TrialState.COMPLETE:
            best = min(best, t.value)
        best_so_far.append(best)
    baseline = trials[0].value if trials[0].state == TrialState.COMPLETE else math.nan
    return StudyResult(
        sampler=sampler, pruner=pruner, seed=seed, best=best, baseline=baseline,
        epochs=charged["epochs"], seconds=charged["seconds"] + optuna_seconds,
        optuna_seconds=optuna_seconds,
        states={s.name.lower(): sum(t.state == s for t in trials) for s in
                (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)},
        best_so_far=best_so_far, seconds_so_far=seconds_so_far,
        pruned_params=[t.params for t in trials if t.state == TrialState.PRUNED])
