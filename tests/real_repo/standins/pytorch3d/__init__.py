"""CPU TEST STAND-IN for pytorch3d: only what upstream GazeGaussian imports (test harness only).

Put on ``sys.path`` via ``PYTHONPATH=tests/real_repo/standins`` so the real repos import on a
CPU-only machine. Pure torch, differentiable, pytorch3d's signatures and conventions:
``ops.knn.knn_points`` / ``knn_gather``, ``transforms.so3_exp_map`` / ``so3_exponential_map`` /
``so3_log_map``, ``transforms.rotation_conversions.quaternion_to_matrix`` /
``matrix_to_quaternion`` (real-first quaternions). Everything else of pytorch3d is absent.
"""

__version__ = "0.0.0+cpu.test.standin"
