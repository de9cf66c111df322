"""CPU TEST STAND-IN for ``pytorch3d.transforms.so3`` (test harness only).

Same formulas and ``eps`` / ``cos_bound`` handling as pytorch3d: ``so3_exp_map`` (Rodrigues with
the angle clamped at sqrt(eps)), ``so3_log_map`` (angle from the trace, inaccurate near pi as
pytorch3d's), ``so3_exponential_map`` is the old name of ``so3_exp_map``.
"""

import torch


def hat(v):
    N, dim = v.shape
    if dim != 3:
        raise ValueError("Input vectors have to be 3-dimensional.")
    x, y, z = v.unbind(1)
    zero = torch.zeros_like(x)
    return torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], 1).reshape(N, 3, 3)


def hat_inv(h):
    return torch.stack([h[:, 2, 1], h[:, 0, 2], h[:, 1, 0]], dim=1)


def so3_exp_map(log_rot, eps=0.0001):
    if log_rot.dim() != 2 or log_rot.shape[1] != 3:
        raise ValueError("Input tensor shape has to be Nx3.")
    nrms = (log_rot * log_rot).sum(1)
    angles = torch.clamp(nrms, eps).sqrt()
    fac1 = torch.sin(angles) / angles
    fac2 = (1.0 - torch.cos(angles)) / (angles * angles)
    skews = hat(log_rot)
    eye = torch.eye(3, dtype=log_rot.dtype, device=log_rot.device)[None]
    return fac1[:, None, None] * skews + fac2[:, None, None] * torch.bmm(skews, skews) + eye


so3_exponential_map = so3_exp_map


def so3_rotation_angle(R, eps=0.0001, cos_angle=False, cos_bound=0.0001):
    N, d1, d2 = R.shape
    if d1 != 3 or d2 != 3:
        raise ValueError("Input has to be a batch of 3x3 Tensors.")
    trace = R[:, 0, 0] + R[:, 1, 1] + R[:, 2, 2]
    if ((trace < -1.0 - eps) | (trace > 3.0 + eps)).any():
        raise ValueError("A matrix has trace outside valid range [-1-eps,3+eps].")
    phi_cos = (trace - 1.0) * 0.5
    if cos_angle:
        return phi_cos
    if cos_bound > 0.0:
        bound = 1.0 - cos_bound
        phi_cos = phi_cos.clamp(-bound, bound)
    return torch.acos(phi_cos)


def so3_log_map(R, eps=0.0001, cos_bound=0.0001):
    N, d1, d2 = R.shape
    if d1 != 3 or d2 != 3:
        raise ValueError("Input has to be a batch of 3x3 Tensors.")
    phi = so3_rotation_angle(R, cos_bound=cos_bound, eps=eps)
    phi_sin = torch.sin(phi)
    small = phi_sin.abs() <= 0.5 * eps
    safe_sin = torch.where(small, torch.ones_like(phi_sin), phi_sin)
    phi_factor = torch.where(small, 0.5 + phi * phi / 12.0, phi / (2.0 * safe_sin))
    log_rot_hat = phi_factor[:, None, None] * (R - R.permute(0, 2, 1))
    return hat_inv(log_rot_hat)
