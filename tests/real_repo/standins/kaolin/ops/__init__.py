"""CPU TEST STAND-IN for ``kaolin.ops`` (test harness only)."""

from . import mesh  # noqa: F401
