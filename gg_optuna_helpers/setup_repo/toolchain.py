"""The torch, CUDA and Python that wheels are built for, and the key they are cached under."""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Toolchain:
    """``torch`` without its local tag ("2.5.1"), ``cuda`` ("12.1", or None for a CPU torch),
    ``torch_full`` as installed ("2.5.1+cu121"), ``python`` ("312")."""

    torch: str
    cuda: str | None
    torch_full: str
    python: str = f"{sys.version_info.major}{sys.version_info.minor}"

    @property
    def cu(self) -> str:
        """CUDA as wheel pages spell it ("121"), or "cpu"."""
        return self.cuda.replace(".", "") if self.cuda else "cpu"

    def key(self, commit: str) -> str:
        """The cache folder name: built wheels fit only this torch, CUDA, Python and repo."""
        return f"torch{self.torch}-cu{self.cu}-py{self.python}-{commit[:12]}"


def detect() -> Toolchain:
    """The toolchain of the torch installed in this interpreter (never changed here)."""
    import torch

    return Toolchain(torch.__version__.split("+")[0], torch.version.cuda, torch.__version__)
