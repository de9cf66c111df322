"""Pruner and sampler presets, sized to the study's budget.

Pick a pruner by symptom:

============================  =====================================================
symptom                       what to do
============================  =====================================================
optimisation is slow          ``hyperband`` or ``asha`` stop weak trials earliest
all / most trials pruned      ``curve`` (the default) or ``patient`` (noisy curves)
results not improving         widen the space, try sampler ``gp``, more trials
out-of-memory failures        narrow ``batch_size`` or the model in the space
============================  =====================================================
"""

from __future__ import annotations

from optuna.pruners import (
    BasePruner,
    HyperbandPruner,
    MedianPruner,
    NopPruner,
    PatientPruner,
    SuccessiveHalvingPruner,
)
from optuna.samplers import BaseSampler, GPSampler, RandomSampler, TPESampler

from .curve_pruner import CurvePruner
from .errors import ConfigError

REFERENCE_EPOCHS = 30  # the epoch budget the presets' numbers were chosen for


def _median(max_epochs: int) -> BasePruner:
    """Prune a trial whose value is worse than the median of earlier trials at the same epoch.

    The Optuna guide's choice. Waits for 3 finished trials and 5 warm-up epochs (fewer for short budgets), so
    the loss weights that only act after a few epochs get a fair chance. If nearly every trial
    is pruned, your curves are noisy: use ``patient``.
    """
    return MedianPruner(n_startup_trials=3, n_warmup_steps=warmup_epochs("median", max_epochs),
                        interval_steps=1)


def _hyperband(max_epochs: int) -> BasePruner:
    """Hyperband over 5..30 epochs with reduction factor 3, scaled to the epoch budget.

    Pick it when optimisation is slow and you have 30+ trials: it saves the most GPU time.
    With fewer trials its brackets starve the sampler; use ``median``.
    """
    return HyperbandPruner(min_resource=warmup_epochs("hyperband", max_epochs),
                           max_resource=max_epochs, reduction_factor=3)


def _asha(max_epochs: int) -> BasePruner:
    """Asynchronous successive halving: keeps the top third at each rung.

    Pick it with several workers (PostgreSQL): it never waits for other trials to finish.
    """
    return SuccessiveHalvingPruner(min_resource=warmup_epochs("asha", max_epochs),
                                   reduction_factor=3, min_early_stopping_rate=0)


def _patient(max_epochs: int) -> BasePruner:
    """``median``, but only after the value has not improved for 3 epochs.

    Pick it when most trials get pruned or curves are noisy (GAN-like losses, late-starting
    VGG and gaze losses): it prunes less and later.
    """
    return PatientPruner(_median(max_epochs), patience=3, min_delta=0.0)


def _curve(max_epochs: int, **options) -> BasePruner:
    """Extrapolates each trial's curve to the budget; prunes only when even an optimistic
    extrapolation loses to the best finished trial.

    The default: curves cross (fast learners start badly) and the real backend reports 20-50
    times per trial; it never compares trials at the same epoch, and kept the unpruned best on
    every seed of bench/bench_time_to_quality.py, where ``median`` lost it. See :mod:`.curve_pruner`.
    """
    return CurvePruner(max_resource=max(2, max_epochs), **options)  # options: benchmarks' variants


def _none(max_epochs: int) -> BasePruner:
    """No pruning: every trial runs to its last epoch (or early stopping). For baselines."""
    return NopPruner()


PRUNERS = {"curve": _curve, "median": _median, "hyperband": _hyperband, "asha": _asha,
           "patient": _patient, "none": _none}


def warmup_epochs(name: str, max_epochs: int) -> int:
    """Epochs during which the named pruner (and early stopping) never stops a trial."""
    if name == "hyperband":
        return max(1, round(5 * max_epochs / REFERENCE_EPOCHS))
    if name == "asha":
        # 5 at the reference budget as before, but no longer scaled down to 1-3 epochs for short
        # budgets: fast-learning configurations look worst in their first epochs. Measured by
        # bench/bench_pruning.py (GazeGaussian stage, 5 seeds x 20 trials x 12 epochs): first rung
        # at epoch 2 saved 62% of the epochs at +23% regret (worst seed +35%); at epoch 4, 40%
        # at +0.6% (worst +5%). See docs/benchmarks.md.
        return min(5, max(1, max_epochs // 3))
    if name in ("median", "patient", "curve"):
        # `curve` prunes only after its own, longer warm-up (CurvePruner.warmup_steps); early
        # stopping keeps median's: with the pruner's warm-up its trials trained longer than
        # unpruned ones at 48 reports (bench/bench_time_to_quality.py --what-if)
        return min(5, max(1, max_epochs // 2))
    return 0


def make_pruner(name: str, *, max_epochs: int) -> BasePruner:
    """The pruner preset ``name`` (median, hyperband, asha, patient, curve, none), sized."""
    if name not in PRUNERS:
        raise ConfigError(f"Unknown pruner {name!r}: choose one of {', '.join(PRUNERS)}.")
    return PRUNERS[name](max_epochs)


def startup_trials(n_trials: int) -> int:
    """Random trials before the model-based sampler takes over: a quarter of the budget, 3..10."""
    return max(3, min(10, n_trials // 4))


def _tpe(seed: int, n_trials: int) -> BaseSampler:
    """Tree-structured Parzen estimator: the default, good with categorical choices."""
    return TPESampler(seed=seed, n_startup_trials=startup_trials(n_trials))


def _gp(seed: int, n_trials: int) -> BaseSampler:
    """Gaussian process: pick it when results stop improving on small (< 50 trial) budgets."""
    return GPSampler(seed=seed, n_startup_trials=startup_trials(n_trials))


def _random(seed: int, n_trials: int) -> BaseSampler:
    """Random search: a reference point for benchmarks, rarely the best choice."""
    return RandomSampler(seed=seed)


SAMPLERS = {"tpe": _tpe, "gp": _gp, "random": _random}


def make_sampler(name: str, *, seed: int = 42, n_trials: int = 20) -> BaseSampler:
    """The sampler preset ``name`` (tpe, gp, random) with startup trials sized to ``n_trials``."""
    if name not in SAMPLERS:
        raise ConfigError(f"Unknown sampler {name!r}: choose one of {', '.join(SAMPLERS)}.")
    return SAMPLERS[name](seed, n_trials)


__all__ = ["PRUNERS", "SAMPLERS", "make_pruner", "make_sampler", "startup_trials",
           "warmup_epochs"]
