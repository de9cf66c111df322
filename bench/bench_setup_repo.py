"""setup-repo after a disconnect: a cached setup (wheels on Drive) against a fresh one.

Each round runs ``setup_repo`` twice on a new "VM" (a new local folder for the clone, the data
and the installed packages), both from the real GazeGaussian fork (the git bundle in
``../shared/third_party``) and a fake Drive folder: first with an empty wheel cache (every
package built), then with the cache the first run filled (nothing built). Here the build is a
real ``pip wheel`` of a small pure-python stand-in per package (about a second each); on Colab
it compiles CUDA (minutes), so the ratio printed here is a lower bound of what the cache saves::

    python bench/bench_setup_repo.py            # 3 rounds
    python bench/bench_setup_repo.py --quick    # 1 round
"""

from __future__ import annotations

import contextlib
import io
import shutil
import statistics
import subprocess
import sys
import time

from _common import ROOT, banner, parser, save, start, table

sys.path.insert(0, str(ROOT / "tests"))
from setup_standins import BUNDLES, CPU, StandinBuilder, drive_folder  # noqa: E402

from gg_optuna_helpers.setup_repo import VARIANTS, setup_repo  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__).parse_args(argv)
    if not BUNDLES["fork"].is_file():
        print(f"skipped: the GazeGaussian bundles are not in {BUNDLES['fork'].parent}")
        return 0
    start(args)
    rounds = 1 if args.quick else 3
    work = args.out / "setup_repo_work"
    shutil.rmtree(work, ignore_errors=True)
    ref = work / "ref"
    subprocess.run(["git", "clone", "-q", str(BUNDLES["fork"]), str(ref)], check=True)
    drive = drive_folder(work, ref, subjects=None)
    settings = {"repo": "kram254/GazeGaussian 2308209 (git bundle)", "rounds": rounds,
                "build": "pip wheel of a pure-python stand-in per package (CUDA on Colab)",
                "data": "80 + 15 small files"}
    banner("setup-repo: cached against fresh", settings)
    times, builds = {"fresh": [], "cached": []}, {"fresh": 0, "cached": 0}
    for r in range(rounds):
        cache = work / f"cache{r}"
        for kind in ("fresh", "cached"):
            vm = work / f"vm{r}_{kind}"
            kwargs = dict(dest=vm / "GazeGaussian", data=drive / "ETH-XGaze", cache=cache,
                          pypi=False, time_iters=0, builder=StandinBuilder(work / "standins"),
                          toolchain=CPU, site=vm / "site")
            shutil.copytree(drive / "gg_results/setup_cache", cache, dirs_exist_ok=True)
            begin = time.perf_counter()
            quiet = io.StringIO()
            with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
                report = setup_repo(str(BUNDLES["fork"]), VARIANTS["fork"][1], **kwargs)
            times[kind].append(time.perf_counter() - begin)
            builds[kind] += len(kwargs["builder"].built)
            assert report.ready, report.summary
    fresh, cached = statistics.median(times["fresh"]), statistics.median(times["cached"])
    rows = [["fresh (empty cache)", fresh], ["cached (after a disconnect)", cached],
            ["ratio fresh / cached", fresh / cached]]
    body = table(["setup", "median s"], rows)
    print(body)
    print(f"ratio fresh/cached: {fresh / cached:.2f}x")
    target = {"target": "a cached setup builds nothing", "figure": f"{builds['cached']} builds "
              f"(fresh: {builds['fresh']})", "met": builds["cached"] == 0}
    save(args, "setup_repo", settings=settings, figures={
        "fresh_s": times["fresh"], "cached_s": times["cached"], "ratio": fresh / cached},
        targets=[target], markdown=body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
