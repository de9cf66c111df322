"""CPU TEST STAND-IN for kaolin's DIB-R rasterizer (``kaolin.render.mesh``), test harness only.

Pure torch re-implementation of kaolin's CUDA kernels (``packed_rasterize_forward_cuda`` and
``dibr_soft_mask_forward_cuda``), same conventions:
- pixel (row h, column w) samples NDC ``x = (2w + 1 - W) / W``, ``y = (H - 2h - 1) / H``
  (row 0 at the top, y up); coordinates are scaled by ``multiplier`` as kaolin does;
- only faces with ``face_normals_z >= 0`` are rasterized; a pixel takes the face that covers it
  (inside its bounding box and all barycentrics >= 0, barycentrics normalised by
  ``sum + copysign(eps, sum)``) with the LARGEST interpolated ``face_vertices_z``, the lowest face
  index on ties; features are the barycentric interpolation of that face's vertex features;
- soft mask: 1 on covered pixels; elsewhere ``1 - prod(1 - exp(-sigmainv * d^2))`` over the first
  ``knum`` faces (all faces, back faces included, in index order) whose bounding box grown by
  ``boxlen`` contains the pixel, d = distance (NDC) to the face's nearest edge segment or vertex;
- ``face_idx`` is -1 where no face is drawn.
Gradients flow (by autograd) from the features to ``face_features`` and ``face_vertices_image``
and from the soft mask to ``face_vertices_image``, like kaolin's backward; none to
``face_vertices_z``. The search for covering / nearby faces runs without gradients, in chunks of
(face, pixel) pairs from each face's pixel bounding box (bounded memory, no loop over faces).
"""

import torch

__all__ = ["dibr_rasterization", "dibr_soft_mask", "rasterize"]

_PAIRS_PER_CHUNK = 2_000_000
_EPS = 1e-7          # kaolin dibr_soft_mask_cuda.cu EPS


def _pixel_xy(h, w, H, W, multiplier, dtype):
    x0 = (multiplier / W) * (2 * w + 1 - W).to(dtype)
    y0 = (multiplier / H) * (H - 2 * h - 1).to(dtype)
    return x0, y0


def _pixel_ranges(bbox, H, W, multiplier):
    """Conservative pixel index ranges of (M, 4) [xmin, ymin, xmax, ymax] boxes (scaled coords)."""
    xmin, ymin, xmax, ymax = (bbox[:, i].double() / multiplier for i in range(4))
    ok = torch.isfinite(bbox).all(1)
    w_lo = torch.floor((xmin * W + W - 1) / 2).clamp(-1, W)
    w_hi = torch.ceil((xmax * W + W - 1) / 2).clamp(-1, W)
    h_lo = torch.floor((H - 1 - ymax * H) / 2).clamp(-1, H)
    h_hi = torch.ceil((H - 1 - ymin * H) / 2).clamp(-1, H)
    w_lo, w_hi = (torch.nan_to_num(t, nan=0.0).long() for t in (w_lo, w_hi))
    h_lo, h_hi = (torch.nan_to_num(t, nan=0.0).long() for t in (h_lo, h_hi))
    w_lo, h_lo = w_lo.clamp(min=0), h_lo.clamp(min=0)
    w_hi, h_hi = w_hi.clamp(max=W - 1), h_hi.clamp(max=H - 1)
    nw = (w_hi - w_lo + 1).clamp(min=0)
    nh = (h_hi - h_lo + 1).clamp(min=0)
    nw = torch.where(ok, nw, torch.zeros_like(nw))
    return w_lo, h_lo, nw, nh


def _iter_pairs(w_lo, h_lo, nw, nh, active):
    """Yield (item, h, w) for every pixel of every active item's range, items in index order."""
    counts = torch.where(active, nw * nh, torch.zeros_like(nw))
    cum = torch.cumsum(counts, 0)
    M = counts.numel()
    start = 0
    while start < M:
        base = int(cum[start - 1]) if start > 0 else 0
        end = int(torch.searchsorted(cum, torch.tensor(base + _PAIRS_PER_CHUNK), right=True))
        end = max(end, start + 1)
        c = counts[start:end]
        total = int(c.sum())
        if total:
            item = torch.repeat_interleave(torch.arange(start, end), c)
            local = torch.arange(total) - (torch.cumsum(c, 0) - c)[item - start]
            yield item, h_lo[item] + local // nw[item], w_lo[item] + local % nw[item]
        start = end


def _barycentric(v, x0, y0, eps):
    """kaolin's weights of pixel (x0, y0) in triangles v (K, 3, 2): (K, 3)."""
    ax, ay = v[:, 0, 0] - x0, v[:, 0, 1] - y0
    bx, by = v[:, 1, 0] - x0, v[:, 1, 1] - y0
    cx, cy = v[:, 2, 0] - x0, v[:, 2, 1] - y0
    w0 = bx * cy - by * cx
    w1 = cx * ay - cy * ax
    w2 = ax * by - ay * bx
    norm = w0 + w1 + w2
    norm = norm + torch.where(norm < 0, -eps, eps)
    return torch.stack([w0, w1, w2], dim=1) / norm.unsqueeze(1)


def _in_box(bbox, x0, y0):
    return (x0 >= bbox[:, 0]) & (x0 < bbox[:, 2]) & (y0 >= bbox[:, 1]) & (y0 < bbox[:, 3])


def rasterize(height, width, face_vertices_z, face_vertices_image, face_features,
              valid_faces=None, multiplier=1000, eps=1e-8, backend='cuda'):
    """kaolin.render.mesh.rasterize: (features (B,H,W,D) or list of them, face_idx (B,H,W))."""
    H, W = int(height), int(width)
    is_list = isinstance(face_features, (list, tuple))
    feats = torch.cat(list(face_features), dim=-1) if is_list else face_features
    multiplier = 1000.0 if multiplier is None else float(multiplier)
    eps = 1e-8 if eps is None else float(eps)
    B, F = face_vertices_z.shape[:2]
    dev, dt = face_vertices_image.device, face_vertices_image.dtype
    fvi = face_vertices_image * multiplier                                  # (B,F,3,2)
    n_pix = B * H * W
    if valid_faces is None:
        valid_faces = torch.ones(B, F, dtype=torch.bool, device=dev)

    with torch.no_grad():
        flat_v = fvi.detach().reshape(B * F, 3, 2)
        flat_z = face_vertices_z.detach().reshape(B * F, 3)
        bbox = torch.cat([flat_v.min(1).values, flat_v.max(1).values], dim=1)
        w_lo, h_lo, nw, nh = _pixel_ranges(bbox, H, W, multiplier)
        best_z = torch.full((n_pix,), -float("inf"), dtype=dt, device=dev)
        best_f = torch.full((n_pix,), -1, dtype=torch.long, device=dev)
        for item, h, w in _iter_pairs(w_lo, h_lo, nw, nh, valid_faces.reshape(-1)):
            x0, y0 = _pixel_xy(h, w, H, W, multiplier, dt)
            bary = _barycentric(flat_v[item], x0, y0, eps)
            z0 = (bary * flat_z[item]).sum(1)
            keep = _in_box(bbox[item], x0, y0) & (bary >= 0).all(1) & ~torch.isnan(z0)
            item, z0 = item[keep], z0[keep]
            pix = (item // F) * (H * W) + h[keep] * W + w[keep]
            face = item % F
            cz = torch.full((n_pix,), -float("inf"), dtype=dt, device=dev)
            cz = cz.scatter_reduce(0, pix, z0, reduce="amax")
            top = z0 == cz[pix]
            cf = torch.full((n_pix,), F, dtype=torch.long, device=dev)
            cf = cf.scatter_reduce(0, pix[top], face[top], reduce="amin")
            better = cz > best_z                      # earlier (lower-index) faces win ties
            best_z = torch.where(better, cz, best_z)
            best_f = torch.where(better, cf, best_f)

    pix = torch.nonzero(best_f >= 0).flatten()
    b = pix // (H * W)
    rem = pix % (H * W)
    f = best_f[pix]
    x0, y0 = _pixel_xy(rem // W, rem % W, H, W, multiplier, dt)
    bary = _barycentric(fvi[b, f], x0, y0, eps)                             # differentiable
    vals = (bary.unsqueeze(-1) * feats[b, f]).sum(1)
    out = torch.zeros(n_pix, feats.shape[-1], dtype=feats.dtype, device=dev)
    out = out.index_put((pix,), vals.to(feats.dtype)).reshape(B, H, W, -1)
    if not out.requires_grad and torch.is_grad_enabled() and (feats.requires_grad
                                                              or fvi.requires_grad):
        out = out + 0.0 * (feats.sum() + fvi.sum())   # nothing drawn: stay in the graph
    face_idx = best_f.reshape(B, H, W)
    if is_list:
        sizes = [t.shape[-1] for t in face_features]
        out = list(torch.split(out, sizes, dim=-1))
    return out, face_idx


def dibr_soft_mask(face_vertices_image, selected_face_idx, sigmainv=7000, boxlen=0.02, knum=30,
                   multiplier=1000.):
    """kaolin.render.mesh.dibr_soft_mask: (B, H, W) soft silhouette (see module docstring)."""
    B, F = face_vertices_image.shape[:2]
    H, W = selected_face_idx.shape[1:]
    dev, dt = face_vertices_image.device, face_vertices_image.dtype
    multiplier = float(multiplier)
    n_pix = B * H * W
    fvi = (face_vertices_image * multiplier).reshape(B * F, 3, 2)
    covered = selected_face_idx.reshape(-1) >= 0
    with torch.no_grad():
        v = fvi.detach()
        bbox = torch.cat([v.min(1).values - boxlen * multiplier,
                          v.max(1).values + boxlen * multiplier], dim=1)
        w_lo, h_lo, nw, nh = _pixel_ranges(bbox, H, W, multiplier)
        seen = torch.zeros(n_pix, dtype=torch.long, device=dev)
        kept_pix, kept_item = [], []
        active = torch.ones(B * F, dtype=torch.bool, device=dev)
        for item, h, w in _iter_pairs(w_lo, h_lo, nw, nh, active):
            x0, y0 = _pixel_xy(h, w, H, W, multiplier, dt)
            pix = (item // F) * (H * W) + h * W + w
            keep = _in_box(bbox[item], x0, y0) & ~covered[pix]
            pix, item = pix[keep], item[keep]
            order = torch.argsort(pix, stable=True)          # stable: faces stay in index order
            pix, item = pix[order], item[order]
            cnt = torch.bincount(pix, minlength=n_pix)
            rank = torch.arange(pix.numel(), device=dev) - (torch.cumsum(cnt, 0) - cnt)[pix]
            keep = rank + seen[pix] < knum
            kept_pix.append(pix[keep])
            kept_item.append(item[keep])
            seen += cnt
        pix = torch.cat(kept_pix) if kept_pix else torch.zeros(0, dtype=torch.long, device=dev)
        item = torch.cat(kept_item) if kept_item else torch.zeros(0, dtype=torch.long, device=dev)

    rem = pix % (H * W)
    x0, y0 = _pixel_xy(rem // W, rem % W, H, W, multiplier, dt)
    v = fvi[item]                                                           # (K,3,2)
    dists = []
    for i in range(3):                  # perpendicular distances to the 3 edges (as the kernel)
        x1, y1 = v[:, i, 0], v[:, i, 1]
        x2, y2 = v[:, (i + 1) % 3, 0], v[:, (i + 1) % 3, 1]
        A, Bc = y2 - y1, x1 - x2
        Cc = x2 * y1 - x1 * y2
        up = A * x0 + Bc * y0 + Cc
        down = A * A + Bc * Bc
        x3 = (Bc * Bc * x0 - A * Bc * y0 - A * Cc) / (down + _EPS)
        y3 = (A * A * y0 - A * Bc * x0 - Bc * Cc) / (down + _EPS)
        outside = ((x3 - x1) * (x3 - x2) + (y3 - y1) * (y3 - y2)) > 0
        perp = up * up / (down + _EPS)
        dists.append(torch.where(outside, torch.full_like(perp, 4 * multiplier * multiplier),
                                 perp))
    for i in range(3):                  # distances to the 3 vertices
        dists.append((x0 - v[:, i, 0]) ** 2 + (y0 - v[:, i, 1]) ** 2)
    dissq = torch.stack(dists, 1).min(1).values
    prob = torch.exp(-sigmainv * dissq / multiplier / multiplier)
    log_keep = torch.log(torch.clamp(1.0 - prob, min=1e-12))
    log_all = torch.zeros(n_pix, dtype=dt, device=dev).index_add(0, pix, log_keep)
    soft = covered.to(dt) + (1.0 - torch.exp(log_all))
    if not soft.requires_grad and torch.is_grad_enabled() and fvi.requires_grad:
        soft = soft + 0.0 * fvi.sum()                  # no face nearby: stay in the graph
    return soft.reshape(B, H, W)


def dibr_rasterization(height, width, face_vertices_z, face_vertices_image, face_features,
                       face_normals_z, sigmainv=7000, boxlen=0.02, knum=30, multiplier=1000,
                       eps=0.0001, rast_backend='cuda'):
    """kaolin.render.mesh.dibr_rasterization -> (features, soft_mask (B,H,W), face_idx (B,H,W)).

    ``features`` is a list of (B,H,W,D_i) when ``face_features`` is a list, else (B,H,W,D).
    ``rast_backend`` is accepted and ignored (always this CPU implementation).
    """
    nz = face_normals_z
    if nz.dim() == 3:
        nz = nz.squeeze(-1)
    features, face_idx = rasterize(height, width, face_vertices_z, face_vertices_image,
                                   face_features, nz >= 0.0, multiplier, eps)
    soft_mask = dibr_soft_mask(face_vertices_image, face_idx, sigmainv, boxlen, knum,
                               1000.0 if multiplier is None else multiplier)
    return features, soft_mask, face_idx
