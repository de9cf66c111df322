"""Optuna hyperparameter search for the GazeGaussian pipeline, built for one Colab GPU.

Typical use::

    from gg_optuna_helpers import StudyConfig, run_study
    run_study(StudyConfig(stage="meshhead", storage="/content/drive/MyDrive/gg_optuna"))
"""

import logging as _logging

from .errors import ConfigError, GGOptunaError, StudyNotFound, TrialFailed
from .presets import make_pruner, make_sampler
from .spaces import GAZEGAUSSIAN, MESHHEAD, Param, SearchSpace
from .analysis import format_summary, summarize
from .config import StudyConfig
from .storage import StudyStorage, open_storage, open_study
from .meshhead_link import best_checkpoint
from .study import run_study

__all__ = [
    "GAZEGAUSSIAN",
    "MESHHEAD",
    "ConfigError",
    "GGOptunaError",
    "Param",
    "SearchSpace",
    "StudyConfig",
    "StudyNotFound",
    "StudyStorage",
    "TrialFailed",
    "best_checkpoint",
    "format_summary",
    "make_pruner",
    "make_sampler",
    "open_storage",
    "open_study",
    "run_study",
    "summarize",
]

_logging.getLogger(__name__).addHandler(_logging.NullHandler())
