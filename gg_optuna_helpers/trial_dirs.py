"""Trial folders that belong to their study: nothing is cleared that this study did not make.

Each trial folder ``<results>/<study>/trial_NNNN`` carries a marker with its study's id (a
random id kept on the study) and trial number. A folder is cleared for a fresh trial only when
its marker says it is this study's folder of that trial; a folder of another study, or one
without a marker that this study does not know, is refused in one sentence.

Once its trial has ended for good, a folder keeps only what a later step reads (:func:`tidy`):
``best.pt`` of a COMPLETE trial (stage coupling, export), never ``last.pt`` (resume only).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from pathlib import Path

import optuna
from optuna.storages import BaseStorage

from .errors import ConfigError
from .protocol import BEST, LAST
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


def tidy(trial_dir: Path, *, keep_best: bool) -> None:
    """Remove the checkpoints of a trial that has ended for good: ``last.pt`` (and temporary
    files left by a kill), and ``best.pt`` too unless ``keep_best``."""
    names = [LAST, f".{LAST}.tmp", f".{BEST}.tmp"] + ([] if keep_best else [BEST])
    for name in names:
        with contextlib.suppress(OSError):  # already gone, or its disk is
            (trial_dir / name).unlink(missing_ok=True)


def checkpoint_sizes(study_dir: Path) -> tuple[int | None, int] | None:
    """(largest ``last.pt`` or None, largest ``best.pt``) in the trial folders of ``study_dir``,
    in bytes, or None when it holds no ``best.pt`` yet (every trial's first epoch writes one)."""
    found = {}
    for name in (LAST, BEST):
        sizes = [_size(p) for p in study_dir.glob(f"trial_*/{name}")] if os.path.isdir(
            study_dir) else []
        found[name] = max(sizes, default=0) or None
    return None if found[BEST] is None else (found[LAST], found[BEST])


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def used_bytes(folder: Path) -> int:
    """Bytes held by the files under ``folder`` (links not followed; 0 if unreachable)."""
    total = 0
    for root, _, files in os.walk(folder):
        total += sum(_size(Path(root) / name) for name in files
                     if not os.path.islink(os.path.join(root, name)))
    return total


def free_bytes(folder: Path) -> int | None:
    """Free bytes on the file system of ``folder`` (or of its nearest existing parent), as that
    file system reports them (Drive: the account's quota); None if it cannot be reached."""
    for place in (folder, *folder.parents):
        try:
            return shutil.disk_usage(place).free
        except FileNotFoundError:
            continue  # not made yet: its parent's disk
        except OSError:
            return None
    return None


def format_bytes(n: float) -> str:
    """``n`` bytes for people: 512B, 1.5MB, 14.2GB (powers of 1024)."""
    for unit in ("B", "KB", "MB"):
        if n < 1024:
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}GB"


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


__all__ = ["check_study_dir", "checkpoint_sizes", "claim", "format_bytes", "free_bytes",
           "known_dirs", "study_uid", "tidy", "used_bytes"]
