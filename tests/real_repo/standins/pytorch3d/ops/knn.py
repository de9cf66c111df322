"""CPU TEST STAND-IN for ``pytorch3d.ops.knn`` (test harness only).

Exact brute-force K nearest neighbours, chunked over the query points. The neighbour search runs
without gradients; the returned distances are recomputed from the gathered points, so they are
differentiable w.r.t. both ``p1`` and ``p2`` like pytorch3d's. ``dists`` are SQUARED Euclidean
distances for ``norm=2`` (L1 for ``norm=1``); entries past ``lengths1`` / ``lengths2`` are 0 in
both ``dists`` and ``idx``, as pytorch3d pads them.
"""

from collections import namedtuple

import torch

_KNN = namedtuple("KNN", "dists idx knn")
_CHUNK = 4096


def knn_points(p1, p2, lengths1=None, lengths2=None, norm=2, K=1, version=-1,
               return_nn=False, return_sorted=True):
    if norm not in (1, 2):
        raise ValueError("Support for 1 or 2 norm.")
    N, P1, D = p1.shape
    P2 = p2.shape[1]
    dev = p1.device
    if lengths1 is None:
        lengths1 = torch.full((N,), P1, dtype=torch.int64, device=dev)
    if lengths2 is None:
        lengths2 = torch.full((N,), P2, dtype=torch.int64, device=dev)
    k_eff = min(K, P2)
    with torch.no_grad():
        idx_parts = []
        col_ok = torch.arange(P2, device=dev)[None, :] < lengths2[:, None]          # (N,P2)
        for s in range(0, P1, _CHUNK):
            q = p1[:, s:s + _CHUNK].detach()
            if norm == 2:
                d = torch.cdist(q, p2.detach(), compute_mode="donot_use_mm_for_euclid_dist")
            else:
                d = torch.cdist(q, p2.detach(), p=1)
            d = d.masked_fill(~col_ok[:, None, :], float("inf"))
            idx_parts.append(torch.topk(d, k_eff, dim=2, largest=False, sorted=True).indices
                             if k_eff > 0 else torch.zeros(N, q.shape[1], 0, dtype=torch.long,
                                                           device=dev))
        idx = torch.cat(idx_parts, 1) if idx_parts else torch.zeros(N, 0, k_eff, dtype=torch.long)
        if k_eff < K:
            idx = torch.cat([idx, torch.zeros(N, P1, K - k_eff, dtype=torch.long, device=dev)], 2)
        valid = ((torch.arange(K, device=dev)[None, None, :] < lengths2[:, None, None]) &
                 (torch.arange(P1, device=dev)[None, :, None] < lengths1[:, None, None]))
        idx = torch.where(valid, idx, torch.zeros_like(idx))
    nn = knn_gather(p2, idx)                                                         # (N,P1,K,D)
    diff = p1[:, :, None, :] - nn
    dists = (diff * diff).sum(-1) if norm == 2 else diff.abs().sum(-1)
    dists = torch.where(valid, dists, torch.zeros_like(dists))
    knn = knn_gather(p2, idx, lengths2) if return_nn else None
    return _KNN(dists=dists, idx=idx, knn=knn)


def knn_gather(x, idx, lengths=None):
    """x (N, M, U), idx (N, L, K) -> (N, L, K, U); slots k >= lengths[n] are set to 0."""
    N, M, U = x.shape
    _N, L, K = idx.shape
    out = torch.gather(x, 1, idx.reshape(N, L * K, 1).expand(N, L * K, U)).reshape(N, L, K, U)
    if lengths is not None and int(lengths.min()) < K:
        keep = torch.arange(K, device=x.device)[None, :] < lengths[:, None]          # (N,K)
        out = out * keep[:, None, :, None].to(out.dtype)
    return out
