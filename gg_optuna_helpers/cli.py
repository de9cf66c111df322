"""``python -m gg_optuna_helpers run|status|report|dashboard|check-repo|setup-repo|demo``.

Bad input exits 2 with one line on stderr; a study stopped by a full or unreachable disk exits
74 with one line on stderr; everything else is on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path


from .config import StudyConfig
from .backends import BACKENDS, STAGES
from .dashboard import DEFAULT_PORT, TUNNELS
from .errors import EXIT_DISK_FAULT, ConfigError, DiskFault
from .layout import DEFAULT_FOLDER, Results, check_study_name, default_study_name
from .presets import PRUNERS, SAMPLERS
from .setup_repo import command as setup_repo_command
from .spaces import parse_edit
from .trial_log import log_to_stdout
from .values import parse_assignments

DESCRIPTION = """Optuna hyperparameter search for the GazeGaussian pipeline.
Typical session: `run --stage meshhead`, then `run --stage gazegaussian` (it picks up the best
MeshHead), then `report`. Re-run the same `run` command after a disconnect: it finishes only
what is left and resumes the interrupted trial from its last epoch."""
DEMO_TRIALS = DEMO_EPOCHS = 10


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        raise ConfigError(f"{self.prog}: {message} (see --help)")


def _storage_args(p: argparse.ArgumentParser, study: bool = True) -> None:
    p.add_argument("--storage", default=StudyConfig.storage,
                   help="a folder (live SQLite kept locally, snapshots here; e.g. a Drive "
                        "folder), or a sqlite:///PATH or postgresql://... URL (default: %(default)s)")
    if study:
        p.add_argument("--study-name", required=True, help="the study to read")


def _backend_option_arg(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--backend-option", action="append", default=[], metavar="KEY=VALUE", help=help)


def _backend_options(args: argparse.Namespace) -> dict:
    return parse_assignments(args.backend_option, what="--backend-option")


def _study_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default=StudyConfig.backend, choices=list(BACKENDS),
                   help="mini: embedded CPU-fast stand-in; gazegaussian: a real checkout "
                        "(needs --backend-option repo=PATH) (default: %(default)s)")
    _storage_args(p, study=False)
    p.add_argument("--results-dir", help="trial folders and checkpoints (default: the storage "
                                         f"folder, or ./{DEFAULT_FOLDER} for a URL)")
    p.add_argument("--n-trials", type=int, default=StudyConfig.n_trials,
                   help="finished trials in total, across restarts (default: %(default)s)")
    p.add_argument("--max-epochs", type=int, default=StudyConfig.max_epochs,
                   help="epochs per trial (default: %(default)s)")
    p.add_argument("--pruner", default=StudyConfig.pruner, choices=list(PRUNERS),
                   help="(default: %(default)s)")
    p.add_argument("--sampler", default=StudyConfig.sampler, choices=list(SAMPLERS),
                   help="(default: %(default)s)")
    p.add_argument("--seed", type=int, default=StudyConfig.seed, help="(default: %(default)s)")
    p.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    p.add_argument("--trial-timeout", type=float, help="fail a trial running longer (seconds)")
    p.add_argument("--epoch-timeout", type=float,
                   help="fail a trial with no finished epoch for this long (a hang), seconds")
    p.add_argument("--patience", type=int, default=StudyConfig.patience,
                   help="early stopping: epochs without improvement (0: off) (default: %(default)s)")
    p.add_argument("--min-delta", type=float, default=StudyConfig.min_delta,
                   help="early stopping: smallest improvement that counts")
    p.add_argument("--device", default=StudyConfig.device,
                   help="auto, cpu or cuda (default: %(default)s)")
    p.add_argument("--heartbeat-interval", type=int, default=StudyConfig.heartbeat_interval,
                   help="seconds; a trial silent for 3 intervals is re-queued (default: %(default)s)")
    _backend_option_arg(p, "e.g. repo=/content/GazeGaussian, data=/content/data")
    p.add_argument("--no-warm-worker", action="store_true",
                   help="start each trial's process only when the trial starts (default: the "
                        "next one is started and warmed while the current one trains)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--fresh", action="store_true",
                   help="start over a study whose folder was deleted: this machine's live copy "
                        "of it is set aside (renamed), not resumed (default: resumed, said so)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m gg_optuna_helpers", description=DESCRIPTION,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run (or resume) one stage's study")
    run.add_argument("--stage", required=True, choices=list(STAGES))
    run.add_argument("--study-name", help=f"default: {default_study_name('<backend>', '<stage>')}")
    run.add_argument("--meshhead-study", help="gazegaussian stage: the MeshHead study to take "
                                              "the best checkpoint from (default: "
                                              f"{default_study_name('<backend>', 'meshhead')})")
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
    dash.add_argument("--port", type=int, default=DEFAULT_PORT, help="(default: %(default)s)")
    dash.add_argument("--tunnel", default="auto", choices=list(TUNNELS),
                      help="auto: Colab's private proxy on Colab, else local only; ngrok: "
                           "public, with a password (needs NGROK_AUTHTOKEN)")
    dash.add_argument("--artifacts", help="artifact folder (default: <storage>/artifacts)")
    dash.add_argument("--allow-edits", action="store_true",
                      help="let the dashboard delete and change studies and trials (a database "
                           "URL only); by default it only reads and answers such requests 403")

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
    demo.add_argument("--results-dir", default=DEFAULT_FOLDER, help="(default: %(default)s)")
    demo.add_argument("--n-trials", type=int, default=DEMO_TRIALS,
                      help="per stage (default: %(default)s)")
    demo.add_argument("--max-epochs", type=int, default=DEMO_EPOCHS,
                      help="(default: %(default)s)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _config(args: argparse.Namespace, stage: str) -> StudyConfig:
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
        warm_worker=not args.no_warm_worker, fresh=args.fresh)


def cmd_run(args: argparse.Namespace) -> int:
    from .study import run_study

    run_study(_config(args, args.stage))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .analysis import format_summary, summarize
    from .analysis._summary import disk_usage
    from .storage import open_study

    study = open_study(args.storage, args.study_name)
    summary = {**summarize(study), "disk": disk_usage(study)}
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .storage import check_writable_dir

    name = check_study_name(args.study_name)
    out = Path(args.out or Results.of(args.storage).report_dir(name))
    check_writable_dir(out, "report folder")
    _report(args.storage, name, out)
    return 0


def _report(storage: str, study_name: str, out: Path) -> None:
    from .analysis import format_summary, write_report
    from .storage import optuna_storage

    rdb = optuna_storage(storage, study_name)  # a wrong study name: which ones exist
    path = write_report(rdb, study_name, out)
    summary = json.loads(path.read_text())
    print(format_summary(summary))
    if summary["plots"]["note"]:  # e.g. no Chrome, so HTML plots only
        print(summary["plots"]["note"])
    print(f"Report written to {path.parent}")


def cmd_dashboard(args: argparse.Namespace) -> int:
    from .dashboard import check_place, run_dashboard_forever
    from .storage import open_view

    artifacts = Path(args.artifacts or Results.of(args.storage).artifacts)
    check_place(args.port, artifacts, port_name="--port", artifacts_name="--artifacts")
    storage = args.storage if args.allow_edits else open_view(  # a typo: one sentence, exit 2
        args.storage, args.study_name)
    run_dashboard_forever(storage, study_name=args.study_name, artifact_dir=artifacts,
                          port=args.port, tunnel=args.tunnel, allow_edits=args.allow_edits)
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
    from .study import run_study

    for stage in STAGES:
        study = run_study(StudyConfig(stage=stage, storage=args.results_dir,
                                      n_trials=args.n_trials, max_epochs=args.max_epochs,
                                      show_progress_bar=not args.quiet))
        _report(args.results_dir, study.study_name,
                Results.of(args.results_dir).report_dir(study.study_name))
    return 0


COMMANDS = {"run": cmd_run, "status": cmd_status, "report": cmd_report,
            "dashboard": cmd_dashboard, "check-repo": cmd_check_repo, "demo": cmd_demo,
            "setup-repo": setup_repo_command.main}


def main(argv: list[str] | None = None) -> int:
    from .study import disk_line

    log_to_stdout()
    threading.excepthook = _thread_error
    args = None
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except DiskFault as e:  # the study stopped; the line says what is kept and what to do
        print(e, file=sys.stderr)
        return EXIT_DISK_FAULT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a full or gone disk that no study could record (see study.disk_line)
        line = disk_line(e, getattr(args, "storage", None))
        if line is None:
            raise
        running = getattr(args, "command", None) in ("run", "demo")
        print(line if running else "error: " + line.removeprefix("Stopped: "), file=sys.stderr)
        return EXIT_DISK_FAULT


def _thread_error(args: threading.ExceptHookArgs) -> None:
    """A thread (Optuna's heartbeat) that dies of a full disk prints nothing: the study's own
    line says it once."""
    from .study import disk_line

    if disk_line(args.exc_value, None) is None:
        threading.__excepthook__(args)
