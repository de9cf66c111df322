"""The package's one exception family: each message is one sentence saying what and how to fix."""


class GGOptunaError(Exception):
    """Base class for errors raised by gg_optuna_helpers."""


class ConfigError(GGOptunaError, ValueError):
    """Bad input (search space, storage, paths, options), refused before any GPU time is spent."""


class StudyNotFound(ConfigError):
    """The study (or the folder or file that would hold it) does not exist yet."""


class TrialFailed(GGOptunaError):
    """A trial ended without a value; ``reason`` is one of oom, diverged, crashed, timeout."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"trial failed: {reason}" + (f" ({detail})" if detail else ""))
        self.reason = reason
        self.detail = detail
