"""CPU TEST STAND-IN for ``kaolin.metrics`` (test harness only)."""

from . import render  # noqa: F401
