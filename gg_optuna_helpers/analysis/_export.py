"""The best configuration as YAML and as options for the real GazeGaussian training scripts.

Upstream ``ucwxb/GazeGaussian`` (and the DiT fork ``kram254/GazeGaussian``) build an argparse
parser from ``configs/*_options.py::BaseOptions``: every attribute is a ``--flag``, a list takes
several values (``nargs="+"``) and a bool flag FLIPS its default. So the export is a
``python train_*.py --flag value ...`` line, plus the same settings as Python for in-process use.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any

import optuna
import yaml

from ..backends.base import REPO_OPTIONS
from ..errors import ConfigError
from ._summary import _best

SCRIPTS = {"meshhead": "train_meshhead.py", "gazegaussian": "train_gazegaussian.py"}
OPTIONS_MODULE = {"meshhead": "configs.meshhead_options",
                  "gazegaussian": "configs.gazegaussian_options"}

# Upstream MeshHead defaults (configs/meshhead_options.py at bb8fac9): the widths and lr_lmk
# scale from these exactly as the gazegaussian backend does when it trains (see
# backends/gazegaussian/options.py), so the export reproduces the trained configuration.
MESHHEAD_DEFAULTS = {
    "lr_net": 1e-3, "lr_lmk": 1e-4,
    "shape_color_mlp": [272, 256, 256, 32], "shape_deform_mlp": [171, 256, 256, 256, 256, 256, 3],
    "pose_color_mlp": [182, 128, 32], "pose_deform_mlp": [81, 256, 256, 3],
    "eye_color_mlp": [146, 128, 32], "eye_deform_mlp": [45, 128, 128, 3],
    "eye_deform_mlp_rotate": [45, 128, 128, 4],
}
# Bool options of the DiT fork: passing the flag flips this default.
BOOL_DEFAULTS = {"use_vae": True, "use_orthogonality_loss": True}
# Recorded options sized to the trial's budget or placed in its folder, left to the full run.
TRIAL_ONLY = ("logdir", "num_epochs", "vgg_loss_begin", "angular_loss_begin")
FLAG_NOTE = ("A bool flag FLIPS the repo's default (argparse store_true / store_false), so "
             "--use_vae there means use_vae=False; every flag below is a flip to what the trial "
             "trained with.")


def recorded_options(trial: optuna.trial.FrozenTrial) -> dict[str, Any] | None:
    """The real code's options the trial trained with (its trial folder's ``repo_options.json``,
    written by the gazegaussian backend), minus the trial-only ones; None when not recorded."""
    path = Path(trial.user_attrs.get("trial_dir", "")) / REPO_OPTIONS
    try:
        options = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return {k: v for k, v in options.items() if k not in TRIAL_ONLY}


def repo_options(stage: str, params: dict[str, Any], *,
                 backend: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """The real repo's option values for searched ``params``, and notes on what differs."""
    if stage not in SCRIPTS:
        raise ConfigError(f"Unknown stage {stage!r}: choose one of {', '.join(SCRIPTS)}.")
    notes = []
    if backend == "mini":
        notes.append("Found on the embedded mini backend (synthetic data): a starting point "
                     "for the real run, not a measured optimum of it.")
    if stage == "meshhead":
        options = _meshhead_options(params, notes)
    else:
        options = _gazegaussian_options(params, notes)
    return options, notes


def _meshhead_options(params: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    from ..backends.gazegaussian.options import MLP_GROUPS, mlp_widths

    options: dict[str, Any] = {}
    rest = {k: v for k, v in params.items() if k not in MLP_GROUPS}
    if "lr" in rest:  # there is no `lr`: lr_net, with lr_lmk kept at its default ratio
        options["lr_net"] = float(rest.pop("lr"))
        ratio = MESHHEAD_DEFAULTS["lr_lmk"] / MESHHEAD_DEFAULTS["lr_net"]
        options["lr_lmk"] = options["lr_net"] * ratio
    if rest.get("batch_size", 1) != 1:
        notes.append(f"batch_size={rest['batch_size']} won on the mini backend, but the real "
                     "MeshHead only runs batch_size 1 (its eye rotation breaks with more), so "
                     "it is left at 1.")
    rest.pop("batch_size", None)
    options.update(rest)
    widths = mlp_widths(MESHHEAD_DEFAULTS, params)
    if widths:
        options.update(widths)
        notes.append("Stage 2 must use the same MLP widths: pass the *_mlp flags above to "
                     "train_gazegaussian.py too, and make trainer/gazegaussian_trainer.py set "
                     "them on the MeshHeadOptions() it builds (it uses the defaults).")
    return options


def _gazegaussian_options(params: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    from ..backends.gazegaussian.options import DIT_PARAMS, ORTHO

    options = dict(params)  # names are 1:1
    if any(name in params for name in DIT_PARAMS):
        options.update(neural_renderer_type="dit", use_vae=False)  # the DiT runs without VAE
    if ORTHO in params:
        options["use_orthogonality_loss"] = float(params[ORTHO]) > 0
    if any(name in params for name in (*DIT_PARAMS, ORTHO)):
        notes.append("dit_* and orthogonality_* options exist only in the DiT fork "
                     "kram254/GazeGaussian; upstream ucwxb/GazeGaussian rejects them.")
    if options.get("use_orthogonality_loss"):
        notes.append("The fork's orthogonality loss crashed as read (a 2-d x 3-d shape "
                     "mismatch): check `python -m gg_optuna_helpers check-repo` first.")
    notes.append("Pass --load_meshhead_checkpoint <stage-1 checkpoint> as well.")
    return options


def command_line(script: str, options: dict[str, Any],
                 bool_defaults: dict[str, bool] | None = None) -> str:
    """``python <script> --flag value ...``; a bool is passed only to flip its repo default."""
    words = ["python", script]
    defaults = BOOL_DEFAULTS if bool_defaults is None else bool_defaults
    for name, value in options.items():
        if isinstance(value, bool):
            if value != defaults.get(name, False):
                words.append(f"--{name}")
        elif isinstance(value, list):
            words += [f"--{name}", *map(_literal, value)]
        else:
            words += [f"--{name}", _literal(value)]
    return shlex.join(words)


def python_snippet(stage: str, options: dict[str, Any]) -> str:
    """The same settings for in-process use: ``opt = BaseOptions()`` then attributes."""
    lines = [f"from {OPTIONS_MODULE[stage]} import BaseOptions", "opt = BaseOptions()"]
    lines += [f"opt.{name} = {value!r}" for name, value in options.items()]
    return "\n".join(lines)


def export_best_config(study: optuna.Study, out_dir: str | os.PathLike, *,
                       repo_script: str | None = None) -> dict[str, str]:
    """Write ``best_config.yaml`` and ``best_command.txt`` for the best trial; returns the paths.

    ``repo_script``: the training script to name in the command (default ``train_<stage>.py``,
    run from the GazeGaussian checkout's root).
    """
    best = _best(study)
    if best is None:
        raise ConfigError(f"Study {study.study_name!r} has no completed trial yet: run more "
                          "trials (or wait for one to finish) before exporting a configuration.")
    stage = study.user_attrs.get("stage")
    if stage not in SCRIPTS:
        raise ConfigError(f"Study {study.study_name!r} has no known stage user attr ({stage!r}): "
                          "set study.set_user_attr('stage', 'meshhead' or 'gazegaussian').")
    backend = study.user_attrs.get("backend")
    recorded = recorded_options(best)
    if recorded is None:
        options, notes = repo_options(stage, best.params, backend=backend)
        command = command_line(repo_script or SCRIPTS[stage], options)
    else:
        options = recorded
        notes = [FLAG_NOTE, "num_epochs and the VGG/gaze loss start epochs are the repo's own: "
                 "the trial trained short virtual epochs of its budget."]
        flips = {k: not v for k, v in options.items() if isinstance(v, bool)}
        command = command_line(repo_script or SCRIPTS[stage], options, flips)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = {"study": study.study_name, "stage": stage, "backend": backend,
              "trial": best.number, "value": best.value, "params": best.params,
              "repo_options": options, "command": command, "notes": notes}
    yaml_path, cmd_path = out / "best_config.yaml", out / "best_command.txt"
    yaml_path.write_text(yaml.safe_dump(config, sort_keys=False))
    comment = "\n".join(f"# {line}" for line in [
        f"Best trial {best.number} of study {study.study_name} (value {best.value:.6g}).",
        "Run from the root of a GazeGaussian checkout.", *notes,
        "The same in Python:", *python_snippet(stage, options).splitlines()])
    cmd_path.write_text(f"{command}\n{comment}\n")
    return {"yaml": str(yaml_path), "command": str(cmd_path)}


def _literal(value: Any) -> str:
    """A value as argparse's ``type(default)`` will read it back exactly."""
    return repr(value) if isinstance(value, float) else str(value)
