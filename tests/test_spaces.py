"""Search spaces: the guide's ranges, one-line edits, and refusal of what a backend can't run."""

import optuna
import pytest

from gg_optuna_helpers import GAZEGAUSSIAN, MESHHEAD, ConfigError
from gg_optuna_helpers.spaces import Limits, parse_edit

REAL_GG = Limits(params=frozenset(GAZEGAUSSIAN.names), embed_dim=512, featmap_size=128)
REAL_MH = Limits(params=frozenset(MESHHEAD.names), choices={"batch_size": (1,)})


def test_guide_ranges():
    assert (MESHHEAD["lr"].low, MESHHEAD["lr"].high, MESHHEAD["lr"].log) == (1e-5, 1e-2, True)
    assert MESHHEAD["batch_size"].choices == (1, 2)
    assert (GAZEGAUSSIAN["lr"].low, GAZEGAUSSIAN["lr"].high) == (1e-5, 5e-3)
    assert GAZEGAUSSIAN["dit_depth"].choices == (4, 6, 8, 12)
    assert GAZEGAUSSIAN["dit_num_heads"].choices == (4, 8, 16)
    assert GAZEGAUSSIAN["dit_patch_size"].choices == (4, 8, 16)
    ranges = {p.name: (p.low, p.high) for p in GAZEGAUSSIAN.params if p.kind == "float"}
    assert ranges["vgg_importance"] == (0.05, 0.5)
    assert ranges["eye_loss_importance"] == (0.5, 2.0)
    assert ranges["gaze_loss_importance"] == (0.05, 0.5)
    assert ranges["orthogonality_loss_importance"] == (0.001, 0.1)


def test_one_line_edits():
    space = GAZEGAUSSIAN.replace(lr=(1e-4, 1e-3), dit_depth=6, dit_num_heads=[4, 8])
    assert (space["lr"].low, space["lr"].high, space["lr"].log) == (1e-4, 1e-3, True)
    assert space["dit_depth"].choices == (6,)
    assert space["dit_num_heads"].choices == (4, 8)
    assert GAZEGAUSSIAN["dit_depth"].choices == (4, 6, 8, 12)  # the original is untouched
    assert MESHHEAD.replace(batch_size=[1])["batch_size"].choices == (1,)


def test_suggest_is_within_the_space():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    space = GAZEGAUSSIAN.replace(dit_patch_size=[8])
    for _ in range(20):
        params = space.suggest(study.ask())
        assert params["dit_patch_size"] == 8
        assert 1e-5 <= params["lr"] <= 5e-3
        assert set(params) == set(GAZEGAUSSIAN.names)


@pytest.mark.parametrize("edit, space, limits, words", [
    ({"learning_rate": (1e-4, 1e-3)}, GAZEGAUSSIAN, REAL_GG, ["Unknown parameter", "learning_rate"]),
    ({"lr": (1e-3, 1e-4)}, GAZEGAUSSIAN, REAL_GG, ["low < high", "lr"]),
    ({"vgg_importance": (0.5, 0.5)}, GAZEGAUSSIAN, REAL_GG, ["low < high"]),
    ({"lr": (0, 1e-3)}, GAZEGAUSSIAN, REAL_GG, ["log scale", "low=0"]),
    ({"dit_num_heads": [6]}, GAZEGAUSSIAN, REAL_GG, ["dit_num_heads", "divide", "512", "6"]),
    ({"dit_patch_size": [4, 12]}, GAZEGAUSSIAN, REAL_GG, ["dit_patch_size", "feature-map", "12"]),
    ({"batch_size": [1, 2]}, MESHHEAD, REAL_MH, ["batch_size", "allows only [1]", "2"]),
    ({"lr": (1e-3,)}, MESHHEAD, REAL_MH, ["(low, high)"]),
])
def test_bad_edits_are_refused_in_one_sentence(edit, space, limits, words):
    with pytest.raises(ConfigError) as e:
        space.replace(**edit).validate(limits, "gazegaussian")
    message = str(e.value)
    assert "\n" not in message and message.endswith(".")
    for word in words:
        assert word in message


def test_parameter_the_backend_lacks_is_refused():
    upstream = Limits(params=frozenset({"lr", "vgg_importance"}))
    with pytest.raises(ConfigError, match="'dit_depth' is not supported"):
        GAZEGAUSSIAN.validate(upstream, "gazegaussian")


def test_default_space_is_fitted_to_hard_limits():
    fitted = MESHHEAD.fitted(REAL_MH)
    assert fitted["batch_size"].choices == (1,)
    fitted.validate(REAL_MH)
    no_ortho = Limits(params=frozenset(GAZEGAUSSIAN.names), embed_dim=512, featmap_size=128,
                      choices={"orthogonality_loss_importance": (0.0,)})
    fitted = GAZEGAUSSIAN.fitted(no_ortho)
    assert fitted["orthogonality_loss_importance"].choices == (0.0,)
    fitted.validate(no_ortho)


@pytest.mark.parametrize("text, expected", [
    ("batch_size=1", ("batch_size", 1)),
    ("lr=1e-5:1e-3", ("lr", (1e-5, 1e-3))),
    ("dit_depth=4,6", ("dit_depth", [4, 6])),
])
def test_parse_edit(text, expected):
    assert parse_edit(text) == expected


def test_parse_edit_refuses_garbage():
    with pytest.raises(ConfigError, match="name=value"):
        parse_edit("lr")


def test_contains():
    assert MESHHEAD["batch_size"].contains(1) and not MESHHEAD["batch_size"].contains(3)
    assert MESHHEAD["lr"].contains(1e-3) and not MESHHEAD["lr"].contains(0.1)
