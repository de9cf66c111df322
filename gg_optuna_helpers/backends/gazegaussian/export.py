"""A finished trial as options for the real GazeGaussian training scripts (``Backend.export``).

Upstream ``ucwxb/GazeGaussian`` (and the DiT fork ``kram254/GazeGaussian``) build an argparse
parser from ``configs/*_options.py::BaseOptions``: every attribute is a ``--flag``, a list takes
several values (``nargs="+"``) and a bool flag FLIPS its default. So the export is a
``python train_*.py --flag value ...`` line, plus the same settings as Python for in-process use.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...records import TrialAttr, get
from ..base import Export
from .options import DIT_PARAMS, MLP_GROUPS, ORTHO, REPO_OPTIONS, mlp_widths

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

SCRIPTS = {"meshhead": "train_meshhead.py", "gazegaussian": "train_gazegaussian.py"}
OPTIONS_MODULE = {"meshhead": "configs.meshhead_options",
                  "gazegaussian": "configs.gazegaussian_options"}
WHERE = "Run from the root of a GazeGaussian checkout."

# Upstream MeshHead defaults (configs/meshhead_options.py at bb8fac9): the widths and lr_lmk
# scale from these exactly as this backend does when it trains (see options.py), so the export
# reproduces the trained configuration.
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
RECORDED_NOTE = ("num_epochs and the VGG/gaze loss start epochs are the repo's own: the trial "
                 "trained short virtual epochs of its budget.")


def export(stage: str, trial: FrozenTrial, script: str | None = None) -> Export:
    """The command that trains ``trial``'s configuration with the repo's own script: the options
    the trial recorded (its ``repo_options.json``), else those its ``params`` map to."""
    script = script or SCRIPTS[stage]
    recorded = recorded_options(trial)
    if recorded is None:
        options, notes = repo_options(stage, trial.params)
        command = command_line(script, options)
    else:
        options, notes = recorded, [FLAG_NOTE, RECORDED_NOTE]
        flips = {k: not v for k, v in options.items() if isinstance(v, bool)}
        command = command_line(script, options, flips)
    return Export(options, command, WHERE, notes, python_snippet(stage, options))


def recorded_options(trial: FrozenTrial) -> dict[str, Any] | None:
    """The real code's options the trial trained with (its trial folder's ``repo_options.json``,
    written by the trainers), minus the trial-only ones; None when not recorded."""
    path = Path(get(trial, TrialAttr.TRIAL_DIR, "")) / REPO_OPTIONS
    try:
        options = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return {k: v for k, v in options.items() if k not in TRIAL_ONLY}


def repo_options(stage: str, params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The real repo's option values for searched ``params``, and notes on what differs."""
    notes: list[str] = []
    if stage == "meshhead":
        return _meshhead_options(params, notes), notes
    return _gazegaussian_options(params, notes), notes


def _meshhead_options(params: dict[str, Any], notes: list[str]) -> dict[str, Any]:
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


def _literal(value: Any) -> str:
    """A value as argparse's ``type(default)`` will read it back exactly."""
    return repr(value) if isinstance(value, float) else str(value)
