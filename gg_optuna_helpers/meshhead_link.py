"""Stage coupling: a GazeGaussian study trains on the MeshHead of one named MeshHead study.

The checkpoint is chosen once (the best trial of ``meshhead_study``, or an explicit
``meshhead_checkpoint`` backend option) and recorded on the GazeGaussian study as user attrs, so
that a later run cannot mix MeshHeads in one study unless asked to (``change_meshhead``). A
missing or empty MeshHead study is refused: no study silently trains on a MeshHead nobody chose.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import optuna

from .errors import ConfigError
from .records import StudyAttr, get, put

if TYPE_CHECKING:
    from .config import StudyConfig
    from .storage import StudyStorage

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
    from .study import best_checkpoint

    summaries = optuna.get_all_study_summaries(storage.all_studies(), include_best_trial=False)
    if name not in {s.study_name for s in summaries}:
        held = ", ".join(repr(s.study_name) for s in summaries
                         if get(s, StudyAttr.STAGE) == "meshhead") or "none"
        raise ConfigError(
            f"No MeshHead study named {name!r} in this storage (MeshHead studies here: "
            f"{held}): run the MeshHead study first (notebook 01, or run --stage meshhead), or "
            "set MESHHEAD_STUDY (--meshhead-study) to the name it printed.")
    checkpoint = best_checkpoint(storage, name)
    if checkpoint is None:
        raise ConfigError(
            f"MeshHead study {name!r} has no finished trial with a checkpoint yet: let it "
            "finish at least one trial (re-run notebook 01), or set MESHHEAD_STUDY to another "
            "study.")
    return checkpoint
