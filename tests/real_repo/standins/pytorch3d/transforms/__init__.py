"""CPU TEST STAND-IN for ``pytorch3d.transforms`` (test harness only)."""

from .rotation_conversions import (  # noqa: F401
    matrix_to_quaternion, quaternion_to_matrix, standardize_quaternion)
from .so3 import (  # noqa: F401
    hat, hat_inv, so3_exp_map, so3_exponential_map, so3_log_map, so3_rotation_angle)
