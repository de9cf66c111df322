"""Shared fixtures: real file systems and real databases, no mocks."""

import os
import subprocess
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _local_live_dir(tmp_path, monkeypatch):
    """Each test gets its own 'local disk' for live databases (the Colab VM's /root)."""
    monkeypatch.setenv("GG_OPTUNA_LOCAL_DIR", str(tmp_path / "local"))
    monkeypatch.setenv("GG_OPTUNA_THREADS", "1")


@pytest.fixture
def mount_tmpfs(tmp_path):
    """mount_tmpfs(size="64k", read_only=False) -> a real small file system (needs root)."""
    mounted = []

    def mount(size: str = "64k", read_only: bool = False) -> Path:
        point = tmp_path / f"fs_{uuid.uuid4().hex[:6]}"
        point.mkdir()
        opts = f"size={size}" + (",ro" if read_only else "")
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(point)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()}); CI runs as root")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


def cli(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None):
    """Run `python -m gg_optuna_helpers ARGS` as a real child process."""
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run(["python", "-m", "gg_optuna_helpers", *args], cwd=cwd or ROOT,
                          capture_output=True, text=True, timeout=timeout, env=full_env)
