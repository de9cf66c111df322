"""The one line per finished trial that a run prints, and the logger that prints it."""

from __future__ import annotations

import logging
import math
import sys

from optuna.trial import FrozenTrial, TrialState
from tqdm.auto import tqdm

from .records import Failure, TrialAttr, get, is_baseline

log = logging.getLogger("gg_optuna_helpers")


class _TqdmHandler(logging.Handler):
    """Writes to the current stdout, above a running progress bar instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(self.format(record), file=sys.stdout)


def log_to_stdout() -> None:
    """Show our one line per trial on stdout (a notebook cell, a terminal), once."""
    if not any(isinstance(h, _TqdmHandler) for h in log.handlers):
        handler = _TqdmHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def describe_trial(trial: FrozenTrial, best_before: float = math.inf) -> str:
    """One line per finished trial: its value, where it was pruned, or why it failed."""
    head = f"Trial {trial.number}" + (" (baseline)" if is_baseline(trial) else "")
    if trial.state == TrialState.COMPLETE:
        stopped = get(trial, TrialAttr.EARLY_STOPPED_AT)
        stop = f", early-stopped at epoch {stopped}" if stopped is not None else ""
        mark = "  <- new best" if trial.value < best_before else ""
        return f"{head}: value {trial.value:.5g}{stop}{mark}"
    if trial.state == TrialState.PRUNED:
        return f"{head}: pruned at epoch {get(trial, TrialAttr.PRUNED_AT, trial.last_step)}"
    detail = get(trial, TrialAttr.FAILURE_LOG, "").splitlines()[:1]
    return f"{head}: failed: {Failure.of(trial).value}" + (f" ({detail[0]})" if detail else "")


__all__ = ["describe_trial", "log", "log_to_stdout"]
