"""Where a study's files live in a storage folder, and which study names are safe there.

One folder per study, so that no runtime ever overwrites another study's database::

    <folder>/<study>/optuna.db      the study's durable snapshot (one SQLite file per study)
    <folder>/<study>/lease.json     which runtime holds the study (see lease.py)
    <folder>/<study>/trial_0000/    trial folders (the results folder is the storage folder
                                    unless --results-dir says otherwise)
    <folder>/optuna.db              the old shared file: still read; a study in it moves to its
                                    own file on its next run (the old file is kept as it is)
    <results>/artifacts/            previews and best checkpoints, as Optuna artifacts
    <results>/report_<study>/       what ``report`` writes
    <results>/.cache/<backend>/     data the backend builds once (e.g. mini's synthetic set)

``Results`` owns these names: every module asks it for a path instead of joining its own.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

DEFAULT_FOLDER = "gg_results"  # the storage and results folder when none is given
DB_NAME = "optuna.db"
LEASE_NAME = "lease.json"
NAME_RULE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._ -]{0,98}[A-Za-z0-9._-])?")
ARTIFACTS = "artifacts"
REPORT_PREFIX = "report_"
RESERVED = (ARTIFACTS, "studies")


def check_study_name(name: object, what: str = "Study name") -> str:
    """``name`` if it is safe as one folder name, else a one-sentence ConfigError."""
    if (isinstance(name, str) and NAME_RULE.fullmatch(name) and ".." not in name
            and name.lower() not in RESERVED and not name.startswith(REPORT_PREFIX)):
        return name
    shown = repr(name if not isinstance(name, str) or len(name) <= 60 else name[:60] + "...")
    raise ConfigError(f"{what} {shown} cannot name a folder: use 1-100 letters, digits, '.', "
                      "'_', '-' or inner spaces, starting with a letter or digit (not "
                      "'artifacts', 'studies' or 'report_...').")


def default_study_name(backend: str, stage: str) -> str:
    """The study name when none is given: ``<backend>_<stage>``."""
    return f"{backend}_{stage}"


def is_place(value: object) -> bool:
    """True for a non-blank path or URL (str or path-like): what a folder or storage may be."""
    return isinstance(value, (str, os.PathLike)) and bool(os.fspath(value).strip())


def is_url(storage: str | os.PathLike) -> bool:
    """True for a database URL (``sqlite://``, ``postgresql://``...), False for a folder."""
    return "://" in os.fspath(storage)


@dataclass(frozen=True)
class Results:
    """The results folder of one storage: trial folders, artifacts, reports and caches.

    ``Results.of(storage, results_dir)``: ``results_dir`` when given, else the storage folder,
    else (a URL) ``./gg_results``.
    """

    folder: Path

    @classmethod
    def of(cls, storage: str | os.PathLike = DEFAULT_FOLDER,
           results_dir: str | os.PathLike | None = None) -> Results:
        if results_dir is None:
            results_dir = DEFAULT_FOLDER if is_url(storage) else storage
        return cls(Path(results_dir).expanduser())

    def study_dir(self, study: str) -> Path:
        return self.folder.resolve() / study

    def trial_dir(self, study: str, number: int) -> Path:
        return self.study_dir(study) / f"trial_{number:04d}"

    @property
    def artifacts(self) -> Path:
        return self.folder.resolve() / ARTIFACTS

    def report_dir(self, study: str) -> Path:
        return self.folder / f"{REPORT_PREFIX}{study}"

    def cache(self, backend: str) -> Path:
        return self.folder.resolve() / ".cache" / backend


def study_db(folder: Path, study: str) -> Path:
    return folder / check_study_name(study) / DB_NAME


def legacy_db(folder: Path) -> Path:
    return folder / DB_NAME


def study_names(folder: Path) -> list[str]:
    """Studies with their own file in ``folder`` (the old shared file is read elsewhere)."""
    if not folder.is_dir():
        return []
    return sorted(p.parent.name for p in folder.glob(f"*/{DB_NAME}")
                  if NAME_RULE.fullmatch(p.parent.name))


__all__ = ["ARTIFACTS", "DB_NAME", "DEFAULT_FOLDER", "LEASE_NAME", "Results", "check_study_name",
           "default_study_name", "is_place", "is_url", "legacy_db", "study_db", "study_names"]
