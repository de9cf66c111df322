"""``python -m gg_optuna_helpers setup-repo``: :func:`setup_repo` from a terminal."""

from __future__ import annotations

import argparse

from .clone import VARIANTS


def add_parser(sub) -> None:
    """Register ``setup-repo`` on the CLI's subparsers."""
    p = sub.add_parser("setup-repo", help="clone, build, cache and check a GazeGaussian "
                                          "checkout (a Colab GPU runtime, or any CUDA machine)")
    p.add_argument("--variant", default="fork",
                   help=f"{' or '.join(VARIANTS)} or a git URL (default: %(default)s)")
    p.add_argument("--commit", help="the commit to check out (default: the variant's pinned one)")
    p.add_argument("--dest", help="where to clone (default: /content/GazeGaussian on Colab, "
                                  "./GazeGaussian elsewhere)")
    p.add_argument("--data", help="training data folder to copy to local disk (e.g. on Drive)")
    p.add_argument("--val-data", help="held-out data folder (default: <data>_test if it exists)")
    p.add_argument("--subjects", help="copy only these training subjects: a number N (the first "
                                      "N of the split list) or keys/numbers, e.g. 0,3,4")
    p.add_argument("--weights", help="a weights file or .zip to place in configs/config_models")
    p.add_argument("--cache", help="a lasting folder for wheels and config_models.zip "
                                   "(default: <results folder>/setup_cache)")
    p.add_argument("--local-data", help="where data folders are copied (default: data/ next to "
                                        "--dest)")
    p.add_argument("--build-from-source", action="store_true",
                   help="build kaolin/pytorch3d from source, at a pinned tag, when no wheel "
                        "matches (slow, once)")
    p.add_argument("--no-pypi", action="store_true",
                   help="do not install from PyPI what the checkout imports and does not find, "
                        "nor what the wheels require")
    p.add_argument("--time-iters", type=int, default=3,
                   help="check-repo's timed iterations per stage, 0 for none "
                        "(default: %(default)s)")


def main(args: argparse.Namespace) -> int:
    from . import setup_repo

    report = setup_repo(args.variant, args.commit, dest=args.dest, data=args.data,
                        val_data=args.val_data, subjects=args.subjects, weights=args.weights,
                        cache=args.cache,
                        local_data=args.local_data, build_from_source=args.build_from_source,
                        pypi=not args.no_pypi, time_iters=args.time_iters)
    print(" ".join(f"--backend-option {k}={v}" for k, v in report.backend_options().items()))
    return 0 if report.ready else 1
