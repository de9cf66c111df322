"""Our parameter names -> the checkout's options; the limits and defaults that follow from them.

MeshHead: ``lr`` -> ``lr_net`` (``lr_lmk`` keeps its default ratio to it); ``*_mlp_hidden`` ->
the hidden widths of the matching colour and deform MLPs. GazeGaussian: names are 1:1.
"""

from __future__ import annotations

from typing import Any

import torch

from ...errors import ConfigError
from ...spaces import Limits
from ...values import parse_value
from .checkout import Checkout, source_function

MLP_GROUPS = {  # our name -> the MLPs it sizes; the first one's default hidden width is ours
    "shape_mlp_hidden": ("shape_color_mlp", "shape_deform_mlp"),
    "pose_mlp_hidden": ("pose_color_mlp", "pose_deform_mlp"),
    "eye_mlp_hidden": ("eye_color_mlp", "eye_deform_mlp", "eye_deform_mlp_rotate"),
}
MESHHEAD_PARAMS = {"lr": "lr_net", "batch_size": "batch_size",
                   **{name: mlps[0] for name, mlps in MLP_GROUPS.items()}}
LOSS_PARAMS = ("vgg_importance", "eye_loss_importance", "gaze_loss_importance")
DIT_PARAMS = ("dit_depth", "dit_num_heads", "dit_patch_size")
ORTHO = "orthogonality_loss_importance"
DIT_EMBED_DIM = 512  # fixed inside the fork's DiTNeuralRenderer
FEATMAP_CHANNELS = 32  # the 32-channel diff-gaussian-rasterization build
LOSS_BEGIN = ("vgg_loss_begin", "angular_loss_begin")
OVERRIDE_PREFIX = "opt."
DATA_DEFAULTS = {"img_dir": "./data/ETH-XGaze", "dataset_name": "eth_xgaze"}  # the repo's
REPO_OPTIONS = "repo_options.json"  # in a trial folder: the options it trained with (export.py)


def positive_int(options: dict[str, Any], name: str, default: int) -> int:
    """Backend option ``name`` as an integer >= 1."""
    raw = options.get(name, default)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        value = 0
    if value < 1 or str(raw).strip() not in (str(value), f"{value}.0"):
        raise ConfigError(f"Backend option {name} must be a whole number >= 1, but got {raw!r}.")
    return value


def supported(stage: str, checkout: Checkout) -> dict[str, str]:
    """Our parameter name -> the repo option it sets, for what this checkout has."""
    if stage == "meshhead":
        return {ours: repo for ours, repo in MESHHEAD_PARAMS.items() if repo in checkout.meshhead}
    names = ("lr", *LOSS_PARAMS) + (DIT_PARAMS if checkout.has_dit else ())
    names += (ORTHO,) if checkout.has_orthogonality else ()
    return {name: name for name in names if name in checkout.gazegaussian}


def limits(stage: str, checkout: Checkout, options: dict[str, Any]) -> Limits:
    """The real code's limits for ``stage`` on this checkout (see docs/gazegaussian.md)."""
    repo = overridden(stage, checkout, options)
    if stage == "meshhead":
        return Limits(params=frozenset(supported(stage, checkout)), choices={"batch_size": (1,)})
    choices = {}
    if checkout.has_orthogonality and orthogonality_works(checkout) is False:
        choices[ORTHO] = (0.0,)
    dit = checkout.has_dit
    return Limits(params=frozenset(supported(stage, checkout)), choices=choices,
                  embed_dim=DIT_EMBED_DIM if dit else None,
                  featmap_size=int(repo["featmap_size"]) if dit else None)


def defaults(stage: str, checkout: Checkout) -> dict[str, Any]:
    """The checkout's own defaults in our names: the study's baseline trial."""
    repo = checkout.options(stage)
    if stage == "meshhead":
        values = {"lr": repo["lr_net"], "batch_size": repo["batch_size"]}
        values.update({name: repo[mlps[0]][1] for name, mlps in MLP_GROUPS.items()})
        return {name: values[name] for name in supported(stage, checkout)}
    values = {name: repo[name] for name in supported(stage, checkout)}
    if ORTHO in values and orthogonality_works(checkout) is False:
        values[ORTHO] = 0.0
    return values


def mlp_widths(meshhead_defaults: dict[str, Any], params: dict[str, Any]) -> dict[str, list[int]]:
    """MLP size lists for the MeshHead MLP parameters in ``params``.

    Each group's hidden widths are scaled by ``value / default`` (so the default value gives the
    repo's exact lists, e.g. pose_deform_mlp keeps hidden 256 when pose_mlp_hidden is 128); the
    first and last sizes are fixed by the embeddings and the 32-channel rasterizer.
    """
    widths = {}
    for name, mlps in MLP_GROUPS.items():
        if name not in params:
            continue
        factor = int(params[name]) / meshhead_defaults[mlps[0]][1]
        for mlp in mlps:
            if mlp in meshhead_defaults:
                sizes = list(meshhead_defaults[mlp])
                widths[mlp] = [sizes[0], *(max(1, round(w * factor)) for w in sizes[1:-1]),
                               sizes[-1]]
    return widths


def configure(opt: Any, stage: str, checkout: Checkout, params: dict[str, Any], *,
              max_epochs: int, options: dict[str, Any]) -> None:
    """Set a repo options object from our ``params`` and the backend ``options``."""
    known = supported(stage, checkout)
    for name in params:
        if name not in known:
            raise ConfigError(_unsupported(stage, name, checkout))
    for name, value in overrides(stage, checkout, options).items():
        setattr(opt, name, value)
    opt.num_epochs = max_epochs
    if stage == "meshhead":
        _configure_meshhead(opt, checkout, params)
    else:
        _configure_gazegaussian(opt, checkout, params, max_epochs, options)


def _configure_meshhead(opt: Any, checkout: Checkout, params: dict[str, Any]) -> None:
    repo = checkout.meshhead
    if "early_stopping" in repo:  # the fork's train_meshhead.py: its val loader call crashes
        opt.early_stopping = False
    if "lr" in params:
        opt.lr_net = float(params["lr"])
        opt.lr_lmk = opt.lr_net * repo["lr_lmk"] / repo["lr_net"]
    opt.batch_size = int(params.get("batch_size", 1))
    for mlp, sizes in mlp_widths(repo, params).items():
        setattr(opt, mlp, sizes)


def _configure_gazegaussian(opt: Any, checkout: Checkout, params: dict[str, Any],
                            max_epochs: int, options: dict[str, Any]) -> None:
    for name, value in params.items():
        setattr(opt, name, type(checkout.gazegaussian[name])(value))
    opt.batch_size = 1
    if "shape_coeffs_dim" in checkout.gazegaussian:  # the fork sizes the DiT's condition by it,
        opt.shape_coeffs_dim = opt.expr_code_dims + opt.iden_code_dims  # but feeds expr + iden
    if any(name in params for name in DIT_PARAMS):
        opt.neural_renderer_type = "dit"
    if getattr(opt, "neural_renderer_type", None) == "dit":
        opt.use_vae = False
    if checkout.has_orthogonality:  # on only when searched: the loss is new and fork-only
        opt.use_orthogonality_loss = float(params.get(ORTHO, 0.0)) > 0
        if opt.use_orthogonality_loss and orthogonality_works(checkout) is False:
            raise ConfigError(_broken_orthogonality(checkout))
    for name, begin in loss_begin(checkout, max_epochs, options).items():
        setattr(opt, name, begin)


def loss_begin(checkout: Checkout, max_epochs: int, options: dict[str, Any]) -> dict[str, int]:
    """``vgg_loss_begin`` / ``angular_loss_begin`` scaled to this trial's epoch budget.

    The repo starts these losses at epoch 5 of 100; kept as a fraction (backend option
    ``loss_begin`` overrides it), a 20-epoch trial starts them at epoch 1, not after the
    pruner's warm-up.
    """
    repo = checkout.gazegaussian
    result = {}
    for name in LOSS_BEGIN:
        if name in repo:
            fraction = options.get("loss_begin", repo[name] / max(1, repo["num_epochs"]))
            result[name] = round(float(fraction) * max_epochs)
    return result


def overrides(stage: str, checkout: Checkout, options: dict[str, Any]) -> dict[str, Any]:
    """Raw repo options given as backend options ``opt.NAME=VALUE``, typed like the defaults."""
    repo = checkout.options(stage)
    result = {}
    for key, raw in options.items():
        if not key.startswith(OVERRIDE_PREFIX):
            continue
        name = key[len(OVERRIDE_PREFIX):]
        if name not in checkout.meshhead and name not in checkout.gazegaussian:
            raise ConfigError(f"Backend option {key!r} names no option of the {checkout.variant} "
                              f"checkout at {checkout.root}: check the spelling in its configs/.")
        if name in repo:
            result[name] = _typed(key, raw, repo[name])
    if stage == "gazegaussian":
        _check_renderer(result, checkout)
    return result


def overridden(stage: str, checkout: Checkout, options: dict[str, Any]) -> dict[str, Any]:
    """The stage's repo option defaults with the ``opt.NAME`` overrides applied."""
    return {**checkout.options(stage), **overrides(stage, checkout, options)}


def _check_renderer(values: dict[str, Any], checkout: Checkout) -> None:
    if values.get("featmap_nc", FEATMAP_CHANNELS) != FEATMAP_CHANNELS:
        raise ConfigError(f"opt.featmap_nc must stay {FEATMAP_CHANNELS} (the rasterizer is built for "
                          f"{FEATMAP_CHANNELS} channels), but got {values['featmap_nc']}.")
    if checkout.has_dit and values.get("use_vae"):
        raise ConfigError("opt.use_vae must stay False: the fork's DiT renderer does not run with "
                          "its VAE (channel mismatch), so remove that backend option.")


def _typed(key: str, raw: Any, default: Any) -> Any:
    value = parse_value(raw) if isinstance(raw, str) and not isinstance(default, str) else raw
    if isinstance(default, bool) != isinstance(value, bool) or (
            isinstance(default, (int, float)) and not isinstance(value, (int, float))) or (
            isinstance(default, list) and not isinstance(value, list)):
        raise ConfigError(f"Backend option {key} takes a {type(default).__name__} like "
                          f"{default!r}, but got {raw!r}.")
    return float(value) if isinstance(default, float) else value


def orthogonality_works(checkout: Checkout) -> bool | None:
    """Run the checkout's orthogonality loss on inputs shaped like the trainer's; None: unknown.

    The trainer passes gaze pitch-yaw (B, 2), head rotation (B, 3) and the expression code (B, 64).
    The fork as read multiplies the first two elementwise, which fails.
    """
    loss = source_function(checkout.root / "losses/gazenerf_loss.py", "calc_orthogonality_loss",
                           owner="GazeNeRFLoss",
                           namespace={"torch": torch, "F": torch.nn.functional})
    if loss is None:
        return None
    expr_dims = int(checkout.gazegaussian.get("expr_code_dims", 64))
    try:
        value = loss(None, torch.rand(1, 2), torch.rand(1, 3), torch.rand(1, expr_dims))
    except RuntimeError:
        return False
    except Exception:  # noqa: BLE001 - it needs more than we can give it here
        return None
    return bool(torch.isfinite(torch.as_tensor(value)).all())


def _broken_orthogonality(checkout: Checkout) -> str:
    return (f"The orthogonality loss of the checkout at {checkout.root} fails on the trainer's "
            "inputs (gaze is 2-d, head rotation 3-d), so fix orthogonality_loss_importance to 0.0 "
            "or repair calc_orthogonality_loss in losses/gazenerf_loss.py.")


def _unsupported(stage: str, name: str, checkout: Checkout) -> str:
    option = MESHHEAD_PARAMS.get(name, name) if stage == "meshhead" else name
    fix = ("use the DiT fork (kram254/GazeGaussian) or remove it from the space"
           if name in (*DIT_PARAMS, ORTHO) else "remove it from the space")
    return (f"Parameter {name!r} needs the repo option {option!r}, which the {checkout.variant} "
            f"checkout at {checkout.root} does not have for the {stage} stage: {fix}.")
