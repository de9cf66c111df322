"""Trial folders: only this study's own folder of a trial is ever cleared (issue 15, fault 2)."""

import json

import pytest

from gg_optuna_helpers import ConfigError
from gg_optuna_helpers.trial_dirs import MARKER, check_study_dir, claim


def folder_of(tmp_path, uid, number, name="trial_0003"):
    folder = tmp_path / "study" / name
    folder.mkdir(parents=True)
    (folder / "last.pt").write_bytes(b"checkpoint")
    if uid is not None:
        (folder / MARKER).write_text(json.dumps({"study_uid": uid, "trial": number}))
    return folder


def test_a_fresh_trial_clears_only_its_own_folder(tmp_path):
    folder = folder_of(tmp_path, "me", 3)
    claim(folder, "me", 3, fresh=True, known=set())
    assert not (folder / "last.pt").exists()
    assert json.loads((folder / MARKER).read_text())["trial"] == 3


def test_a_retry_keeps_its_checkpoint(tmp_path):
    folder = folder_of(tmp_path, None, 3)  # made by an older version: known to the study
    claim(folder, "me", 3, fresh=False, known={str(folder)})
    assert (folder / "last.pt").read_bytes() == b"checkpoint"


@pytest.mark.parametrize("uid, number, words", [
    ("other", 3, "holds a trial of another study"),
    (None, None, "holds a trial of another study"),  # unmarked, and not this study's
    ("me", 5, "belongs to another trial of this study"),
])
def test_anything_else_is_refused_and_left_alone(uid, number, words, tmp_path):
    folder = folder_of(tmp_path, uid, number)
    with pytest.raises(ConfigError, match=words):
        claim(folder, "me", 3, fresh=True, known=set())
    assert (folder / "last.pt").read_bytes() == b"checkpoint"


def test_a_link_is_never_followed(tmp_path):
    target = folder_of(tmp_path, "me", 3, name="elsewhere")
    link = tmp_path / "study" / "trial_0003"
    link.symlink_to(target)
    with pytest.raises(ConfigError, match="is not a trial folder"):
        claim(link, "me", 3, fresh=True, known=set())
    assert (target / "last.pt").read_bytes() == b"checkpoint"


def test_a_new_study_refuses_a_folder_with_trials_in_it(tmp_path):
    folder_of(tmp_path, "old", 0)
    with pytest.raises(ConfigError, match="holds a trial of another study than 'study'"):
        check_study_dir(tmp_path / "study", None, set())
    check_study_dir(tmp_path / "study", "old", set())  # its own study: fine
