"""CPU TEST STAND-IN for ``kaolin.metrics.render`` (test harness only)."""

import torch


def mask_iou(lhs_mask, rhs_mask):
    """IoU loss of two (B, H, W) soft masks, as kaolin: ``1 - mean_b(sum(l*r) / sum(l+r-l*r))``."""
    batch_size = lhs_mask.shape[0]
    assert rhs_mask.shape == lhs_mask.shape
    mul = lhs_mask * rhs_mask
    up = mul.reshape(batch_size, -1).sum(1)
    down = (lhs_mask + rhs_mask - mul).reshape(batch_size, -1).sum(1)
    return 1.0 - torch.mean(up / (down + 1e-10))
