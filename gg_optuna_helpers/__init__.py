"""Optuna hyperparameter search for the GazeGaussian pipeline, built for one Colab GPU.

Typical use::

    from gg_optuna_helpers import StudyConfig, run_study
    run_study(StudyConfig(stage="meshhead", storage="/content/drive/MyDrive/gg_optuna"))
"""

import logging as _logging

from .errors import ConfigError, GGOptunaError, StudyNotFound, TrialFailed
from .presets import make_pruner, make_sampler
from .spaces import GAZEGAUSSIAN, MESHHEAD, Param, SearchSpace
from .status import format_status, load_study, study_status
from .storage import StudyStorage, open_storage
from .study import StudyConfig, best_checkpoint, run_study

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
    "format_status",
    "load_study",
    "make_pruner",
    "make_sampler",
    "open_storage",
    "run_study",
    "study_status",
]

_logging.getLogger(__name__).addHandler(_logging.NullHandler())
