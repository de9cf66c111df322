"""A ``builder=`` for ``setup_repo`` that writes the harness's CPU stand-ins as wheels directly.

TEST STAND-IN for the CUDA build (no machine here compiles the GazeGaussian extensions): a
pure-Python wheel is a zip of the package and its ``.dist-info`` (METADATA, WHEEL, RECORD), so
it is written in milliseconds, where ``pip wheel`` of each stand-in took minutes on a busy
2-core machine. setup_repo still caches, installs (real ``pip install``) and imports it.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

STANDINS = Path(__file__).resolve().parent / "standins"


def write_wheel(dist: str, files: dict[str, bytes], out: Path, version: str = "0.0.0") -> Path:
    """``out/<dist>-<version>-py3-none-any.whl`` holding ``files`` (archive path -> bytes)."""
    info = f"{dist}-{version}.dist-info"
    files = {**files, f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {dist}\n"
                                          f"Version: {version}\n".encode(),
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
                              b"Tag: py3-none-any\n"}
    record = [f"{name},sha256={_digest(data)},{len(data)}" for name, data in files.items()]
    wheel = out / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
        z.writestr(f"{info}/RECORD", "\n".join([*record, f"{info}/RECORD,,"]) + "\n")
    return wheel


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


class StandinWheels:
    """``builder(package, root, out)``: the harness stand-in of ``package.dist`` (an empty
    package for its module where there is none) as a wheel; ``built`` lists what it wrote."""

    def __init__(self) -> None:
        self.built: list[str] = []

    def __call__(self, package, root: Path, out: Path) -> Path:
        self.built.append(package.dist)
        source = STANDINS / package.dist
        if source.is_dir():
            files = {str(p.relative_to(STANDINS)): p.read_bytes()
                     for p in sorted(source.rglob("*.py"))}
        else:
            parts = package.module.split(".")
            files = {f"{'/'.join(parts[:i + 1])}/__init__.py": b"STANDIN = True\n"
                     for i in range(len(parts))}
        return write_wheel(package.dist, files, out)
