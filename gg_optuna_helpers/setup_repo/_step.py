"""Each setup step says what it does as it goes, and how long it took."""

from __future__ import annotations

import subprocess
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

from ..errors import ConfigError


@contextmanager
def step(title: str) -> Iterator[Callable[[str], None]]:
    """Print ``title``, give the body a ``say(line)`` that prints at once, then the time."""
    print(f"setup-repo: {title}", flush=True)
    start = time.perf_counter()
    yield lambda line: print(f"    {line}", flush=True)
    print(f"    ({time.perf_counter() - start:.1f} s)", flush=True)


def run(command: Sequence[str], what: str, fix: str, **kwargs) -> str:
    """Run ``command``; its stdout, or a :class:`ConfigError` naming ``what`` failed, its last
    error line and ``fix``."""
    done = subprocess.run(list(command), capture_output=True, text=True, check=False, **kwargs)
    if done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise ConfigError(f"{what} failed ({tail.strip()}): {fix}")
    return done.stdout
