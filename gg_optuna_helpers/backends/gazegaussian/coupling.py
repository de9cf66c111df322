"""Stage coupling: the GazeGaussian stage starts from the MeshHead study's best checkpoint.

The repo's GazeGaussian trainer rebuilds MeshHead from ``configs.meshhead_options.BaseOptions()``
(the DEFAULT widths) and then copies its MLPs into the Gaussian model, whose MLPs follow the
GazeGaussian options. A MeshHead trained with other options would not load. Here both get the
options the MeshHead trial used.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

from ...errors import ConfigError
from .checkout import Checkout
from .options import mlp_widths


def load_meshhead(options: dict[str, Any], checkout: Checkout,
                  cache_dir: Path) -> tuple[Path, dict[str, Any]]:
    """The repo-format MeshHead file to load, and the MeshHead options it was trained with.

    ``options["meshhead_checkpoint"]`` is this backend's MeshHead ``best.pt`` (``trainer`` holds
    the weights and the repo options the trial used; older ones only ``params`` in our names),
    or a repo checkpoint (``{"meshhead": ...}``, default options).
    """
    given = options.get("meshhead_checkpoint")
    if not given:
        raise ConfigError("The gazegaussian stage needs the MeshHead study's best checkpoint: pass "
                          "--backend-option meshhead_checkpoint=PATH/best.pt.")
    path = Path(given).expanduser().resolve()
    if not path.is_file():
        raise ConfigError(f"The MeshHead checkpoint {path} does not exist: run the meshhead "
                          "study first, or fix meshhead_checkpoint=.")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(ckpt, dict) and isinstance(ckpt.get("trainer"), dict) \
            and "meshhead" in ckpt["trainer"]:
        weights = ckpt["trainer"]["meshhead"]
        trained = ckpt["trainer"].get("repo_options") or mlp_widths(checkout.meshhead,
                                                                    ckpt.get("params", {}))
    elif isinstance(ckpt, dict) and "meshhead" in ckpt:
        weights, trained = ckpt["meshhead"], {}
    else:
        raise ConfigError(f"{path} is not a MeshHead checkpoint of the gazegaussian backend (or of "
                          "the repo): pass the best.pt of a gazegaussian-backend meshhead study.")
    stamp = f"{path}:{path.stat().st_mtime_ns}:{path.stat().st_size}"
    target = cache_dir / f"meshhead_{hashlib.sha1(stamp.encode()).hexdigest()[:16]}.pth"
    if not target.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        torch.save({"meshhead": weights}, tmp)
        os.replace(tmp, target)
    return target, trained


@contextmanager
def meshhead_options(values: dict[str, Any]) -> Iterator[None]:
    """While active, ``configs.meshhead_options.BaseOptions()`` has the given values."""
    module = importlib.import_module("configs.meshhead_options")
    original = module.BaseOptions

    class Trained(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            for name, value in values.items():
                setattr(self, name, value)

    module.BaseOptions = Trained
    try:
        yield
    finally:
        module.BaseOptions = original
