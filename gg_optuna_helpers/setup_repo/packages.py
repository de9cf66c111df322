"""What a checkout needs besides pure Python: its CUDA submodules, kaolin, pytorch3d (upstream)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

CHANNELS_HEADER = "submodules/diff-gaussian-rasterization/cuda_rasterizer/config.h"
CHANNELS = 32


@dataclass(frozen=True)
class Package:
    """``dist``: the name in its wheel files; ``module``: what must import afterwards;
    ``source``: a checkout folder built into a wheel, or ``page``: a wheel index page
    (``{torch}``, ``{cu}``, ``{py}``, ``{pyt}`` filled from the toolchain) with ``listing``
    (where the published pages are listed) and ``from_source`` (a pip requirement to build when
    no wheel matches)."""

    dist: str
    module: str
    source: str | None = None
    page: str | None = None
    listing: str | None = None
    from_source: str | None = None


RASTERIZER = Package("diff_gaussian_rasterization", "diff_gaussian_rasterization",
                     source="submodules/diff-gaussian-rasterization")
SIMPLE_KNN = Package("simple_knn", "simple_knn._C", source="submodules/simple-knn")
KAOLIN = Package("kaolin", "kaolin",
                 page="https://nvidia-kaolin.s3.us-east-2.amazonaws.com/torch-{torch}_cu{cu}.html",
                 listing="https://nvidia-kaolin.s3.us-east-2.amazonaws.com/?delimiter=/",
                 from_source="git+https://github.com/NVIDIAGameWorks/kaolin.git")
PYTORCH3D = Package("pytorch3d", "pytorch3d",
                    page="https://dl.fbaipublicfiles.com/pytorch3d/packaging/wheels/"
                         "py{py}_cu{cu}_pyt{pyt}/download.html",
                    from_source="git+https://github.com/facebookresearch/pytorch3d.git@stable")

_IMPORTS_PYTORCH3D = re.compile(r"^\s*(from|import)\s+pytorch3d\b", re.MULTILINE)


def packages_for(root: Path) -> list[Package]:
    """The packages the checkout at ``root`` imports, in build order."""
    for package in (RASTERIZER, SIMPLE_KNN):
        if not (root / package.source / "setup.py").is_file():
            raise ConfigError(f"{root} has no {package.source}/setup.py: clone with submodules "
                              "(git submodule update --init --recursive) or use another dest=.")
    check_channels(root)
    return [RASTERIZER, SIMPLE_KNN, KAOLIN] + ([PYTORCH3D] if uses_pytorch3d(root) else [])


def uses_pytorch3d(root: Path) -> bool:
    """True when the checkout's own code imports pytorch3d (upstream does; the fork does not)."""
    return any(_IMPORTS_PYTORCH3D.search(path.read_text(errors="replace"))
               for path in root.rglob("*.py") if "submodules" not in path.parts)


def check_channels(root: Path) -> None:
    """Refuse a rasterizer not configured for GazeGaussian's 32-channel features."""
    text = (root / CHANNELS_HEADER).read_text() if (root / CHANNELS_HEADER).is_file() else ""
    found = re.search(r"#define\s+NUM_CHANNELS\s+(\d+)", text)
    if not found or int(found.group(1)) != CHANNELS:
        got = found.group(1) if found else "not set"
        raise ConfigError(f"NUM_CHANNELS in {CHANNELS_HEADER} is {got}, but GazeGaussian needs "
                          f"{CHANNELS}: use the repo's own submodule (it sets 32).")
