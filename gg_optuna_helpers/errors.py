"""The package's one exception family: each message is one sentence saying what and how to fix."""

from __future__ import annotations

from .records import Failure


class GGOptunaError(Exception):
    """Base class for errors raised by gg_optuna_helpers."""


class ConfigError(GGOptunaError, ValueError):
    """Bad input (search space, storage, paths, options), refused before any GPU time is spent."""


class StudyNotFound(ConfigError):
    """The study (or the folder or file that would hold it) does not exist yet."""


class DiskFault(GGOptunaError):
    """A disk the study writes to is full or cannot be reached: the study stopped; the message
    is one line saying what is kept and what to do (the CLI exits with ``EXIT_DISK_FAULT``)."""


EXIT_DISK_FAULT = 74  # sysexits' EX_IOERR


class TrialFailed(GGOptunaError):
    """A trial ended without a value; ``reason`` says why (a :class:`~.records.Failure`)."""

    def __init__(self, reason: Failure, detail: str = "") -> None:
        reason = Failure(reason)
        super().__init__(f"trial failed: {reason.value}" + (f" ({detail})" if detail else ""))
        self.reason = reason
        self.detail = detail
