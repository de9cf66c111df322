"""CPU TEST STAND-IN for ``kaolin.render`` (test harness only)."""

from . import camera, mesh  # noqa: F401
