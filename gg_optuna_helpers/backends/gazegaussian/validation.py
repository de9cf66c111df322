"""The fixed validation metric: image quality of held-out renders, plus gaze error in stage 2.

No searched value enters these formulas, so trials with different loss weights compare fairly::

    meshhead:      value = 1 - SSIM
    gazegaussian:  value = (1 - SSIM) + GAZE_WEIGHT * gaze_error_deg

SSIM and PSNR compare the render with the ground truth, both with everything outside the
head mask set to white (the repo's training target). ``gaze_error_deg`` is the angle between
the gaze the repo's gaze estimator reads from the render and from the real image.
"""

from __future__ import annotations

import math
from collections import defaultdict

import torch
import torch.nn.functional as F

GAZE_WEIGHT = 0.01  # per degree: 1 degree of gaze error counts as much as 0.01 of SSIM


def masked(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``image`` (B,3,H,W) inside ``mask`` (B,1,H,W), white outside."""
    mask = mask.to(image.dtype)
    return image * mask + (1 - mask)


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, in dB, for values in [0, 1]."""
    mse = (pred - target).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1 / mse.clamp_min(1e-10))


def ssim(pred: torch.Tensor, target: torch.Tensor, window: int = 11,
         sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity per image (Gaussian window, the usual constants)."""
    channels = pred.shape[1]
    x = torch.arange(window, dtype=pred.dtype, device=pred.device) - window // 2
    g = torch.exp(-x**2 / (2 * sigma**2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(channels, 1, window, window)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, kernel, padding=window // 2, groups=channels)

    mu_p, mu_t = blur(pred), blur(target)
    var_p = blur(pred * pred) - mu_p**2
    var_t = blur(target * target) - mu_t**2
    cov = blur(pred * target) - mu_p * mu_t
    c1, c2 = 0.01**2, 0.03**2
    score = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))
    return score.flatten(1).mean(1)


def objective(parts: dict[str, float]) -> float:
    """The objective from averaged parts (``gaze_error_deg`` only in stage 2)."""
    value = 1 - parts["ssim"]
    if "gaze_error_deg" in parts:
        value += GAZE_WEIGHT * parts["gaze_error_deg"]
    return value


class Means:
    """Running means of per-sample numbers."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)

    def add(self, name: str, values: torch.Tensor | float) -> None:
        if isinstance(values, torch.Tensor):
            values = values.detach()
        values = torch.as_tensor(values, dtype=torch.float64).cpu().flatten()
        self.sums[name] += float(values.sum())
        self.counts[name] += values.numel()

    def means(self) -> dict[str, float]:
        return {k: self.sums[k] / self.counts[k] if self.counts[k] else math.nan for k in self.sums}
