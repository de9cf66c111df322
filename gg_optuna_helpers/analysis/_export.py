"""The best configuration as YAML and as the command its backend gives to run it again.

The backend knows its code (``Backend.export``); this module only picks the best trial and
writes the files, so a new backend needs no change here.
"""

from __future__ import annotations

import os
from pathlib import Path

import optuna
import yaml

from ..backends import BACKENDS, STAGES, get_backend
from ..errors import ConfigError
from ..records import StudyAttr, best, get
from ._summary import maximizes


def export_best_config(study: optuna.Study, out_dir: str | os.PathLike, *,
                       repo_script: str | None = None) -> dict[str, str]:
    """Write ``best_config.yaml`` and ``best_command.txt`` for the best trial; returns the paths.

    ``repo_script``: the training script to name in the command (default: the backend's own,
    e.g. ``train_<stage>.py`` run from the GazeGaussian checkout's root).
    """
    trial = best(study.get_trials(deepcopy=False), maximize=maximizes(study))
    if trial is None:
        raise ConfigError(f"Study {study.study_name!r} has no completed trial yet: run more "
                          "trials (or wait for one to finish) before exporting a configuration.")
    stage, backend = get(study, StudyAttr.STAGE), get(study, StudyAttr.BACKEND)
    if stage not in STAGES:
        raise ConfigError(f"Study {study.study_name!r} has no known stage user attr ({stage!r}): "
                          "set study.set_user_attr('stage', 'meshhead' or 'gazegaussian').")
    if backend not in BACKENDS:
        raise ConfigError(f"Study {study.study_name!r} has no known backend user attr "
                          f"({backend!r}): set study.set_user_attr('backend', "
                          f"{' or '.join(map(repr, BACKENDS))}).")
    export = get_backend(backend).export(stage, trial, repo_script)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = {"study": study.study_name, "stage": stage, "backend": backend,
              "trial": trial.number, "value": trial.value, "params": trial.params,
              "repo_options": export.options, "command": export.command, "notes": export.notes}
    yaml_path, cmd_path = out / "best_config.yaml", out / "best_command.txt"
    yaml_path.write_text(yaml.safe_dump(config, sort_keys=False))
    snippet = ["The same in Python:", *export.snippet.splitlines()] if export.snippet else []
    comment = "\n".join(f"# {line}" for line in [
        f"Best trial {trial.number} of study {study.study_name} (value {trial.value:.6g}).",
        export.where, *export.notes, *snippet])
    cmd_path.write_text(f"{export.command}\n{comment}\n")
    return {"yaml": str(yaml_path), "command": str(cmd_path)}
