"""What a study has done so far: counts by state, failures by reason, best and baseline."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from .storage import StudyStorage, open_storage
from .errors import StudyNotFound


def load_study(storage: StudyStorage | BaseStorage | str | os.PathLike,
               study_name: str) -> optuna.Study:
    """Load an existing study, or say which studies exist. ``storage``: opened, or a folder/URL
    (then opened to read: nothing is written)."""
    if isinstance(storage, StudyStorage):
        rdb = storage.storage_for(study_name)
    elif isinstance(storage, BaseStorage):
        rdb = storage
    else:
        rdb = open_storage(storage, study_name=study_name, read_only=True).rdb
    try:
        return optuna.load_study(study_name=study_name, storage=rdb)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(rdb)]
        raise StudyNotFound(f"No study named {study_name!r} in this storage; it holds "
                          f"{', '.join(map(repr, names)) or 'no studies'}.") from None


def study_status(study: optuna.Study) -> dict[str, Any]:
    """A JSON-able summary of the study's progress."""
    trials = study.get_trials(deepcopy=False)
    states = Counter(t.state.name.lower() for t in trials)
    failures = Counter(t.user_attrs.get("failure", "disconnected")
                       for t in trials if t.state == TrialState.FAIL)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = min(complete, key=lambda t: t.value, default=None)
    baseline = next((t for t in trials if t.user_attrs.get("baseline")
                     and t.state == TrialState.COMPLETE), None)
    return {
        "study_name": study.study_name,
        "stage": study.user_attrs.get("stage"),
        "backend": study.user_attrs.get("backend"),
        "trials": len(trials),
        "finished": states["complete"] + states["pruned"],
        "states": dict(states),
        "failures": dict(failures),
        "best": None if best is None else {"number": best.number, "value": best.value,
                                           "params": best.params},
        "baseline": None if baseline is None else {"number": baseline.number,
                                                   "value": baseline.value},
    }


def format_status(status: dict[str, Any]) -> str:
    """The status as a few readable lines."""
    states = ", ".join(f"{n} {s}" for s, n in sorted(status["states"].items())) or "no trials"
    lines = [f"Study {status['study_name']!r} ({status['stage']}, {status['backend']} backend): "
             f"{status['finished']} finished; {states}"]
    if status["failures"]:
        lines.append("Failures: " + ", ".join(f"{n} {r}" for r, n in status["failures"].items()))
    if status["baseline"]:
        lines.append(f"Baseline (trial {status['baseline']['number']}): "
                     f"{status['baseline']['value']:.5g}")
    if status["best"]:
        best = status["best"]
        lines.append(f"Best (trial {best['number']}): {best['value']:.5g} with {best['params']}")
    return "\n".join(lines)
