"""CPU TEST STAND-IN for the CUDA ``diff_gaussian_rasterization`` (32-channel GazeGaussian build).

Used only by the test harness (put on ``sys.path`` via ``PYTHONPATH=tests/real_repo/standins``)
to run the real GazeGaussian code on a CPU-only machine. It is NOT the real rasterizer: it
re-implements the forward pass of the Inria CUDA kernels (``cuda_rasterizer/forward.cu``) in
pure, differentiable torch and lets autograd supply the backward pass.

Same API and conventions as the real wrapper:
- ``viewmatrix`` / ``projmatrix`` are the transposed (row-vector) 4x4 matrices:
  ``p_view = [p, 1] @ viewmatrix``, ``p_hom = [p, 1] @ projmatrix``.
- Near culling at view z <= 0.2, 3D covariance R S^2 R^T from scale * scale_modifier and a wxyz
  quaternion (normalised here; the repos normalise it anyway), EWA projection with the Jacobian's
  x/y clamped to 1.3 tan(fov), 0.3 px low-pass, radius ceil(3 sqrt(lambda_max)), 16x16 tiles:
  a Gaussian reaches only the pixels of the tiles its radius rectangle touches.
- Pixel centres at integer coordinates, NDC -> pixel ``((v + 1) * S - 1) / 2``.
- Front-to-back compositing in view-depth order, alpha = min(0.99, o * exp(power)), alphas below
  1/255 skipped, stop once the transmittance would fall below 1e-4, background (a (C,) vector or a
  per-pixel (C,H,W) tensor) blended with the final transmittance.
- Returns ``(color (C,H,W), radii (N,) int32, depth_map (1,H,W), weight_map (1,H,W))`` with
  ``weight = sum(alpha T) + 1e-6`` and ``depth = sum(alpha T z) / weight``.
- ``means2D`` is added to the projected NDC means, so its gradient is the NDC screen-space
  gradient the repos read after ``retain_grad()``.

How: (pixel, Gaussian) pairs are enumerated from each Gaussian's tile rectangle, cut to the
square outside which its alpha stays below 1/255, sorted by pixel then depth; a no-grad pass drops
the pairs the real kernel skips (alpha < 1/255, after the 1e-4 early stop) and the differentiable
pass composites the rest with a segmented cumulative sum of log(1 - alpha). Row bands bound the
pair enumeration.

Limits: only precomputed colours or degree-0 SH; no custom backward, so time and memory grow with
the number of covered (pixel, Gaussian) pairs (~1 s forward+backward for 15k Gaussians at 64x64
on 2 cores): meant for test-sized images (<= ~128 px), not for real training. The real kernel's
gradient skips some terms (e.g. weight_map); autograd here is the exact gradient of the forward.
"""

from typing import NamedTuple

import torch
import torch.nn as nn

__all__ = ["GaussianRasterizationSettings", "GaussianRasterizer", "rasterize_gaussians"]

BLOCK = 16                     # tile size of the real rasterizer (config.h BLOCK_X/BLOCK_Y)
_CHUNK_PAIRS = 4_000_000       # (pixel, Gaussian) pairs per row band (bounds memory)
_SH_C0 = 0.28209479177387814


class GaussianRasterizationSettings(NamedTuple):
    image_height: int
    image_width: int
    tanfovx: float
    tanfovy: float
    bg: torch.Tensor
    scale_modifier: float
    viewmatrix: torch.Tensor
    projmatrix: torch.Tensor
    sh_degree: int
    campos: torch.Tensor
    prefiltered: bool
    debug: bool


def _quat_to_rotmat(q):
    q = torch.nn.functional.normalize(q, dim=-1)
    r, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - r * z), 2 * (x * z + r * y),
        2 * (x * y + r * z), 1 - 2 * (x * x + z * z), 2 * (y * z - r * x),
        2 * (x * z - r * y), 2 * (y * z + r * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(q.shape[:-1] + (3, 3))


def _cov3d(scales, rotations, scale_modifier, cov3D_precomp):
    if cov3D_precomp is not None and cov3D_precomp.numel() > 0:
        c = cov3D_precomp
        return torch.stack([c[:, 0], c[:, 1], c[:, 2],
                            c[:, 1], c[:, 3], c[:, 4],
                            c[:, 2], c[:, 4], c[:, 5]], dim=-1).reshape(-1, 3, 3)
    R = _quat_to_rotmat(rotations)
    M = R * (scale_modifier * scales).unsqueeze(-2)          # R @ diag(s)
    return M @ M.transpose(-1, -2)


def _preprocess(means3D, means2D, scales, rotations, cov3D_precomp, s):
    """Projection and culling (preprocessCUDA). Returns per-Gaussian screen data and a mask."""
    H, W = int(s.image_height), int(s.image_width)
    dev, dt = means3D.device, means3D.dtype
    view = torch.as_tensor(s.viewmatrix, device=dev, dtype=dt)
    proj = torch.as_tensor(s.projmatrix, device=dev, dtype=dt)
    N = means3D.shape[0]
    ph = torch.cat([means3D, torch.ones(N, 1, device=dev, dtype=dt)], dim=1)
    p_view = ph @ view[:, :3]
    p_hom = ph @ proj
    depth = p_view[:, 2]
    with torch.no_grad():
        valid = torch.isfinite(ph).all(1) & (depth > 0.2)
    z = torch.where(valid, depth, torch.ones_like(depth))
    w = torch.where(valid, p_hom[:, 3], torch.ones_like(depth))
    ndc = p_hom[:, :2] / (w + 1e-7).unsqueeze(1)
    if means2D is not None and means2D.numel() > 0:
        ndc = ndc + means2D[:, :2].to(dt)
    pix_x = ((ndc[:, 0] + 1.0) * W - 1.0) * 0.5
    pix_y = ((ndc[:, 1] + 1.0) * H - 1.0) * 0.5

    tanx, tany = float(s.tanfovx), float(s.tanfovy)
    fx, fy = W / (2.0 * tanx), H / (2.0 * tany)
    tx = torch.clamp(p_view[:, 0] / z, -1.3 * tanx, 1.3 * tanx) * z
    ty = torch.clamp(p_view[:, 1] / z, -1.3 * tany, 1.3 * tany) * z
    zero = torch.zeros_like(z)
    J = torch.stack([fx / z, zero, -fx * tx / (z * z),
                     zero, fy / z, -fy * ty / (z * z)], dim=-1).reshape(N, 2, 3)
    Tm = J @ view[:3, :3].T                                   # J @ R_world2view
    Sigma = _cov3d(scales, rotations, float(s.scale_modifier), cov3D_precomp)
    cov2 = Tm @ Sigma @ Tm.transpose(1, 2)
    a = cov2[:, 0, 0] + 0.3
    b = cov2[:, 0, 1]
    c = cov2[:, 1, 1] + 0.3
    det = a * c - b * b
    with torch.no_grad():
        valid = (valid & (det != 0) & torch.isfinite(det)
                 & torch.isfinite(pix_x) & torch.isfinite(pix_y))
    det = torch.where(valid, det, torch.ones_like(det))
    conic = torch.stack([c / det, -b / det, a / det], dim=-1)

    with torch.no_grad():
        mid = 0.5 * (a + c)
        lam1 = mid + torch.sqrt(torch.clamp(mid * mid - det, min=0.1))
        lam2 = mid - torch.sqrt(torch.clamp(mid * mid - det, min=0.1))
        lam_max = torch.nan_to_num(torch.maximum(lam1, lam2), nan=0.0).clamp(min=0.0)
        radius = torch.ceil(3.0 * torch.sqrt(lam_max))
        radius = torch.nan_to_num(radius, nan=0.0, posinf=1e9).clamp(0, 1e9)
        gx, gy = (W + BLOCK - 1) // BLOCK, (H + BLOCK - 1) // BLOCK
        px = torch.nan_to_num(pix_x, nan=0.0).clamp(-1e9, 1e9)
        py = torch.nan_to_num(pix_y, nan=0.0).clamp(-1e9, 1e9)
        rx0 = torch.trunc((px - radius) / BLOCK).clamp(0, gx).long()
        ry0 = torch.trunc((py - radius) / BLOCK).clamp(0, gy).long()
        rx1 = torch.trunc((px + radius + BLOCK - 1) / BLOCK).clamp(0, gx).long()
        ry1 = torch.trunc((py + radius + BLOCK - 1) / BLOCK).clamp(0, gy).long()
        valid = valid & ((rx1 - rx0) * (ry1 - ry0) > 0)
        radii = torch.where(valid, radius, torch.zeros_like(radius)).to(torch.int32)
    return dict(pix_x=pix_x, pix_y=pix_y, conic=conic, depth=depth, valid=valid, radii=radii,
                lam_max=lam_max,
                rect=(rx0, ry0, rx1, ry1), grid=(gx, gy))


def _pixel_pairs(pre, opac, W, H, row0, row1):
    """(pixel, Gaussian) pairs for image rows [row0, row1), sorted by pixel then view depth.

    A Gaussian is paired with the pixels of its tile rectangle (as the real tile lists) that lie
    within sqrt(2 ln(255 o) lambda_max) of its mean: beyond that its alpha is below 1/255 and the
    real kernel skips it too, so the result equals the dense per-tile evaluation.
    """
    rx0, ry0, rx1, ry1 = pre["rect"]
    valid = pre["valid"]
    dev = rx0.device
    with torch.no_grad():
        ext = torch.sqrt(2.0 * torch.log(255.0 * opac.detach().clamp(min=1.0 / 255.0))
                         * pre["lam_max"]) + 1e-3
        ext = torch.nan_to_num(ext, nan=0.0, posinf=1e9).clamp(max=1e9)
        px, py = pre["pix_x"].detach(), pre["pix_y"].detach()
        x0 = torch.maximum(torch.ceil(px - ext).clamp(-1, W), (rx0 * BLOCK).to(px.dtype))
        x1 = torch.minimum(torch.floor(px + ext).clamp(-1, W), (rx1 * BLOCK - 1).to(px.dtype))
        y0 = torch.maximum(torch.ceil(py - ext).clamp(-1, H), (ry0 * BLOCK).to(py.dtype))
        y1 = torch.minimum(torch.floor(py + ext).clamp(-1, H), (ry1 * BLOCK - 1).to(py.dtype))
        x0, x1 = x0.clamp(min=0).long(), x1.clamp(max=W - 1).long()
        y0, y1 = y0.clamp(min=row0).long(), y1.clamp(max=row1 - 1).long()
        wdt = torch.where(valid, (x1 - x0 + 1).clamp(min=0), torch.zeros_like(x0))
        hgt = torch.where(valid, (y1 - y0 + 1).clamp(min=0), torch.zeros_like(y0))
        counts = wdt * hgt
        total = int(counts.sum())
        N = counts.numel()
        if total == 0:
            e = torch.zeros(0, dtype=torch.long, device=dev)
            return e, e
        gid = torch.repeat_interleave(torch.arange(N, device=dev), counts)
        starts = torch.cumsum(counts, 0) - counts
        local = torch.arange(total, device=dev) - starts[gid]
        pix = (y0[gid] + local // wdt[gid]) * W + (x0[gid] + local % wdt[gid])
        rank = torch.empty(N, dtype=torch.long, device=dev)
        rank[torch.argsort(pre["depth"].detach(), stable=True)] = torch.arange(N, device=dev)
        order = torch.argsort(pix * N + rank[gid])
        return pix[order], gid[order]


def _composite(pix, gid, pre, colors, opac, W, base, n_pix):
    """Front-to-back compositing of depth-sorted (pixel, Gaussian) pairs (renderCUDA).

    A first pass without gradients finds the pairs the real kernel would use (alpha >= 1/255,
    before the pixel's transmittance would drop below 1e-4); the differentiable pass runs on those
    only. Per-pixel transmittance = exp of a segmented cumulative sum of log(1 - alpha) (float64).
    Returns colour (n_pix, C), log final transmittance (n_pix,), depth sum, weight sum.
    """
    dev, dt = opac.device, opac.dtype
    def sel(x, i):              # backward is an index_add: faster on CPU than x[i]'s index_put
        return torch.index_select(x, 0, i)

    pix = pix - base                                      # index within the band

    def alphas(p, g):
        dx = sel(pre["pix_x"], g) - (p % W + base % W).to(dt)
        dy = sel(pre["pix_y"], g) - ((p + base) // W).to(dt)
        con = sel(pre["conic"], g)
        power = -0.5 * (con[:, 0] * dx * dx + con[:, 2] * dy * dy) - con[:, 1] * dx * dy
        return power, torch.clamp(sel(opac, g) * torch.exp(power), max=0.99)

    def log_t(p, a):
        """log(1 - alpha) and log T before each pair, per pixel segment of sorted pairs."""
        l1m = torch.log1p(-a).double()
        counts = torch.bincount(p, minlength=n_pix)
        first = (torch.cumsum(counts, 0) - counts)[p]
        cs_excl = torch.cumsum(l1m, 0) - l1m
        return l1m, cs_excl - sel(cs_excl, first)

    with torch.no_grad():
        power, alpha = alphas(pix, gid)
        keep = (power <= 0) & (alpha >= 1.0 / 255.0)
        alpha = torch.where(keep, alpha, torch.zeros_like(alpha))
        l1m, lt = log_t(pix, alpha)
        live = keep & ((lt + l1m) >= torch.log(torch.tensor(1e-4, dtype=torch.float64)))
        pix, gid = pix[live], gid[live]
    _, alpha = alphas(pix, gid)
    l1m, lt = log_t(pix, alpha)
    weights = alpha * torch.exp(lt).to(dt)
    C = colors.shape[-1]
    color = torch.zeros(n_pix, C, device=dev, dtype=dt).index_add(
        0, pix, weights[:, None] * sel(colors, gid))
    log_tf = torch.zeros(n_pix, device=dev, dtype=torch.float64).index_add(0, pix, l1m)
    dep = torch.zeros(n_pix, device=dev, dtype=dt).index_add(0, pix, weights * sel(pre["depth"], gid))
    wei = torch.zeros(n_pix, device=dev, dtype=dt).index_add(0, pix, weights)
    return color, log_tf, dep, wei


def rasterize_gaussians(means3D, means2D, sh, colors_precomp, opacities, scales, rotations,
                        cov3Ds_precomp, raster_settings):
    s = raster_settings
    H, W = int(s.image_height), int(s.image_width)
    dev, dt = means3D.device, means3D.dtype
    if sh is None or sh.numel() == 0:
        colors = colors_precomp.to(dt)
    else:
        if int(s.sh_degree) != 0:
            raise NotImplementedError("CPU stand-in: only precomputed colours or sh_degree 0")
        colors = torch.clamp(_SH_C0 * sh[:, 0, :] + 0.5, min=0.0)
    C = colors.shape[-1]
    opac = opacities.reshape(-1).to(dt)
    pre = _preprocess(means3D, means2D, scales, rotations, cov3Ds_precomp, s)

    color, log_tf, dep, wei = _render_band(pre, opac, colors, W, H, 0, H)
    color = color.T.reshape(C, H, W)
    if not color.requires_grad and torch.is_grad_enabled():
        # nothing drawn: keep the outputs attached to the inputs, as the CUDA Function's are
        anchor = sum(t.sum() * 0.0 for t in (means3D, colors, opac, pre["pix_x"])
                     if t.requires_grad)
        if isinstance(anchor, torch.Tensor):
            color, dep, wei = color + anchor, dep + anchor, wei + anchor
    t_final = torch.exp(log_tf).to(dt).reshape(1, H, W)
    bg = torch.as_tensor(s.bg, device=dev, dtype=dt)
    if bg.dim() == 1:
        bg = bg[:, None, None]
    color = color + t_final * bg
    wei = wei.reshape(1, H, W) + 1e-6
    depth_map = dep.reshape(1, H, W) / wei
    return color, pre["radii"], depth_map, wei


def _render_band(pre, opac, colors, W, H, row0, row1):
    """Render image rows [row0, row1); halves the band while it has too many pairs."""
    pix, gid = _pixel_pairs(pre, opac, W, H, row0, row1)
    if pix.numel() > _CHUNK_PAIRS and row1 - row0 > 1:
        mid = (row0 + row1) // 2
        del pix, gid
        a = _render_band(pre, opac, colors, W, H, row0, mid)
        b = _render_band(pre, opac, colors, W, H, mid, row1)
        return tuple(torch.cat([x, y], 0) for x, y in zip(a, b))
    n_pix = (row1 - row0) * W
    return _composite(pix, gid, pre, colors, opac, W, row0 * W, n_pix) if pix.numel() else (
        torch.zeros(n_pix, colors.shape[-1], device=opac.device, dtype=opac.dtype),
        torch.zeros(n_pix, device=opac.device, dtype=torch.float64),
        torch.zeros(n_pix, device=opac.device, dtype=opac.dtype),
        torch.zeros(n_pix, device=opac.device, dtype=opac.dtype))


class GaussianRasterizer(nn.Module):
    def __init__(self, raster_settings):
        super().__init__()
        self.raster_settings = raster_settings

    def markVisible(self, positions):
        with torch.no_grad():
            s = self.raster_settings
            view = torch.as_tensor(s.viewmatrix, device=positions.device, dtype=positions.dtype)
            ph = torch.cat([positions, torch.ones_like(positions[:, :1])], dim=1)
            return (ph @ view[:, 2]) > 0.2

    def forward(self, means3D, means2D, opacities, shs=None, colors_precomp=None, scales=None,
                rotations=None, cov3D_precomp=None):
        if (shs is None) == (colors_precomp is None):
            raise Exception('Please provide excatly one of either SHs or precomputed colors!')
        if ((scales is None or rotations is None) and cov3D_precomp is None) or \
                ((scales is not None or rotations is not None) and cov3D_precomp is not None):
            raise Exception('Please provide exactly one of either scale/rotation pair or '
                            'precomputed 3D covariance!')
        return rasterize_gaussians(means3D, means2D, shs, colors_precomp, opacities, scales,
                                   rotations, cov3D_precomp, self.raster_settings)
