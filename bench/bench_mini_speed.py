"""Seconds per epoch of the mini backend at its default settings, on one CPU thread.

The target is at most 1 s per epoch (training + validation, as the worker runs it) for each
stage, and at most 2 s to generate the synthetic data. Prints each measurement and its ratio to
the target::

    python bench/bench_mini_speed.py            # 5 measured epochs per stage
    python bench/bench_mini_speed.py --quick    # 1 measured epoch per stage
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gg_optuna_helpers.backends import STAGES, TrainerContext, get_backend  # noqa: E402
from gg_optuna_helpers.backends.mini import data  # noqa: E402

EPOCH_TARGET_S = 1.0
DATA_TARGET_S = 2.0


def time_data() -> float:
    """Seconds to generate both splits from scratch."""
    data.load_split.cache_clear()
    start = time.perf_counter()
    data.load_split("train"), data.load_split("val")
    return time.perf_counter() - start


def time_stage(stage: str, epochs: int, cache_dir: Path, device: str) -> dict[str, float]:
    """Setup time, then median training and validation seconds over ``epochs`` epochs
    (after one warm-up epoch)."""
    backend = get_backend("mini")
    ctx = TrainerContext(stage=stage, params=backend.defaults(stage, {}), max_epochs=epochs + 1,
                         seed=0, device=device, trial_dir=cache_dir, cache_dir=cache_dir)
    start = time.perf_counter()
    trainer = backend.make_trainer(ctx)
    setup = time.perf_counter() - start
    trainer.train_epoch(1)
    trainer.validate()
    train, validate = [], []
    for epoch in range(2, epochs + 2):
        start = time.perf_counter()
        trainer.train_epoch(epoch)
        middle = time.perf_counter()
        trainer.validate()
        train.append(middle - start)
        validate.append(time.perf_counter() - middle)
    return {"setup": setup, "train": statistics.median(train),
            "validate": statistics.median(validate)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one measured epoch per stage")
    parser.add_argument("--device", default="cpu", help="cpu (the target) or cuda")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    epochs = 1 if args.quick else 5

    seconds = time_data()
    print(f"mini backend, default settings, {args.threads} CPU thread(s), device {args.device}")
    print(f"data generation: {seconds:.3f} s ({seconds / DATA_TARGET_S:.2f}x the "
          f"{DATA_TARGET_S:g} s target)")
    print(f"{'stage':<14}{'train s':>9}{'valid s':>9}{'epoch s':>9}  vs {EPOCH_TARGET_S:g} s target"
          f"  (one-off setup s)")
    with tempfile.TemporaryDirectory(prefix="bench_mini_") as cache:
        for stage in STAGES:
            t = time_stage(stage, epochs, Path(cache), args.device)
            epoch = t["train"] + t["validate"]
            print(f"{stage:<14}{t['train']:>9.3f}{t['validate']:>9.3f}{epoch:>9.3f}"
                  f"  {epoch / EPOCH_TARGET_S:>6.2f}x{'':>13}({t['setup']:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
