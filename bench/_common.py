"""What every benchmark shares: its command line, the machine it ran on, ratios, results files.

Each benchmark prints ratios measured side by side in one run and saves
``bench/results/<name>.json`` (machine, date, command, settings, figures) and
``bench/results/<name>.md`` (its section of ``docs/benchmarks.md``, assembled by
``bench/run_all.py``). Results are git-ignored; the docs table is committed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, Iterable

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def parser(doc: str) -> argparse.ArgumentParser:
    """The options every benchmark takes: ``--quick`` (CI smoke size), ``--out``, threads, nice."""
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(doc.strip().splitlines()[1:]))
    p.add_argument("--quick", action="store_true", help="the small CI smoke-test size")
    p.add_argument("--out", type=Path, default=RESULTS,
                   help="folder for the raw results (default: bench/results, git-ignored)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    p.add_argument("--nice", type=int, default=10,
                   help="lower this process's CPU priority by this much (default: 10)")
    return p


def start(args: argparse.Namespace) -> None:
    """Apply the shared options: niceness, one torch thread (also for worker processes)."""
    if args.nice:
        os.nice(args.nice)
    os.environ["GG_OPTUNA_THREADS"] = str(args.threads)
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))  # for child processes
    import optuna
    import torch

    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    args.out.mkdir(parents=True, exist_ok=True)


def machine() -> dict[str, Any]:
    """The machine and software a result was measured on."""
    import optuna
    import torch

    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "optuna": optuna.__version__,
        "commit": _git("rev-parse", "--short", "HEAD"),
    }


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def command(argv: list[str] | None = None) -> str:
    """The command line that produced a result, relative to the repository root."""
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(ROOT)
    except ValueError:
        pass
    return shlex.join(["python", str(script), *(sys.argv[1:] if argv is None else argv)])


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def save(args: argparse.Namespace, name: str, *, settings: dict[str, Any],
         figures: dict[str, Any], targets: list[dict[str, Any]], markdown: str) -> Path:
    """Write ``<out>/<name>.json`` and ``<out>/<name>.md``; return the JSON path.

    ``targets``: rows ``{"target": text, "figure": text, "met": bool}``. ``markdown``: the body
    of this benchmark's section (tables); the header with machine, date and command is added here.
    """
    record = {"name": name, "date": now(), "command": command(), "quick": args.quick,
              "machine": machine(), "settings": settings, "figures": figures,
              "targets": targets}
    stem = name + ("_quick" if args.quick else "")
    path = args.out / f"{stem}.json"
    path.write_text(json.dumps(record, indent=2, default=_jsonable) + "\n")
    (args.out / f"{stem}.md").write_text(section(record, markdown))
    print(f"results: {path}")
    return path


def section(record: dict[str, Any], body: str) -> str:
    """A benchmark's markdown section: command, machine, date, settings, targets, tables."""
    m = record["machine"]
    lines = [
        f"`{record['command']}`  ",
        f"{record['date']}; {m['cpu']}, {m['cores']} cores (load average {m['load_avg_1min']} "
        f"when it finished); Python {m['python']}, torch {m['torch']}, Optuna {m['optuna']}; "
        f"commit {m['commit']}",
        "",
        "Settings: " + "; ".join(f"{k} {_short(v)}" for k, v in record["settings"].items()),
        "",
    ]
    if record["targets"]:
        lines += ["| target | measured | met |", "| --- | --- | --- |"]
        lines += [f"| {t['target']} | {t['figure']} | {'yes' if t['met'] else '**no**'} |"
                  for t in record["targets"]]
        lines.append("")
    return "\n".join(lines) + "\n" + body.rstrip() + "\n"


def _short(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def table(header: list[str], rows: Iterable[list[Any]]) -> str:
    """A markdown table (also readable as plain text on the terminal)."""
    rows = [[_cell(c) for c in row] for row in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def mean(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.fmean(values) if values else math.nan


def pct(fraction: float, signed: bool = False) -> str:
    """0.613 -> '61.3%' (signed: '+61.3%')."""
    if not math.isfinite(fraction):
        return "n/a"
    return f"{fraction:+.1%}" if signed else f"{fraction:.1%}"


def banner(title: str, settings: dict[str, Any]) -> None:
    """Print what is measured, on which machine, before the figures."""
    m = machine()
    print(f"== {title}")
    print(f"   {m['cpu']}, {m['cores']} cores, load {m['load_avg_1min']}; {now()}")
    print("   " + "; ".join(f"{k} {_short(v)}" for k, v in settings.items()))
    sys.stdout.flush()
