"""A throwaway local PostgreSQL server: ``with postgres() as url: ...``.

The same recipe as the ``postgres_url`` fixture of ``tests/conftest.py``: ``initdb`` and
``pg_ctl`` from Debian's ``postgresql`` package (as the ``postgres`` user when run as root),
trust authentication on 127.0.0.1, a free port, everything in a temporary folder that is
removed on exit. ``$GG_BENCH_POSTGRES_URL`` names an existing server instead.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    """No server binaries here: install Debian's ``postgresql`` (``make setup`` does)."""


def available() -> bool:
    return bool(os.environ.get("GG_BENCH_POSTGRES_URL") or glob.glob("/usr/lib/postgresql/*/bin"))


@contextmanager
def postgres(database: str = "gg") -> Iterator[str]:
    """Start a server, create ``database``, yield its URL, stop the server."""
    if os.environ.get("GG_BENCH_POSTGRES_URL"):
        yield os.environ["GG_BENCH_POSTGRES_URL"]
        return
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not bins:
        raise PostgresUnavailable("PostgreSQL is not installed: run `make setup` "
                                  "(or apt-get install postgresql).")
    bindir = bins[-1]
    data = Path(tempfile.mkdtemp(prefix="gg_bench_pg_"))
    as_pg = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        data.chmod(0o755)
        shutil.chown(data, "postgres", "postgres")
        as_pg = ["runuser", "-u", "postgres", "--"]
    port = _free_port()

    def run(*cmd: str) -> None:
        subprocess.run([*as_pg, *cmd], check=True, capture_output=True)

    try:
        run(f"{bindir}/initdb", "-D", str(data / "db"), "-A", "trust", "-U", "postgres")
        run(f"{bindir}/pg_ctl", "-D", str(data / "db"), "-l", str(data / "log"), "-w", "-o",
            f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c max_connections=200",
            "start")
        try:
            run(f"{bindir}/psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                "-c", f"create database {database}")
            yield f"postgresql://postgres@127.0.0.1:{port}/{database}"
        finally:
            subprocess.run([*as_pg, f"{bindir}/pg_ctl", "-D", str(data / "db"), "-m",
                            "immediate", "stop"], capture_output=True)
    finally:
        shutil.rmtree(data, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
