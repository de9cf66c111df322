"""The numbers of a study: best vs baseline, trial states, failures, GPU time spent and saved,
and (for ``status``) the disk its trial folders use."""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..records import Failure, StudyAttr, TrialAttr, baseline, best, get
from ..trial_dirs import format_bytes, free_bytes, used_bytes

TRAINED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)  # over, and GPU time spent


def summarize(study: optuna.Study) -> dict[str, Any]:
    """Counts by state, failures by reason, best and baseline trials and the gain, GPU time
    (JSON-able). ``finished``: complete and pruned trials, the ones the study's total counts."""
    trials = study.get_trials(deepcopy=False)
    top, base = best(trials, maximize=maximizes(study)), baseline(trials)
    counts = Counter(t.state for t in trials)
    return {
        "study_name": study.study_name,
        "stage": get(study, StudyAttr.STAGE),
        "backend": get(study, StudyAttr.BACKEND),
        "trials": len(trials),
        "finished": counts[TrialState.COMPLETE] + counts[TrialState.PRUNED],
        "states": {s.name.lower(): counts[s] for s in TrialState if counts[s]},
        "failures": dict(Counter(Failure.of(t).value for t in trials
                                 if t.state == TrialState.FAIL)),
        "best": ({"number": top.number, "value": top.value, "params": top.params}
                 if top else None),
        "baseline": ({"number": base.number, "value": base.value,
                      "state": base.state.name.lower()} if base else None),
        "improvement": improvement(top, base, maximize=maximizes(study)),
        "gpu": gpu_time(study),
    }


def gpu_time(study: optuna.Study) -> dict[str, Any]:
    """Epochs and hours trained, against every pruned or early-stopped trial run to the end.

    A trial cut short at epoch E of M would have trained M - E more epochs (a resumed retry
    included). Failed trials count as trained: pruning did not shorten them. A trial without
    ``seconds_per_epoch`` is costed at the median of the others.
    """
    study_max = get(study, StudyAttr.MAX_EPOCHS)
    trials = [t for t in study.get_trials(deepcopy=False) if t.state in TRAINED]
    speeds = [speed for t in trials if (speed := get(t, TrialAttr.SECONDS_PER_EPOCH))]
    default_speed = statistics.median(speeds) if speeds else None
    trained = full = 0
    seconds_trained = seconds_full = 0.0
    for t in trials:
        epochs = epochs_trained(t)
        would_run = epochs + _epochs_left(t, get(t, TrialAttr.MAX_EPOCHS, study_max))
        speed = get(t, TrialAttr.SECONDS_PER_EPOCH) or default_speed or 0.0
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
    for key in (TrialAttr.EPOCHS, TrialAttr.PRUNED_AT, TrialAttr.EARLY_STOPPED_AT):
        if get(trial, key) is not None:
            return int(get(trial, key))
    return max(trial.intermediate_values, default=0)


def _epochs_left(trial: FrozenTrial, max_epochs: int | None) -> int:
    """Epochs a pruned or early-stopped trial skipped; 0 for any other trial."""
    early = get(trial, TrialAttr.EARLY_STOPPED_AT)
    if trial.state != TrialState.PRUNED and early is None:
        return 0
    stopped = (get(trial, TrialAttr.PRUNED_AT) or early
               or max(trial.intermediate_values, default=0))
    return max(0, (max_epochs or 0) - int(stopped))


def disk_usage(study: optuna.Study) -> list[dict[str, Any]]:
    """For each folder holding the study's trial folders (its study folder): the bytes its files
    use and the free bytes of its file system (None: it cannot be reached)."""
    folders = sorted({str(Path(folder).parent) for t in study.get_trials(deepcopy=False)
                      if (folder := get(t, TrialAttr.TRIAL_DIR))})
    return [{"folder": f, "bytes": used_bytes(Path(f)), "free": free_bytes(Path(f))}
            for f in folders]


def format_disk(usage: list[dict[str, Any]]) -> str:
    """One line: ``Disk: 1.2GB in /drive/gg_results/study, 13.8GB free there.``"""
    if not usage:
        return "Disk: no trial folder yet."
    parts = [f"{format_bytes(u['bytes'])} in {u['folder']}, " + (
        f"{format_bytes(u['free'])} free there" if u["free"] is not None
        else "which cannot be reached now") for u in usage]
    return "Disk: " + "; ".join(parts) + "."


def maximizes(study: optuna.Study) -> bool:
    """True for a study that maximizes (the package's own minimize; a user's may not)."""
    return study.direction == optuna.study.StudyDirection.MAXIMIZE


def improvement(top: FrozenTrial | None, base: FrozenTrial | None, *,
                maximize: bool = False) -> float | None:
    """Relative gain of the best over the baseline (0.25 = 25 % better), None if unknown."""
    if top is None or base is None or base.value is None or base.value == 0:
        return None
    gain = (top.value - base.value) if maximize else (base.value - top.value)
    return round(gain / abs(base.value), 6)


def format_summary(summary: dict[str, Any]) -> str:
    """A short human-readable block for notebooks and the terminal."""
    counts = ", ".join(f"{n} {s}" for s, n in summary["states"].items())
    failures = ", ".join(f"{r} {n}" for r, n in summary["failures"].items())
    lines = [
        f"Study {summary['study_name']!r} ({summary.get('stage') or '?'} stage, "
        f"{summary.get('backend') or '?'} backend): {summary['trials']} trials, "
        f"{summary['finished']} finished" + (f" ({counts})" if counts else "")
        + (f"; failures: {failures}" if failures else "")
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
    if "disk" in summary:  # status adds it (disk_usage)
        lines.append(format_disk(summary["disk"]))
    lines += [f"! {f['message']}" for f in summary.get("findings", [])]
    return "\n".join(lines)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
