"""Stage coupling: a GazeGaussian study trains on the MeshHead of one named MeshHead study.

The checkpoint (:func:`best_checkpoint`: the ``best.pt`` of a study's best trial) is chosen once (the best trial of ``meshhead_study``, or an explicit
``meshhead_checkpoint`` backend option) and recorded on the GazeGaussian study as user attrs, so
that a later run cannot mix MeshHeads in one study unless asked to (``change_meshhead``). A
missing or empty MeshHead study is refused: no study silently trains on a MeshHead nobody chose.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
from optuna.storages import BaseStorage

from .errors import ConfigError, StudyNotFound
from .protocol import BEST
from .records import StudyAttr, TrialAttr, best, get, put
from .storage import StudyStorage, open_study

if TYPE_CHECKING:
    from .config import StudyConfig

OPTION = "meshhead_checkpoint"  # the backend option naming a MeshHead checkpoint explicitly


def link_meshhead(study: optuna.Study, storage: StudyStorage, cfg: StudyConfig) -> str:
    """The MeshHead checkpoint for ``study``, checked against and recorded on the study."""
    given = cfg.backend_options.get(OPTION)
    checkpoint = str(given) if given else str(_best_of(storage, cfg.meshhead_study))
    source = None if given else cfg.meshhead_study
    recorded = get(study, StudyAttr.MESHHEAD_CHECKPOINT)
    if recorded and recorded != checkpoint and not cfg.change_meshhead:
        raise ConfigError(
            f"Study {cfg.study_name!r} was trained on the MeshHead {recorded}, not {checkpoint}, "
            "and one study must not mix MeshHeads: choose a new study name, or set "
            "change_meshhead=True (CHANGE_MESHHEAD in the notebook, --change-meshhead) to "
            "switch on purpose.")
    put(study, StudyAttr.MESHHEAD_CHECKPOINT, checkpoint)
    put(study, StudyAttr.MESHHEAD_STUDY, source)
    return checkpoint


def _best_of(storage: StudyStorage, name: str):
    """The best checkpoint of the MeshHead study ``name``; a missing or empty one is refused."""
    try:
        study = open_study(storage, name)
    except StudyNotFound:
        summaries = optuna.get_all_study_summaries(storage.all_studies(),
                                                   include_best_trial=False)
        held = ", ".join(repr(s.study_name) for s in summaries
                         if get(s, StudyAttr.STAGE) == "meshhead") or "none"
        raise ConfigError(
            f"No MeshHead study named {name!r} in this storage (MeshHead studies here: "
            f"{held}): run the MeshHead study first (notebook 01, or run --stage meshhead), or "
            "set MESHHEAD_STUDY (--meshhead-study) to the name it printed.") from None
    checkpoint = _best_file(study)
    if checkpoint is None:
        raise ConfigError(
            f"MeshHead study {name!r} has no finished trial with a checkpoint yet: let it "
            "finish at least one trial (re-run notebook 01), or set MESHHEAD_STUDY to another "
            "study.")
    return checkpoint


def best_checkpoint(storage: StudyStorage | BaseStorage | str | os.PathLike,
                    study_name: str) -> Path | None:
    """The ``best.pt`` of the best finished trial of ``study_name``, or None. ``storage``: any
    form :func:`~gg_optuna_helpers.storage.optuna_storage` accepts."""
    try:
        return _best_file(open_study(storage, study_name))
    except StudyNotFound:
        return None


def _best_file(study: optuna.Study) -> Path | None:
    found = best(study.get_trials(deepcopy=False))
    if found is None or get(found, TrialAttr.TRIAL_DIR) is None:
        return None
    path = Path(get(found, TrialAttr.TRIAL_DIR)) / BEST
    return path if path.is_file() else None
