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


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server on 127.0.0.1 for this test session ($GG_TEST_POSTGRES_URL wins)."""
    if os.environ.get("GG_TEST_POSTGRES_URL"):
        yield os.environ["GG_TEST_POSTGRES_URL"]
        return
    import glob
    import shutil
    import tempfile

    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not bins:
        pytest.skip("PostgreSQL is not installed: `make setup` installs it")
    bindir = bins[-1]
    data = Path(tempfile.mkdtemp(prefix="gg_pg_"))
    data.chmod(0o755)
    shutil.chown(data, "postgres", "postgres")
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    port = _free_port()
    subprocess.run([*as_pg, f"{bindir}/initdb", "-D", str(data / "db"), "-A", "trust",
                    "-U", "postgres"], check=True, capture_output=True)
    subprocess.run([*as_pg, f"{bindir}/pg_ctl", "-D", str(data / "db"), "-l", str(data / "log"),
                    "-w", "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1 "
                    "-c max_connections=200", "start"], check=True, capture_output=True)
    try:
        subprocess.run([*as_pg, f"{bindir}/psql", "-h", "127.0.0.1", "-p", str(port), "-U",
                        "postgres", "-c", "create database gg"], check=True, capture_output=True)
        yield f"postgresql://postgres@127.0.0.1:{port}/gg"
    finally:
        subprocess.run([*as_pg, f"{bindir}/pg_ctl", "-D", str(data / "db"), "-m", "immediate",
                        "stop"], capture_output=True)
        shutil.rmtree(data, ignore_errors=True)
