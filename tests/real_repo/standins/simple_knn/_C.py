"""CPU TEST STAND-IN for ``simple_knn._C`` (the CUDA extension of the Gaussian-splatting repos).

Used only by the test harness, on ``sys.path`` via ``PYTHONPATH=tests/real_repo/standins``.
``distCUDA2(points)`` returns, for each of the N points, the mean SQUARED distance to its 3
nearest other points, like the real one. The real kernel searches approximately (Morton-ordered
boxes); this one is exact (chunked ``torch.cdist`` search, distances recomputed exactly), O(N^2):
~3 s for 20k points on one core. With fewer than 4 points the mean runs over the points there
are; one point alone gets 0. Not differentiable (neither is the real one).
"""

import torch

_CHUNK = 2048


@torch.no_grad()
def distCUDA2(points):
    pts = points.detach().float().reshape(-1, 3)
    n = pts.shape[0]
    k = min(3, n - 1)
    if k <= 0:
        return torch.zeros(n, dtype=torch.float32, device=pts.device)
    out = []
    for start in range(0, n, _CHUNK):
        q = pts[start:start + _CHUNK]
        d2 = torch.cdist(q, pts)                       # matmul form: fast, for the search only
        rows = torch.arange(q.shape[0], device=pts.device)
        d2[rows, rows + start] = float("inf")          # exclude the point itself
        idx = torch.topk(d2, k, dim=1, largest=False).indices
        exact = ((q[:, None, :] - pts[idx]) ** 2).sum(-1)    # exact squared distances
        out.append(exact.mean(1))
    return torch.cat(out)
