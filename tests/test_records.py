"""The trial records: one spelling of each key, failure reasons, the metric namespace."""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from gg_optuna_helpers.records import (Failure, StudyAttr, TrialAttr, baseline, best, metrics,
                                       put, put_metrics)

README = Path(__file__).resolve().parents[1] / "README.md"


def _section() -> str:
    text = README.read_text()
    return text[text.index("## What a study records"):text.index("## Layout")]


def test_the_readme_names_every_key_and_every_failure_reason():
    section = _section()
    for key in [*TrialAttr, *StudyAttr, *Failure]:
        assert re.search(rf"`{re.escape(key.value)}`", section), key


def test_a_missing_or_unknown_reason_has_one_spelling():
    no_reason = create_trial(state=TrialState.FAIL)
    odd = create_trial(state=TrialState.FAIL, user_attrs={"failure": "gremlins"})
    done = create_trial(state=TrialState.COMPLETE, value=1.0)
    assert Failure.of(no_reason) is Failure.DISCONNECTED
    assert Failure.of(odd) is Failure.CRASHED
    assert Failure.of(done) is None


def test_a_metric_cannot_overwrite_the_bookkeeping():
    study = optuna.create_study()
    trial = study.ask()
    put(trial, TrialAttr.FAILURE, Failure.OOM)
    put(trial, TrialAttr.BASELINE, True)
    put_metrics(trial, {"failure": 0.5, "baseline": 0.0, "psnr": 30.0})
    study.tell(trial, state=TrialState.FAIL)
    frozen = study.trials[0]
    assert Failure.of(frozen) is Failure.OOM and frozen.user_attrs["baseline"] is True
    assert metrics(frozen) == {"failure": 0.5, "baseline": 0.0, "psnr": 30.0}


@pytest.mark.parametrize("states, expected", [
    ((TrialState.FAIL, TrialState.COMPLETE), 1),  # a completed retry keeps the mark
    ((TrialState.FAIL, TrialState.FAIL), 0),  # none completed: the first marked one
])
def test_one_baseline_rule(states, expected):
    trials = [create_trial(state=s, value=1.0 if s == TrialState.COMPLETE else None,
                           user_attrs={"baseline": True}) for s in states]
    trials.append(create_trial(state=TrialState.COMPLETE, value=0.5))
    for number, trial in enumerate(trials):
        trial.number = number
    assert baseline(trials) is trials[expected]
    assert best(trials) is trials[-1]


def test_a_maximizing_study_gets_its_highest_trial_and_a_positive_gain():
    from gg_optuna_helpers.analysis import summarize

    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"x": 1.0}, user_attrs={"baseline": True})
    study.optimize(lambda t: t.suggest_float("x", 0, 4), n_trials=1)
    study.enqueue_trial({"x": 3.0})
    study.optimize(lambda t: t.suggest_float("x", 0, 4), n_trials=1)
    summary = summarize(study)
    assert summary["best"]["value"] == 3.0 and summary["improvement"] == 2.0
