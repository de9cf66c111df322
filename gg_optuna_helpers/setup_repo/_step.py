"""Each setup step says what it does as it goes, and how long it took."""

from __future__ import annotations

import re
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


_PIP_NOISE = re.compile(r"subprocess-exited-with-error|metadata-generation-failed|originates from "
                        r"a subprocess|Encountered error while|Failed (building|to build)|Could "
                        r"not build wheels|did not run successfully|^raise ", re.IGNORECASE)


def error_lines(output: str, limit: int = 4) -> list[str]:
    """The lines of ``output`` that name an error (a compiler's, an exception), pip's own
    framing left out; the first ``limit`` distinct ones, or the last line when none does."""
    found: list[str] = []
    for line in (raw.strip(" |│╰─>×") for raw in output.splitlines()):
        if "error" in line.lower() and not _PIP_NOISE.search(line) and line not in found:
            found.append(line[:300])
    if not found:
        lines = output.strip().splitlines()
        return [lines[-1].strip() if lines else "no output"]
    return found[:limit] + ([f"... {len(found) - limit} more"] if len(found) > limit else [])


def run(command: Sequence[str], what: str, fix: str, **kwargs) -> str:
    """Run ``command``; its stdout, or a :class:`ConfigError` naming ``what`` failed, the error
    lines of its output (:func:`error_lines`) and ``fix``."""
    done = subprocess.run(list(command), capture_output=True, text=True, check=False, **kwargs)
    if done.returncode != 0:
        lines = " | ".join(error_lines(f"{done.stdout}\n{done.stderr}"))
        raise ConfigError(f"{what} failed ({lines}): {fix}")
    return done.stdout
