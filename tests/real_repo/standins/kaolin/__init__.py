"""CPU TEST STAND-IN for NVIDIA kaolin: only the functions the GazeGaussian repos call.

Used only by the test harness (``PYTHONPATH=tests/real_repo/standins``) so the real repos run on a
CPU-only machine. Pure torch, differentiable where kaolin is, same signatures and semantics:
``ops.mesh.index_vertices_by_faces``, ``ops.mesh.face_normals``, ``ops.mesh.subdivide_tetmesh``,
``render.camera.rotate_translate_points``, ``render.mesh.dibr_rasterization``,
``metrics.render.mask_iou``. Anything else of kaolin is absent.
"""

__version__ = "0.0.0+cpu.test.standin"

from . import metrics, ops, render  # noqa: E402,F401
