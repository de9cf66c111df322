"""CPU TEST STAND-IN for ``pytorch3d.ops`` (test harness only)."""

from .knn import knn_gather, knn_points  # noqa: F401
