"""``python -m gg_optuna_helpers.backends.gazegaussian.probe SPEC``: time a few real iterations.

Run by :func:`.check.check_repo` in a child process. Builds each stage's trainer with the
checkout's defaults, exactly as a trial does, trains 1 warm-up and N timed iterations,
validates, and prints one ``GG_PROBE_RESULT {json}`` line. The MeshHead state it trained feeds
the GazeGaussian stage, so the stage coupling is exercised too.

The fork's GazeGaussian trainer adds intermediate-gaze passes to every
``intermediate_gaze_freq``-th iteration of a loader (``batch_index % freq == 0``: 1 in 5 by
default), starting with the first; the timed iterations are whole such cycles, so their mean
has the trials' ratio (3 timed iterations held one such pass: 1 in 3).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ..base import STAGES, TrainerContext
from . import BACKEND
from .check import PROBE_MARKER


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    options, work = dict(spec["options"]), Path(spec["workdir"])
    seconds: dict[str, dict[str, float]] = {}
    stage = STAGES[0]
    try:
        for stage in STAGES:
            params = BACKEND.defaults(stage, options)
            ctx = TrainerContext(stage=stage, params=params, max_epochs=2, seed=0,
                                 device="cuda" if torch.cuda.is_available() else "cpu",
                                 trial_dir=work / stage, cache_dir=work / "cache",
                                 options={**options, "iters_per_epoch": 1})
            ctx.trial_dir.mkdir(parents=True, exist_ok=True)
            trainer = BACKEND.make_trainer(ctx)
            trainer.train_epoch(1)  # warm-up: first-call allocation, kernel selection
            trainer.iters = timed_iters(trainer.opt, int(spec["iters"]))
            start = time.perf_counter()
            trainer.train_epoch(2)
            middle = time.perf_counter()
            trainer.validate()
            end = time.perf_counter()
            seconds[stage] = {"per_iter": (middle - start) / trainer.iters,
                              "per_val_sample": (end - middle) / max(1, len(trainer.val))}
            if stage == "meshhead":
                path = work / "meshhead.pt"
                torch.save({"format": 1, "params": params, "trainer": trainer.state_dict()}, path)
                options["meshhead_checkpoint"] = str(path)
    except Exception as e:  # noqa: BLE001 - reported to the parent as one line
        print(PROBE_MARKER + json.dumps({"seconds": seconds, "stage": stage,
                                         "error": f"{type(e).__name__}: {e}"}), flush=True)
        return 1
    print(PROBE_MARKER + json.dumps({"seconds": seconds}), flush=True)
    return 0


def timed_iters(opt: Any, iters: int) -> int:
    """``iters`` rounded up to whole cycles of the repo's intermediate-gaze iterations."""
    freq = int(getattr(opt, "intermediate_gaze_freq", 1) or 1)
    if not getattr(opt, "use_intermediate_gaze_training", False) or freq <= 1:
        return iters
    return -(-iters // freq) * freq


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
