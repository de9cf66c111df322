"""The torch, CUDA, Python and GPU that wheels are built for, and the key they are cached under."""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Toolchain:
    """``torch`` without its local tag ("2.5.1"), ``cuda`` ("12.1", or None for a CPU torch),
    ``torch_full`` as installed ("2.5.1+cu121"), ``python`` ("312"), ``capability``: the GPU's
    compute capability as ``TORCH_CUDA_ARCH_LIST`` spells it ("7.5" on a T4; None: no GPU
    visible), ``executable``: the interpreter that builds and installs (this one)."""

    torch: str
    cuda: str | None
    torch_full: str
    python: str = f"{sys.version_info.major}{sys.version_info.minor}"
    capability: str | None = None
    executable: str = sys.executable

    @property
    def cu(self) -> str:
        """CUDA as wheel pages spell it ("121"), or "cpu"."""
        return self.cuda.replace(".", "") if self.cuda else "cpu"

    @property
    def sm(self) -> str:
        """The GPU architecture as nvcc names it ("sm75"), or "smnone"."""
        return f"sm{(self.capability or 'none').replace('.', '')}"

    def key(self, commit: str) -> str:
        """The cache folder name. Built wheels fit only this torch, CUDA, Python and repo, and
        hold kernels for this GPU architecture only (``TORCH_CUDA_ARCH_LIST``): a T4's sm75
        wheels on an A100 (sm80) import, then fail at the first kernel launch."""
        return f"torch{self.torch}-cu{self.cu}-py{self.python}-{self.sm}-{commit[:12]}"


def detect() -> Toolchain:
    """The toolchain of the torch installed in this interpreter (never changed here)."""
    import torch

    capability = None
    if torch.version.cuda and torch.cuda.is_available():
        capability = "{}.{}".format(*torch.cuda.get_device_capability())
    return Toolchain(torch.__version__.split("+")[0], torch.version.cuda, torch.__version__,
                     capability=capability)
