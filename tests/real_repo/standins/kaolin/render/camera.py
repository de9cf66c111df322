"""CPU TEST STAND-IN for ``kaolin.render.camera`` legacy helpers (test harness only)."""

import math

import torch


def rotate_translate_points(points, camera_rot, camera_trans):
    """``P_new = R (P_old - T)``: points (B,N,3), camera_rot (B,3,3), camera_trans (B,3,1)."""
    translated = points - camera_trans.view(-1, 1, 3)
    return torch.matmul(translated, camera_rot.permute(0, 2, 1))


def perspective_camera(points, camera_proj):
    """Project camera-space points (B,N,3) with a (3,1) kaolin projection: (B,N,2)."""
    projected = points * camera_proj.view(-1, 1, 3)
    return projected[:, :, :2] / projected[:, :, 2:3]


def generate_perspective_projection(fovyangle, ratio=1.0, dtype=torch.float):
    tanfov = math.tan(fovyangle / 2.0)
    return torch.tensor([[1.0 / (ratio * tanfov)], [1.0 / tanfov], [-1]], dtype=dtype)
