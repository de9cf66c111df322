"""What a checkout needs besides pure Python: its CUDA submodules, kaolin, pytorch3d (upstream)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from .imports import imported_modules

CHANNELS_HEADER = "submodules/diff-gaussian-rasterization/cuda_rasterizer/config.h"
CHANNELS = 32


@dataclass(frozen=True)
class Package:
    """``dist``: the name in its wheel files; ``module``: what must import afterwards;
    ``source``: a checkout folder built into a wheel, or ``page``: a wheel index page
    (``{torch}``, ``{cu}``, ``{py}``, ``{pyt}`` filled from the toolchain) with ``listing``
    (where the published pages are listed) and ``from_source`` (a pip requirement, at a pinned
    tag, to build when no wheel matches). ``build_requires``: what that build needs besides torch
    and ninja; ``repairs``: (file, line) pairs, each line added at the top of that file of the
    build copy when the file lacks it (the user's checkout is never edited)."""

    dist: str
    module: str
    source: str | None = None
    page: str | None = None
    listing: str | None = None
    from_source: str | None = None
    build_requires: tuple[str, ...] = ()
    repairs: tuple[tuple[str, str], ...] = ()


RASTERIZER = Package("diff_gaussian_rasterization", "diff_gaussian_rasterization",
                     source="submodules/diff-gaussian-rasterization")
SIMPLE_KNN = Package("simple_knn", "simple_knn._C", source="submodules/simple-knn",
                     repairs=(("simple_knn.cu", "#include <cfloat>"),))  # FLT_MAX, CUDA >= 12.5
KAOLIN = Package("kaolin", "kaolin",
                 page="https://nvidia-kaolin.s3.us-east-2.amazonaws.com/torch-{torch}_cu{cu}.html",
                 listing="https://nvidia-kaolin.s3.us-east-2.amazonaws.com/?delimiter=/",
                 from_source="git+https://github.com/NVIDIAGameWorks/kaolin.git@v0.18.0",
                 build_requires=("cython==0.29.37", "setuptools<75.9"))  # its build_requirements
PYTORCH3D = Package("pytorch3d", "pytorch3d",
                    page="https://dl.fbaipublicfiles.com/pytorch3d/packaging/wheels/"
                         "py{py}_cu{cu}_pyt{pyt}/download.html",
                    from_source="git+https://github.com/facebookresearch/pytorch3d.git@v0.7.9")

WHEEL_MODULES = {p.module.split(".")[0] for p in (RASTERIZER, SIMPLE_KNN, KAOLIN, PYTORCH3D)}
"""Modules installed as wheels here, never from PyPI by name (PyPI's kaolin is a placeholder)."""


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
    return "pytorch3d" in imported_modules(root)


def check_channels(root: Path) -> None:
    """Refuse a rasterizer not configured for GazeGaussian's 32-channel features."""
    text = (root / CHANNELS_HEADER).read_text() if (root / CHANNELS_HEADER).is_file() else ""
    found = re.search(r"#define\s+NUM_CHANNELS\s+(\d+)", text)
    if not found or int(found.group(1)) != CHANNELS:
        got = found.group(1) if found else "not set"
        raise ConfigError(f"NUM_CHANNELS in {CHANNELS_HEADER} is {got}, but GazeGaussian needs "
                          f"{CHANNELS}: use the repo's own submodule (it sets 32).")
