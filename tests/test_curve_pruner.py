"""The curve-aware pruner: fits, decisions, warm-up, validation (deterministic, in memory)."""

import math

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from gg_optuna_helpers import make_pruner
from gg_optuna_helpers.curve_pruner import CurvePruner, fit_curves, optimistic_final
from gg_optuna_helpers.presets import warmup_epochs

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _study(pruner, finished=(0.10, 0.12), direction="minimize"):
    study = optuna.create_study(direction=direction, pruner=pruner)
    for value in finished:
        study.add_trial(create_trial(value=value, params={"x": 0.5},
                                     distributions={"x": FloatDistribution(0, 1)},
                                     state=TrialState.COMPLETE))
    return study


def _decisions(study, curve):
    """should_prune after each reported value of ``curve`` (steps 1, 2, ...)."""
    trial = study.ask()
    out = []
    for step, value in enumerate(curve, 1):
        trial.report(value, step)
        out.append(trial.should_prune())
    return out


def test_fits_an_exact_power_law_and_extrapolates_it():
    t = np.arange(1, 13)
    fits = {f.family: f for f in fit_curves(t, 0.1 + 0.5 / t, horizon=48)}
    assert fits["pow"].rmse < 1e-9
    assert fits["pow"].final == pytest.approx(0.1 + 0.5 / 48, abs=1e-9)
    assert optimistic_final(t, 0.1 + 0.5 / t, 48, optimism=2.0) == pytest.approx(
        0.1 + 0.5 / 48, abs=1e-6)


def test_a_worsening_curve_is_fitted_flat_and_never_extrapolated_above_its_best():
    fits = fit_curves([1, 2, 3, 4], [0.2, 0.25, 0.3, 0.35], 12)
    assert [f.final for f in fits] == pytest.approx([0.275] * 3)
    assert optimistic_final([1, 2, 3, 4], [0.2, 0.25, 0.3, 0.35], 12, optimism=0.0) <= 0.2


def test_the_margin_grows_with_the_noise_and_the_reports_to_come():
    t = np.arange(1, 9)
    noisy = 0.1 + 0.5 / t + 0.01 * (-1.0) ** t
    near, far = (optimistic_final(t, noisy, h, optimism=1.0) for h in (10, 100))
    exact = optimistic_final(t, 0.1 + 0.5 / t, 10, optimism=1.0)
    assert far < near < exact


def test_prunes_a_flat_curve_that_cannot_reach_the_best():
    flat = [0.30, 0.29, 0.29, 0.295, 0.29, 0.29]
    decisions = _decisions(_study(CurvePruner(max_resource=12)), flat)
    assert decisions == [False] * 4 + [True, True]  # warm-up: 5 reports


def test_keeps_a_steep_curve_that_crosses_the_best_later():
    # 0.03 + 0.37 / t**0.8: far worse than the best finished (0.10) at every step shown, as
    # a same-step pruner sees it, but it ends at 0.081 by step 12
    steep = [0.40, 0.243, 0.184, 0.152, 0.132]
    assert _decisions(_study(CurvePruner(max_resource=12)), steep) == [False] * 5
    assert optimistic_final(range(1, 6), steep, 12, optimism=0.0) < 0.10


def test_never_prunes_a_curve_already_better_than_the_target():
    assert not any(_decisions(_study(CurvePruner(max_resource=12)), [0.09, 0.09, 0.09, 0.09]))


def test_waits_for_startup_trials_and_compares_with_the_kth_best():
    flat = [0.30] * 6
    one_finished = _study(CurvePruner(max_resource=12, n_startup_trials=2), finished=(0.10,))
    assert not any(_decisions(one_finished, flat))
    # k=2 with finished 0.10 and 0.35: the target is 0.35, a flat 0.30 can still beat it
    study = _study(CurvePruner(max_resource=12, k=2), finished=(0.10, 0.35))
    assert not any(_decisions(study, flat))
    study = _study(CurvePruner(max_resource=12, k=1), finished=(0.10, 0.35))
    assert any(_decisions(study, flat))


def test_maximize_direction():
    study = _study(CurvePruner(max_resource=12), finished=(0.9, 0.8), direction="maximize")
    assert _decisions(study, [0.5, 0.5, 0.5, 0.51, 0.5]) == [False] * 4 + [True]
    study = _study(CurvePruner(max_resource=12), finished=(0.9, 0.8), direction="maximize")
    assert not any(_decisions(study, [0.5, 0.7, 0.8, 0.86]))


def test_warmup_scales_with_the_budget():
    assert [CurvePruner(max_resource=b).warmup_steps for b in (2, 12, 30, 48)] == [5, 5, 8, 12]
    assert make_pruner("curve", max_epochs=48).warmup_steps == 12
    assert warmup_epochs("curve", 48) == 5 == warmup_epochs("median", 48)  # early stopping
    assert isinstance(make_pruner("curve", max_epochs=1), CurvePruner)


def test_ignores_non_finite_reports():
    curve = [0.3, math.nan, 0.3, 0.31, 0.3, 0.3, 0.3]
    decisions = _decisions(_study(CurvePruner(max_resource=12)), curve)
    assert decisions == [False] * 4 + [True] * 3  # fitted on the finite ones


@pytest.mark.parametrize("kwargs, message", [
    ({"max_resource": 1}, "max_resource=1"),
    ({"max_resource": 12.0}, "max_resource=12.0"),
    ({"max_resource": 12, "warmup_fraction": 1.0}, "warmup_fraction=1.0"),
    ({"max_resource": 12, "min_warmup_steps": 1}, "min_warmup_steps=1"),
    ({"max_resource": 12, "k": 0}, "k=0"),
    ({"max_resource": 12, "n_startup_trials": -1}, "n_startup_trials=-1"),
    ({"max_resource": 12, "optimism": math.inf}, "optimism=inf"),
])
def test_bad_options_name_the_rule_and_the_value(kwargs, message):
    with pytest.raises(ValueError, match=f"but got {message}"):
        CurvePruner(**kwargs)


def test_options_are_keyword_only():
    with pytest.raises(TypeError):
        CurvePruner(12)  # noqa
