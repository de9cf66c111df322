"""In-memory repairs of faults the real checkout shows when it runs, applied only when a probe
finds the fault, in the trial's own process (the checkout's files are never edited).

- ``matrix_to_quaternion``: the DiT fork replaced pytorch3d's with a torch-native copy that takes
  ``sqrt(clamp(x, min=0))``, whose gradient is NaN wherever a quaternion component is 0 (e.g.
  any Gaussian at its initial identity rotation). One NaN gradient turns every Gaussian's
  position into NaN after the first optimizer step, and the next forward pass crashes. The
  replacement computes the same values with pytorch3d's gradient rule (0 where the part is 0).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import torch


def _sqrt_positive_part(x: torch.Tensor) -> torch.Tensor:
    positive = x > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, x, torch.ones_like(x))),
                       torch.zeros_like(x))


def matrix_to_quaternion(m: torch.Tensor) -> torch.Tensor:
    """Real-first quaternions of rotation matrices ``(..., 3, 3)``, as the fork computes them."""
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    q = torch.stack([_sqrt_positive_part(1 + m00 + m11 + m22),
                     _sqrt_positive_part(1 + m00 - m11 - m22),
                     _sqrt_positive_part(1 - m00 + m11 - m22),
                     _sqrt_positive_part(1 - m00 - m11 + m22)], -1) / 2
    signs = torch.stack([torch.ones_like(m00), torch.sign(m[..., 2, 1] - m[..., 1, 2]),
                         torch.sign(m[..., 0, 2] - m[..., 2, 0]),
                         torch.sign(m[..., 1, 0] - m[..., 0, 1])], -1)
    return q * signs


def nan_gradient(function: Callable[[torch.Tensor], torch.Tensor]) -> bool:
    """True when ``function``'s gradient at the identity rotation is not finite."""
    eye = torch.eye(3, requires_grad=True)
    try:
        function(eye[None]).sum().backward()
    except Exception:  # noqa: BLE001 - not a function we know how to probe: leave it alone
        return False
    return not bool(torch.isfinite(eye.grad).all())


def repair_checkout(root: Path) -> list[str]:
    """Repair the loaded modules of the checkout at ``root``; the names of what was replaced."""
    repaired = []
    for name, module in list(sys.modules.items()):
        where = getattr(module, "__file__", None)
        function = getattr(module, "matrix_to_quaternion", None)
        if where and Path(where).is_relative_to(root) and callable(function) \
                and function is not matrix_to_quaternion and nan_gradient(function):
            module.matrix_to_quaternion = matrix_to_quaternion
            repaired.append(f"{name}.matrix_to_quaternion")
    return repaired
