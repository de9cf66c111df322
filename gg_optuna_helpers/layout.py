"""Where a study's files live in a storage folder, and which study names are safe there.

One folder per study, so that no runtime ever overwrites another study's database::

    <folder>/<study>/optuna.db      the study's durable snapshot (one SQLite file per study)
    <folder>/<study>/lease.json     which runtime holds the study (see lease.py)
    <folder>/<study>/trial_0000/    trial folders (the results folder is the storage folder
                                    unless --results-dir says otherwise)
    <folder>/optuna.db              the old shared file: still read; a study in it moves to its
                                    own file on its next run (the old file is kept as it is)
"""

from __future__ import annotations

import re
from pathlib import Path

from .errors import ConfigError

DB_NAME = "optuna.db"
LEASE_NAME = "lease.json"
NAME_RULE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._ -]{0,98}[A-Za-z0-9._-])?")
RESERVED = ("artifacts", "studies")


def check_study_name(name: object, what: str = "Study name") -> str:
    """``name`` if it is safe as one folder name, else a one-sentence ConfigError."""
    if (isinstance(name, str) and NAME_RULE.fullmatch(name) and ".." not in name
            and name.lower() not in RESERVED and not name.startswith("report_")):
        return name
    shown = repr(name if not isinstance(name, str) or len(name) <= 60 else name[:60] + "...")
    raise ConfigError(f"{what} {shown} cannot name a folder: use 1-100 letters, digits, '.', "
                      "'_', '-' or inner spaces, starting with a letter or digit (not "
                      "'artifacts', 'studies' or 'report_...').")


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


__all__ = ["DB_NAME", "LEASE_NAME", "check_study_name", "legacy_db", "study_db", "study_names"]
