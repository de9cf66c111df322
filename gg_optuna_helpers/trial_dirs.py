"""Trial folders that belong to their study: nothing is cleared that this study did not make.

Each trial folder ``<results>/<study>/trial_NNNN`` carries a marker with its study's id (a
random id kept on the study) and trial number. A folder is cleared for a fresh trial only when
its marker says it is this study's folder of that trial; a folder of another study, or one
without a marker that this study does not know, is refused in one sentence.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import optuna
from optuna.storages import BaseStorage

from .errors import ConfigError
from .records import TrialAttr, get

MARKER = ".gg_trial.json"
UID_KEY = "gg_study_uid"


def study_uid(storage: BaseStorage, study_name: str, *, make: bool = True) -> str | None:
    """The random id of the study ``study_name`` in ``storage``, made on first use when
    ``make`` (older studies have none)."""
    study_id = storage.get_study_id_from_name(study_name)
    attrs = storage.get_study_system_attrs(study_id)
    if UID_KEY not in attrs and make:
        storage.set_study_system_attr(study_id, UID_KEY, uuid.uuid4().hex)
        attrs = storage.get_study_system_attrs(study_id)
    return attrs.get(UID_KEY)


def known_dirs(study: optuna.Study | None) -> set[str]:
    """The trial folders this study's trials recorded (folders of older versions, unmarked)."""
    if study is None:
        return set()
    return {get(t, TrialAttr.TRIAL_DIR) for t in study.get_trials(deepcopy=False)
            if get(t, TrialAttr.TRIAL_DIR) is not None}


def check_study_dir(study_dir: Path, uid: str | None, known: set[str]) -> None:
    """Refuse a study folder that holds trial folders of another study, before anything runs."""
    for folder in sorted(study_dir.glob("trial_*")) if study_dir.is_dir() else []:
        _check_one(folder, uid, known, study_dir.name)


def claim(trial_dir: Path, uid: str, number: int, *, fresh: bool, known: set[str]) -> None:
    """Make ``trial_dir`` this trial's folder: cleared for a ``fresh`` trial, kept for a retry."""
    if trial_dir.exists() or trial_dir.is_symlink():
        marker = _check_one(trial_dir, uid, known, trial_dir.parent.name)
        if fresh:
            if marker is not None and marker.get("trial") != number:
                raise ConfigError(f"{trial_dir} belongs to another trial of this study, so it is "
                                  "not cleared: move it away, then run again.")
            shutil.rmtree(trial_dir)
    trial_dir.mkdir(parents=True, exist_ok=True)
    (trial_dir / MARKER).write_text(json.dumps({"study": trial_dir.parent.name,
                                                "study_uid": uid, "trial": number}))


def _check_one(folder: Path, uid: str | None, known: set[str], study: str) -> dict | None:
    marker = _marker(folder)
    if folder.is_symlink() or not folder.is_dir():
        raise ConfigError(f"{folder} is not a trial folder (a link or a file), so it is left "
                          "alone and the study cannot use it: move it away, then run again.")
    if marker is not None and uid is not None and marker.get("study_uid") == uid:
        return marker
    if marker is None and (str(folder) in known or not any(folder.iterdir())):
        return None  # this study's folder from an older version, or an empty one
    raise ConfigError(f"{folder} holds a trial of another study than {study!r} (reused results "
                      "folder?), so it is left alone: choose another --results-dir or study "
                      "name, or move that folder away.")


def _marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None


__all__ = ["check_study_dir", "claim", "known_dirs", "study_uid"]
