"""The numbers of a study: best vs baseline, trial states, failures, GPU time spent and saved."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def summarize(study: optuna.Study) -> dict[str, Any]:
    """Best trial, baseline and gain, counts by state, failures by reason, GPU time (JSON-able)."""
    trials = study.get_trials(deepcopy=False)
    best = _best(study)
    baseline = baseline_trial(trials)
    return {
        "study_name": study.study_name,
        "stage": study.user_attrs.get("stage"),
        "backend": study.user_attrs.get("backend"),
        "direction": study.direction.name.lower(),
        "n_trials": len(trials),
        "states": {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState},
        "failures": dict(Counter(t.user_attrs.get("failure", "unknown")
                                 for t in trials if t.state == TrialState.FAIL)),
        "best": ({"number": best.number, "value": best.value, "params": best.params}
                 if best else None),
        "baseline": ({"number": baseline.number, "value": baseline.value,
                      "state": baseline.state.name.lower()} if baseline else None),
        "improvement": _improvement(study, best, baseline),
        "gpu": gpu_time(study),
    }


def baseline_trial(trials: list[FrozenTrial]) -> FrozenTrial | None:
    """The baseline: the completed trial marked ``baseline`` (a retry keeps the mark), else #0."""
    marked = [t for t in trials if t.user_attrs.get("baseline")] or [
        t for t in trials if t.number == 0]
    done = [t for t in marked if t.state == TrialState.COMPLETE]
    return (done or marked or [None])[0]


def gpu_time(study: optuna.Study) -> dict[str, Any]:
    """Epochs and hours trained, against every pruned or early-stopped trial run to the end.

    A trial cut short at epoch E of M would have trained M - E more epochs (a resumed retry
    included). Failed trials count as trained: pruning did not shorten them. A trial without
    ``seconds_per_epoch`` is costed at the median of the others.
    """
    study_max = study.user_attrs.get("max_epochs")
    trials = [t for t in study.get_trials(deepcopy=False) if t.state in FINISHED]
    speeds = [t.user_attrs["seconds_per_epoch"] for t in trials
              if t.user_attrs.get("seconds_per_epoch")]
    default_speed = statistics.median(speeds) if speeds else None
    trained = full = 0
    seconds_trained = seconds_full = 0.0
    for t in trials:
        epochs = epochs_trained(t)
        would_run = epochs + _epochs_left(t, t.user_attrs.get("max_epochs", study_max))
        speed = t.user_attrs.get("seconds_per_epoch") or default_speed or 0.0
        trained += epochs
        full += would_run
        seconds_trained += epochs * speed
        seconds_full += would_run * speed
    known = default_speed is not None
    return {
        "epochs_trained": trained,
        "epochs_if_full": full,
        "epochs_saved_fraction": round(1 - trained / full, 4) if full else 0.0,
        "hours_trained": round(seconds_trained / 3600, 4) if known else None,
        "hours_if_full": round(seconds_full / 3600, 4) if known else None,
        "hours_saved": round((seconds_full - seconds_trained) / 3600, 4) if known else None,
    }


def epochs_trained(trial: FrozenTrial) -> int:
    """Epochs a trial trained: its ``epochs`` attr, else where it stopped, else its last report."""
    for key in ("epochs", "pruned_at", "early_stopped_at"):
        if trial.user_attrs.get(key) is not None:
            return int(trial.user_attrs[key])
    return max(trial.intermediate_values, default=0)


def _epochs_left(trial: FrozenTrial, max_epochs: int | None) -> int:
    """Epochs a pruned or early-stopped trial skipped; 0 for any other trial."""
    if trial.state != TrialState.PRUNED and "early_stopped_at" not in trial.user_attrs:
        return 0
    stopped = (trial.user_attrs.get("pruned_at") or trial.user_attrs.get("early_stopped_at")
               or max(trial.intermediate_values, default=0))
    return max(0, (max_epochs or 0) - int(stopped))


def _best(study: optuna.Study) -> FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:  # no completed trial yet
        return None


def _improvement(study: optuna.Study, best: FrozenTrial | None,
                 baseline: FrozenTrial | None) -> float | None:
    """Relative gain of the best over the baseline (0.25 = 25 % better), None if unknown."""
    if best is None or baseline is None or baseline.value is None or baseline.value == 0:
        return None
    gain = baseline.value - best.value
    if study.direction == optuna.study.StudyDirection.MAXIMIZE:
        gain = -gain
    return round(gain / abs(baseline.value), 6)


def format_summary(summary: dict[str, Any]) -> str:
    """A short human-readable block for notebooks and the terminal."""
    states = summary["states"]
    counts = ", ".join(f"{n} {s}" for s, n in states.items() if n)
    failures = ", ".join(f"{r} {n}" for r, n in summary["failures"].items())
    lines = [
        f"Study {summary['study_name']} ({summary.get('stage') or '?'} stage, "
        f"{summary.get('backend') or '?'} backend): {summary['n_trials']} trials"
        + (f" ({counts})" if counts else "") + (f"; failures: {failures}" if failures else "")
    ]
    best, base = summary["best"], summary["baseline"]
    if best is None:
        lines.append("No completed trial yet.")
    else:
        gain = summary["improvement"]
        versus = (f" ({gain:+.1%} vs baseline trial {base['number']}: {base['value']:.6g})"
                  if gain is not None else "")
        lines.append(f"Best: trial {best['number']}, value {best['value']:.6g}{versus}")
        lines.append("  " + ", ".join(f"{k}={_short(v)}" for k, v in best["params"].items()))
    gpu = summary["gpu"]
    line = (f"GPU time: {gpu['epochs_trained']} of {gpu['epochs_if_full']} epochs trained "
            f"({gpu['epochs_saved_fraction']:.0%} saved by pruning/early stopping)")
    if gpu["hours_trained"] is not None:
        line += f"; {gpu['hours_trained']:.2f} h of {gpu['hours_if_full']:.2f} h"
    lines.append(line)
    lines += [f"! {f['message']}" for f in summary.get("findings", [])]
    return "\n".join(lines)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
