"""The GazeGaussian stage takes its MeshHead from one named study and records it (mini backend,
real child processes): a missing or empty MeshHead study is refused in one sentence, and a later
run with another MeshHead is refused unless asked for."""

import shutil

import optuna
import pytest

from gg_optuna_helpers import ConfigError, StudyConfig, open_storage, run_study


def config(tmp_path, stage, **kw):
    kw = {"n_trials": 1, "max_epochs": 1, "show_progress_bar": False, **kw}
    return StudyConfig(stage=stage, storage=str(tmp_path / "r"), **kw)


def test_a_missing_or_empty_meshhead_study_is_refused(tmp_path):
    with pytest.raises(ConfigError) as caught:
        run_study(config(tmp_path, "gazegaussian", meshhead_study="my_meshhead"))
    message = str(caught.value)
    assert message.startswith("No MeshHead study named 'my_meshhead' in this storage")
    assert "MESHHEAD_STUDY" in message and message.count(". ") == 0
    storage = open_storage(str(tmp_path / "r"), study_name="empty_meshhead").rdb
    optuna.create_study(study_name="empty_meshhead", storage=storage)
    with pytest.raises(ConfigError, match="'empty_meshhead' has no finished trial with a "
                                          "checkpoint yet"):
        run_study(config(tmp_path, "gazegaussian", meshhead_study="empty_meshhead"))


def test_the_meshhead_used_is_recorded_and_another_one_is_refused_unless_asked(tmp_path):
    run_study(config(tmp_path, "meshhead", study_name="mesh_a"))
    study = run_study(config(tmp_path, "gazegaussian", meshhead_study="mesh_a"))
    used = study.user_attrs["meshhead_checkpoint"]
    assert study.user_attrs["meshhead_study"] == "mesh_a" and used.endswith("best.pt")
    assert "/mesh_a/trial_0000/" in used
    other = tmp_path / "other_best.pt"
    shutil.copy(used, other)
    options = {"meshhead_checkpoint": str(other)}
    with pytest.raises(ConfigError, match="one study must not mix MeshHeads") as caught:
        run_study(config(tmp_path, "gazegaussian", backend_options=options))
    assert "change_meshhead=True" in str(caught.value)
    study = run_study(config(tmp_path, "gazegaussian", backend_options=options,
                             change_meshhead=True))
    assert study.user_attrs["meshhead_checkpoint"] == str(other)
