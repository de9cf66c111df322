"""Pruner and sampler presets match the guide and scale with the budget."""

import pytest
from optuna.pruners import HyperbandPruner, MedianPruner, NopPruner, PatientPruner
from optuna.samplers import RandomSampler, TPESampler

from gg_optuna_helpers import ConfigError, make_pruner, make_sampler
from gg_optuna_helpers.presets import PRUNERS, SAMPLERS, startup_trials


def test_median_is_the_guides():
    p = make_pruner("median", max_epochs=30)
    assert isinstance(p, MedianPruner)
    assert (p._n_startup_trials, p._n_warmup_steps, p._interval_steps) == (3, 5, 1)


def test_hyperband_scales_with_the_budget():
    p = make_pruner("hyperband", max_epochs=30)
    assert isinstance(p, HyperbandPruner)
    assert (p._min_resource, p._max_resource, p._reduction_factor) == (5, 30, 3)
    short = make_pruner("hyperband", max_epochs=12)
    assert (short._min_resource, short._max_resource) == (2, 12)


def test_asha_first_rung_is_five_epochs_or_a_third_of_a_short_budget():
    # bench/bench_pruning.py: a first rung at epoch 2 of 12 pruned the eventual winners
    assert [make_pruner("asha", max_epochs=e)._min_resource for e in (3, 12, 15, 30, 100)] == [
        1, 4, 5, 5, 5]
    assert make_pruner("asha", max_epochs=30)._reduction_factor == 3


def test_other_pruners():
    assert isinstance(make_pruner("patient", max_epochs=20), PatientPruner)
    assert isinstance(make_pruner("none", max_epochs=20), NopPruner)
    make_pruner("asha", max_epochs=20)


def test_samplers_and_startup_sized_to_budget():
    tpe = make_sampler("tpe", n_trials=20)
    assert isinstance(tpe, TPESampler)
    assert tpe._n_startup_trials == 5 == startup_trials(20)
    assert startup_trials(8) == 3 and startup_trials(200) == 10
    assert isinstance(make_sampler("random"), RandomSampler)
    make_sampler("gp", n_trials=20)


def test_every_preset_documents_when_to_pick_it():
    for table in (PRUNERS, SAMPLERS):
        for factory in table.values():
            assert factory.__doc__ and len(factory.__doc__) > 40


@pytest.mark.parametrize("call", [lambda: make_pruner("fast", max_epochs=10),
                                  lambda: make_sampler("cmaes")])
def test_unknown_preset(call):
    with pytest.raises(ConfigError, match="choose one of"):
        call()
