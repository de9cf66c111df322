"""Torture: a study SIGKILLed at random moments, then restarted, until it is done.

Each scenario runs a real 10-trial study on the mini backend and kills the whole process group of
``python -m gg_optuna_helpers run`` at 10 seeded random moments (during start-up, mid-epoch,
between trials), restarting it after each kill. ``local``: the local live database survives, as
on a terminal or a Colab runtime that reconnects. ``new_vm``: the local live database folder is
deleted before each restart, as on a fresh Colab VM: only the durable snapshot in the storage
folder (and the trial folders with their checkpoints) remain.

Definitions (the assertions in :func:`check_study` use exactly these):

- a *run* is one start of the command; kill ``i`` ends run ``i``; the last run ends by itself.
- ``c_i(d)``: the epoch of ``trial_d/last.pt`` read right after kill ``i`` (0: no checkpoint; a
  trial that has ended keeps no ``last.pt``: the last epoch its ``end`` line names).
- an *attempt* is one worker in one trial folder: a ``start`` line in its ``metrics.jsonl``,
  with its ``start_epoch``.
- epochs *begun* by the attempt of run ``i`` in folder ``d``: ``c_i(d) - start_epoch + 1``
  checkpointed epochs, plus 1 for the epoch in flight when the run was killed before the
  attempt ended (counted even if the kill fell between epochs: an upper bound).
- *needed*: ``N_TRIALS * EPOCHS`` (patience and pruning are off, so every trial trains all epochs).
- *waste* ``W = sum of epochs begun - needed``: epochs trained more than once or thrown away.

``local``: every attempt after kill ``i`` starts at ``c_i(d) + 1``, so each kill costs at most
its epoch in flight: ``W <= number of kills``.

``new_vm``: snapshots are taken after each trial and every 60 s (these trials are far shorter),
so a kill can also lose what was trained since the last snapshot: the trial whose number the
snapshot does not know yet (at most one per kill) is run again from epoch 1 in its reused folder.
For kill ``i`` let ``lost_i = c_i(d)`` for that trial's folder (0 if the snapshot knows every
trial); every other folder resumes at ``c_i(d) + 1``, and ``W <= sum_i (1 + lost_i)`` with
``lost_i <= EPOCHS`` (one trial at most).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import pytest
import torch

from conftest import ROOT, cli
from test_study import run_args, trials

pytestmark = pytest.mark.slow

N_TRIALS, EPOCHS, KILLS = 10, 4, 10
STUDY = "mini_meshhead"
DB_ERRORS = ("database is locked", "OperationalError", "DatabaseError", "disk I/O error",
             "malformed", "Traceback")


@dataclass
class Observation:
    """What a run left: checkpoints and metrics per trial folder, and what the snapshot knows."""

    mode: str  # how the kill moment was chosen; "finished" for the last run
    checkpoint: dict[str, int]
    metrics: dict[str, str]
    snapshot_knows: set[int] = field(default_factory=set)


def trial_dirs(results: Path) -> list[Path]:
    return sorted((results / STUDY).glob("trial_*"))


def observe(results: Path, mode: str) -> Observation:
    checkpoint, metrics = {}, {}
    for d in trial_dirs(results):
        path = d / "metrics.jsonl"
        metrics[d.name] = path.read_text() if path.exists() else ""
        last = d / "last.pt"
        checkpoint[d.name] = (torch.load(last, weights_only=False)["epoch"] if last.exists()
                              else ended_at(metrics[d.name]))
    return Observation(mode, checkpoint, metrics, snapshot_numbers(results / STUDY / "optuna.db"))


def ended_at(text: str) -> int:
    """The last epoch of a folder whose latest attempt ended (its last.pt is removed then)."""
    ends = [e for e in events(text) if e["event"] in ("start", "end")][-1:]
    return ends[0].get("last_epoch", 0) if ends and ends[0]["event"] == "end" else 0


def snapshot_numbers(db: Path) -> set[int]:
    """Original trial numbers the durable snapshot knows (the trials and those they retry)."""
    if not db.exists():
        return set()
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        tables = {r[0] for r in c.execute("select name from sqlite_master")}
        if "trials" not in tables:
            return set()
        numbers = {r[0] for r in c.execute("select number from trials")}
        retried = {int(r[0]) for r in c.execute(
            "select value_json from trial_system_attributes where key = 'failed_trial'")}
    return numbers | retried


def events(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def progress(results: Path) -> tuple[int, int]:
    """(epochs trained, trials ended) so far, from every metrics file."""
    trained = ended = 0
    for d in trial_dirs(results):
        try:
            text = (d / "metrics.jsonl").read_text()
        except FileNotFoundError:
            continue
        for line in text.splitlines():
            if line.endswith("}"):
                trained += '"event": "epoch"' in line and '"replayed": true' not in line
                ended += '"event": "end"' in line
    return trained, ended


def workers_of(results: Path) -> list[int]:
    """Pids of worker processes training a trial of this test (found by their spec path)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"gg_optuna_helpers.worker" in cmd and str(results).encode() in cmd:
            pids.append(int(proc.name))
    return pids


def reap_workers(results: Path, timeout: float = 15.0) -> None:
    """Wait for the killed run's worker to die with its parent (PR_SET_PDEATHSIG); else kill it."""
    deadline = time.monotonic() + timeout
    while (pids := workers_of(results)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not pids, f"workers outlived their killed parent: {pids}"


class Runner:
    """Starts the study command in its own session and kills its process group at random moments."""

    def __init__(self, results: Path, args: list[str], logs: Path, seed: int, local: Path) -> None:
        self.results, self.args, self.logs, self.local = results, args, logs, local
        self.rng = random.Random(seed)
        self.runs = 0

    def start(self) -> subprocess.Popen:
        self.runs += 1
        log = open(self.logs / f"run_{self.runs:02d}.log", "w")
        with log:
            return subprocess.Popen(
                ["python", "-m", "gg_optuna_helpers", *self.args], cwd=ROOT, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
                env=dict(os.environ, PYTHONPATH=str(ROOT), GG_OPTUNA_LOCAL_DIR=str(self.local),
                         GG_OPTUNA_THREADS="1"))

    def run_and_kill(self) -> str | None:
        """One run, SIGKILLed at a random moment; the mode, or None if it finished first."""
        rng = self.rng  # every draw is made up front: the same seed gives the same plan
        mode = rng.choice(["startup", "epochs", "epochs", "trial_end"])
        delay, more_epochs = rng.uniform(0.0, 0.6), rng.randint(1, 3)
        startup = rng.uniform(0.2, 3.0)
        proc = self.start()
        try:
            trained, ended = progress(self.results)
            began = time.monotonic()
            while True:
                if proc.poll() is not None:
                    return None
                now_trained, now_ended = progress(self.results)
                if ((mode == "startup" and time.monotonic() - began >= startup)
                        or (mode == "epochs" and now_trained >= trained + more_epochs)
                        or (mode == "trial_end" and now_ended > ended)):
                    break
                assert time.monotonic() - began < 120, f"no progress in run {self.runs}"
                time.sleep(0.02)
            time.sleep(delay / 2 if mode == "epochs" else delay)  # mid-epoch: epochs take ~0.3 s
            if proc.poll() is not None:
                return None
            os.killpg(proc.pid, signal.SIGKILL)  # the whole group: no goodbye, no cleanup
            return mode
        finally:
            self.stop(proc)

    def finish(self) -> None:
        proc = self.start()
        try:
            assert proc.wait(timeout=300) == 0, self.output()[-3000:]
        finally:
            self.stop(proc)

    def stop(self, proc: subprocess.Popen) -> None:
        """Leave nothing running: the run's process group, then its orphaned worker."""
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        reap_workers(self.results)

    def output(self) -> str:
        return "".join(p.read_text() for p in sorted(self.logs.glob("run_*.log")))


def torture(tmp_path: Path, *, new_vm: bool, seed: int) -> tuple[list[Observation], Runner]:
    results, logs, local = tmp_path / "drive", tmp_path / "logs", tmp_path / "local"
    logs.mkdir()
    args = run_args(results, "--pruner", "none", "--set", "lr=1e-4:2e-3", trials=N_TRIALS,
                    epochs=EPOCHS)  # a range that never diverges: every trial must finish
    runner = Runner(results, args, logs, seed, local)
    observations = []
    while len(observations) < KILLS:
        mode = runner.run_and_kill()
        assert mode is not None, f"the study finished after only {len(observations)} kills"
        observations.append(observe(results, mode))
        if new_vm:  # a fresh Colab VM: the local live database is gone
            shutil.rmtree(local, ignore_errors=True)
    runner.finish()
    observations.append(observe(results, "finished"))
    return observations, runner


def run_events(before: str, text: str) -> tuple[bool, list[dict]]:
    """The events one run added to a folder's metrics, and whether it wiped the folder first.

    Every run starts a new worker, whose first line is ``start``: new lines that do not begin
    with one mean a new file whose first line happens to equal the old one.
    """
    if text.startswith(before):
        new = events(text[len(before):])
        if not new or new[0]["event"] == "start":
            return False, new
    return True, events(text)


def check_study(observations: list[Observation], runner: Runner, *, new_vm: bool) -> None:
    """Every assertion of the module docstring's definitions."""
    output = runner.output()
    for error in DB_ERRORS:
        assert error not in output, output[-3000:]
    # The durable snapshot holds the whole, finished study.
    study = optuna.load_study(study_name=STUDY,
                              storage=f"sqlite:///{runner.results / STUDY / 'optuna.db'}")
    trials = study.get_trials()
    states = [t.state.name for t in trials]
    assert states.count("COMPLETE") == N_TRIALS, states
    assert set(states) <= {"COMPLETE", "FAIL"}, states  # none RUNNING, none WAITING
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert not [t.user_attrs["failure"] for t in failed if "failure" in t.user_attrs]  # only kills
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert sum(bool(t.user_attrs.get("baseline")) for t in complete) == 1
    chains = {t.system_attrs.get("failed_trial", t.number) for t in complete}
    assert len(chains) == N_TRIALS  # each original trial finished exactly once
    fresh = [t.params for t in trials if "failed_trial" not in t.system_attrs]
    assert len({json.dumps(p, sort_keys=True) for p in fresh}) == len(fresh)  # no run repeats one
    for t in complete:
        assert set(t.intermediate_values) == set(range(1, EPOCHS + 1)), t.number
        number = t.system_attrs.get("failed_trial", t.number)
        assert t.user_attrs["trial_dir"].endswith(f"trial_{number:04d}")
        # its own attempt started where the original trial's checkpoint was; only the rest ran
        last_start = [e for e in events(observations[-1].metrics[f"trial_{number:04d}"])
                      if e["event"] == "start"][-1]
        assert t.user_attrs["start_epoch"] == last_start["start_epoch"]
        assert t.user_attrs["epochs"] == EPOCHS - last_start["start_epoch"] + 1

    begun = allowed = 0
    phases = []
    previous = Observation("none", {}, {})
    for i, obs in enumerate(observations, start=1):
        killed = obs.mode != "finished"
        started = interrupted = 0
        for name, text in obs.metrics.items():
            reused, new = run_events(previous.metrics.get(name, ""), text)
            starts = [e for e in new if e["event"] == "start"]
            assert len(starts) <= 1, (i, name, starts)  # one attempt per folder and run
            if reused:
                # only a trial the snapshot did not know may start over, in its old folder
                assert new_vm, f"{name} was wiped on the local path (run {i})"
                assert int(name.removeprefix("trial_")) not in previous.snapshot_knows
            if not starts:
                continue
            started += 1
            start, c = starts[0]["start_epoch"], obs.checkpoint[name]
            expected = 1 if reused else previous.checkpoint.get(name, 0) + 1
            assert start == expected, f"run {i}: {name} started at {start}, not {expected}"
            trained = [e["epoch"] for e in new if e["event"] == "epoch" and not e.get("replayed")]
            # the metrics agree with the checkpoint (the last line may die with its epoch)
            assert trained in (list(range(start, c + 1)), list(range(start, c))), (i, name)
            in_flight = killed and not any(e["event"] == "end" for e in new) and c < EPOCHS
            begun += c - start + 1 + in_flight
            interrupted += in_flight
            if in_flight:
                phases.append(f"kill {i} ({obs.mode}): mid-trial, {name} in epoch {c + 1}")
        if killed and not interrupted:
            where = "between trials" if started else "during start-up (no worker yet)"
            phases.append(f"kill {i} ({obs.mode}): {where}")
        if killed:
            lost = 0
            if new_vm:
                unknown = [n for n in obs.checkpoint
                           if int(n.removeprefix("trial_")) not in obs.snapshot_knows]
                assert len(unknown) <= 1, unknown  # a snapshot after every trial
                lost = sum(obs.checkpoint[n] for n in unknown)
                assert lost <= EPOCHS
            allowed += 1 + lost
        previous = obs
    waste = begun - N_TRIALS * EPOCHS
    print(f"\n{'new VM' if new_vm else 'local'}: {len(observations) - 1} kills, {begun} epochs "
          f"begun for {N_TRIALS * EPOCHS} needed: waste {waste} <= bound {allowed}\n  "
          + "\n  ".join(phases))
    assert 0 <= waste <= allowed
    if not new_vm:
        assert allowed == KILLS  # at most one epoch per kill
    assert any("mid-trial" in p for p in phases) and any("start-up" in p for p in phases)


def test_a_restarted_run_samples_new_configurations(tmp_path):
    """The sampler's seed moves on with the stored trials: a restart does not redraw the
    configurations of the run before it (each repeat would cost a whole trial of GPU time)."""
    results = tmp_path / "drive"
    for total in (2, 3):
        out = cli(*run_args(results, "--pruner", "none", trials=total, epochs=1))
        assert out.returncode == 0, out.stdout + out.stderr
    first_run, second_run = [t.params for t in trials(results)][1:3]  # trial 0 is the baseline
    assert first_run != second_run


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory):
    """Both scenarios at once: each mostly waits (heartbeats, start-up), so together they take
    little longer than one."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield {name: pool.submit(torture, tmp_path_factory.mktemp(name), new_vm=new_vm, seed=seed)
               for name, new_vm, seed in (("local", False, 1), ("new_vm", True, 2))}


def test_sigkill_at_random_moments_local_database(scenarios):
    observations, runner = scenarios["local"].result(timeout=600)
    check_study(observations, runner, new_vm=False)


def test_sigkill_at_random_moments_new_vm_each_time(scenarios):
    observations, runner = scenarios["new_vm"].result(timeout=600)
    check_study(observations, runner, new_vm=True)
