"""``python -m gg_optuna_helpers run|status|report|dashboard|check-repo|setup-repo|demo``.

Bad input exits 2 with one line on stderr; everything else is on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


from .errors import ConfigError
from .trial_log import log_to_stdout
from .presets import PRUNERS, SAMPLERS
from .spaces import parse_edit
from .setup_repo import command as setup_repo_command

DESCRIPTION = """Optuna hyperparameter search for the GazeGaussian pipeline.
Typical session: `run --stage meshhead`, then `run --stage gazegaussian` (it picks up the best
MeshHead), then `report`. Re-run the same `run` command after a disconnect: it finishes only
what is left and resumes the interrupted trial from its last epoch."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        raise ConfigError(f"{self.prog}: {message} (see --help)")


def _key_values(items: list[str], what: str) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{what} takes key=value, but got {item!r}.")
        out[key] = _guess(value)
    return out


def _guess(value: str):
    """'3' -> 3, '0.5' -> 0.5, 'true' -> True, anything else stays a string."""
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def _storage_args(p: argparse.ArgumentParser, study: bool = True) -> None:
    p.add_argument("--storage", default="gg_results",
                   help="a folder (live SQLite kept locally, snapshots here; e.g. a Drive "
                        "folder), or a sqlite:///PATH or postgresql://... URL (default: %(default)s)")
    if study:
        p.add_argument("--study-name", required=True, help="the study to read")


def _backend_option_arg(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--backend-option", action="append", default=[], metavar="KEY=VALUE", help=help)


def _backend_options(args: argparse.Namespace) -> dict:
    return _key_values(args.backend_option, "--backend-option")


def _study_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="mini", choices=["mini", "gazegaussian"],
                   help="mini: embedded CPU-fast stand-in; gazegaussian: a real checkout "
                        "(needs --backend-option repo=PATH) (default: %(default)s)")
    _storage_args(p, study=False)
    p.add_argument("--results-dir", help="trial folders and checkpoints (default: the storage "
                                         "folder, or ./gg_results for a URL)")
    p.add_argument("--n-trials", type=int, default=20,
                   help="finished trials in total, across restarts (default: %(default)s)")
    p.add_argument("--max-epochs", type=int, default=20, help="epochs per trial (default: %(default)s)")
    p.add_argument("--pruner", default="median", choices=list(PRUNERS), help="(default: %(default)s)")
    p.add_argument("--sampler", default="tpe", choices=list(SAMPLERS), help="(default: %(default)s)")
    p.add_argument("--seed", type=int, default=42, help="(default: %(default)s)")
    p.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    p.add_argument("--trial-timeout", type=float, help="fail a trial running longer (seconds)")
    p.add_argument("--epoch-timeout", type=float,
                   help="fail a trial with no finished epoch for this long (a hang), seconds")
    p.add_argument("--patience", type=int, default=5,
                   help="early stopping: epochs without improvement (0: off) (default: %(default)s)")
    p.add_argument("--min-delta", type=float, default=0.0, help="early stopping: smallest "
                                                                "improvement that counts")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    p.add_argument("--heartbeat-interval", type=int, default=10,
                   help="seconds; a trial silent for 3 intervals is re-queued (default: %(default)s)")
    _backend_option_arg(p, "e.g. repo=/content/GazeGaussian, data=/content/data")
    p.add_argument("--no-warm-worker", action="store_true",
                   help="start each trial's process only when the trial starts (default: the "
                        "next one is started and warmed while the current one trains)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m gg_optuna_helpers", description=DESCRIPTION,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run (or resume) one stage's study")
    run.add_argument("--stage", required=True, choices=["meshhead", "gazegaussian"])
    run.add_argument("--study-name", help="default: <backend>_<stage>")
    run.add_argument("--meshhead-study", help="gazegaussian stage: the MeshHead study to take "
                                              "the best checkpoint from (default: <backend>_meshhead)")
    run.add_argument("--change-meshhead", action="store_true",
                     help="gazegaussian stage: accept a MeshHead other than the one this study "
                          "was trained on so far")
    run.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                     help="edit the search space: lr=1e-5:1e-3 (range), batch_size=1 (fixed), "
                          "dit_depth=4,6 (choices)")
    _study_args(run)

    status = sub.add_parser("status", help="counts, failures, best and baseline of a study")
    _storage_args(status)
    status.add_argument("--json", action="store_true", help="machine-readable output")

    report = sub.add_parser("report", help="summary, diagnostics, plots and best config")
    _storage_args(report)
    report.add_argument("--out", help="output folder (default: <storage>/report_<study>)")

    dash = sub.add_parser("dashboard", help="serve optuna-dashboard on 127.0.0.1")
    _storage_args(dash, study=False)
    dash.add_argument("--study-name", help="show this study live (default: every study of a "
                                           "folder, as it is when the dashboard starts)")
    dash.add_argument("--port", type=int, default=8081, help="(default: %(default)s)")
    dash.add_argument("--tunnel", default="auto", choices=["auto", "colab", "ngrok", "none"],
                      help="auto: Colab's private proxy on Colab, else local only; ngrok: "
                           "public, with a password (needs NGROK_AUTHTOKEN)")
    dash.add_argument("--artifacts", help="artifact folder (default: <storage>/artifacts)")

    check = sub.add_parser("check-repo", help="check a GazeGaussian checkout before a study")
    check.add_argument("repo", help="path of the GazeGaussian checkout")
    check.add_argument("--data", help="the ETH-XGaze data folder")
    _backend_option_arg(check, "the same backend options as `run` (val_data, val_split, "
                               "opt.NAME, ...), so the timing run is the trials' configuration")
    check.add_argument("--time-iters", type=int, default=3,
                       help="iterations of each stage to time (0: no timing run) "
                            "(default: %(default)s)")
    setup_repo_command.add_parser(sub)

    demo = sub.add_parser("demo", help="both studies and the report on the mini backend")
    demo.add_argument("--results-dir", default="gg_results", help="(default: %(default)s)")
    demo.add_argument("--n-trials", type=int, default=10, help="per stage (default: %(default)s)")
    demo.add_argument("--max-epochs", type=int, default=10, help="(default: %(default)s)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _config(args: argparse.Namespace, stage: str):
    from .config import StudyConfig

    return StudyConfig(
        stage=stage, backend=args.backend, study_name=getattr(args, "study_name", None),
        storage=args.storage, results_dir=args.results_dir, n_trials=args.n_trials,
        max_epochs=args.max_epochs, pruner=args.pruner, sampler=args.sampler, seed=args.seed,
        timeout=args.timeout, trial_timeout=args.trial_timeout,
        epoch_timeout=args.epoch_timeout, patience=args.patience or None,
        min_delta=args.min_delta, device=args.device,
        edits=dict(parse_edit(e) for e in getattr(args, "set", [])),
        backend_options=_backend_options(args),
        meshhead_study=getattr(args, "meshhead_study", None),
        change_meshhead=getattr(args, "change_meshhead", False),
        heartbeat_interval=args.heartbeat_interval, show_progress_bar=not args.quiet,
        warm_worker=not args.no_warm_worker)


def cmd_run(args: argparse.Namespace) -> int:
    from .study import run_study

    run_study(_config(args, args.stage))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .status import format_status, study_status
    from .storage import open_study

    status = study_status(open_study(args.storage, args.study_name))
    print(json.dumps(status, indent=2) if args.json else format_status(status))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .layout import check_study_name
    from .storage import check_writable_dir, open_storage

    name = check_study_name(args.study_name)
    out = Path(args.out or _results_folder(args.storage) / f"report_{name}")
    check_writable_dir(out, "report folder")
    storage = open_storage(args.storage, study_name=name, read_only=True)  # names a wrong study
    _report(storage, name, out)
    return 0


def _results_folder(storage: str) -> Path:
    """The run command's default results folder for ``--storage`` (never a path made of a URL,
    which would write its password into folder names)."""
    return Path("gg_results" if "://" in storage else storage)


def _report(storage, study_name: str, out) -> None:
    from .analysis import format_summary, write_report

    path = write_report(storage.rdb, study_name, out)
    summary = json.loads(path.read_text())
    print(format_summary(summary))
    if summary["plots"]["note"]:  # e.g. no Chrome, so HTML plots only
        print(summary["plots"]["note"])
    print(f"Report written to {path.parent}")


def cmd_dashboard(args: argparse.Namespace) -> int:
    from .dashboard import run_dashboard_forever
    from .storage import open_storage

    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port must be from 1 to 65535, but got {args.port}.")
    artifacts = args.artifacts or str(_results_folder(args.storage) / "artifacts")
    if Path(artifacts).exists() and not Path(artifacts).is_dir():
        raise ConfigError(f"The artifact folder {artifacts} is a file: pass a folder "
                          "(--artifacts).")
    storage = open_storage(args.storage, study_name=args.study_name, read_only=True)
    run_dashboard_forever(storage.rdb, artifact_dir=artifacts, port=args.port,
                          tunnel=args.tunnel)
    return 0


def cmd_check_repo(args: argparse.Namespace) -> int:
    from .backends.gazegaussian.check import check_repo

    report = check_repo(args.repo, args.data,
                        options=_backend_options(args),
                        time_iters=args.time_iters)
    print("\n".join(report.lines()))
    if report.ok:
        return 0
    problems = report.problems()
    more = f" ({len(problems)} problems, listed above)" if len(problems) > 1 else ""
    print(f"error: {problems[0]}{more}", file=sys.stderr)
    return 2


def cmd_demo(args: argparse.Namespace) -> int:
    from .storage import open_storage
    from .config import StudyConfig
    from .study import run_study

    for stage in ("meshhead", "gazegaussian"):
        study = run_study(StudyConfig(stage=stage, storage=args.results_dir,
                                      n_trials=args.n_trials, max_epochs=args.max_epochs,
                                      show_progress_bar=not args.quiet))
        _report(open_storage(args.results_dir, study_name=study.study_name, read_only=True),
                study.study_name, Path(args.results_dir) / f"report_{study.study_name}")
    return 0


COMMANDS = {"run": cmd_run, "status": cmd_status, "report": cmd_report,
            "dashboard": cmd_dashboard, "check-repo": cmd_check_repo, "demo": cmd_demo,
            "setup-repo": setup_repo_command.main}


def main(argv: list[str] | None = None) -> int:
    log_to_stdout()
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
