"""Torture: a study SIGKILLed at every phase of a trial, then restarted, until it is done.

Each scenario runs a real study on the mini backend and kills the whole process group of
``python -m gg_optuna_helpers run`` (as a disconnect does: no goodbye, no cleanup), restarting it
after each kill, then lets the last run finish. ``local``: the local live database survives, as
on a terminal or a Colab runtime that reconnects (24 kills). ``new_vm``: the local live database
folder is deleted before each restart, as on a fresh Colab VM: only the durable snapshot in the
storage folder (and the trial folders with their checkpoints) remain (12 kills).

The kill moments (:func:`plan`, seeded: the same seed gives the same plan). Every other kill is
``epoch``: once the run has trained 1 or 2 new epochs, a random part of an epoch later
(mid-epoch). The others are spread evenly over these phases, in a seeded random order, each at a
seeded random moment within its phase:

- ``startup``: 0.2-3 s after the command started (opening, recovery, the first trial's start),
  or once it trained an epoch if that comes first;
- ``no_heartbeat``: between a trial's creation and its first heartbeat, exactly: the test reads
  the live database in a transaction that sees the trial RUNNING with no heartbeat row, and
  kills while that read holds off every write (the window of the old flake: such a trial
  stayed RUNNING for ever, 9 COMPLETE + 1 RUNNING);
- ``first_second``: 0-1 s after a trial appeared RUNNING in the live database;
- ``snapshot``: during the 1st, 2nd or 3rd snapshot copy the test sees: it stops the group when
  the copy's temporary file appears, kills it if that file is still there (the copy is in
  progress), else lets it go on to the next copy;
- ``trial_end``: 0-0.6 s after a trial's worker wrote its ``end`` line (its tell, the snapshot
  after it, the next trial's start);
- ``random``: 0-10 s after the command started, or once it trained 2 epochs if that comes
  first (so that a fast machine does not finish the study before the planned kills).

The interleaving guarantees progress: the first trial a run starts is the retry of the one the
last kill stopped, so an ``epoch`` run always trains that chain at least one new epoch (a chain
is given up only after 3 retries in a row without a new epoch, storage.ResumeRetry).

Definitions (the assertions in :func:`check_study` use exactly these):

- a *run* is one start of the command; kill ``i`` ends run ``i``; the last run ends by itself.
- ``c_i(d)``: the epoch of ``trial_d/last.pt`` read right after kill ``i`` (0: no checkpoint; a
  trial that has ended keeps no ``last.pt``: the last epoch its ``end`` line names).
- an *attempt* is one worker in one trial folder: a ``start`` line in its ``metrics.jsonl``,
  with its ``start_epoch``; it *checkpointed* epochs ``start_epoch .. c`` (``c``: the folder's
  checkpoint when its run ended).
- *retrained*: an epoch of a chain (a trial folder) checkpointed by two attempts. The worker
  saves ``last.pt`` before it writes an epoch's line, so a line that was written is in the
  checkpoint: "an epoch reported before a kill is never trained again" is "no retrained epoch".
- *in flight*: the epoch an attempt had begun when its run was killed (one per killed attempt,
  counted even if the kill fell between epochs: an upper bound). It is thrown away and begun
  again: the one epoch a kill may cost.

``local``: every attempt after kill ``i`` starts at ``c_i(d) + 1`` (it resumes from its
checkpoint), no epoch is retrained: epochs checkpointed = ``N_TRIALS * EPOCHS`` exactly, and the
waste (epochs begun - needed) is the epochs in flight, at most one per kill.

``new_vm``: snapshots are taken at each trial's start and end and every 60 s (these trials are
far shorter), so a kill can also lose what was trained since the last snapshot: the trial whose
number the snapshot does not know yet (at most one per kill) is run again from epoch 1 in its
reused folder. For kill ``i`` let ``lost_i = c_i(d)`` for that trial's folder (0 if the snapshot
knows every trial); every other folder resumes at ``c_i(d) + 1``, and the waste is at most
``sum_i (1 + lost_i)`` with ``lost_i <= EPOCHS`` (one trial at most).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import pytest
import torch

from conftest import ROOT, cli
from test_study import run_args, trials

pytestmark = pytest.mark.slow

STUDY = "mini_meshhead"
SCENARIOS = {"local": dict(new_vm=False, seed=1, trials=12, epochs=5, kills=24),
             "new_vm": dict(new_vm=True, seed=2, trials=10, epochs=4, kills=12)}
PHASES = ("startup", "no_heartbeat", "first_second", "snapshot", "trial_end", "random")
EPOCH_S = 0.4  # about one mini epoch here
DB_ERRORS = ("database is locked", "OperationalError", "DatabaseError", "disk I/O error",
             "malformed", "Traceback")
NO_HEARTBEAT = ("select t.trial_id from trials t where t.state = 'RUNNING' and not exists "
                "(select 1 from trial_heartbeats h where h.trial_id = t.trial_id)")


@dataclass(frozen=True)
class Kill:
    """One planned kill: its phase and a seeded random number in [0, 1) placing it there."""

    phase: str
    u: float
    more_epochs: int = 1


def plan(seed: int, kills: int) -> list[Kill]:
    rng = random.Random(seed)
    others = [PHASES[i % len(PHASES)] for i in range(kills // 2)]  # evenly over the phases
    rng.shuffle(others)
    moments = []
    for phase in others:
        moments.append(Kill("epoch", rng.random(), rng.randint(1, 2)))
        moments.append(Kill(phase, rng.random()))
    return moments


@dataclass
class Observation:
    """What a run left: checkpoints and metrics per trial folder, and what the snapshot knows."""

    kill: str  # where the kill landed; "finished" for the last run
    checkpoint: dict[str, int]
    metrics: dict[str, str]
    snapshot_knows: set[int] = field(default_factory=set)


def trial_dirs(results: Path) -> list[Path]:
    return sorted((results / STUDY).glob("trial_*"))


def observe(results: Path, kill: str) -> Observation:
    checkpoint, metrics = {}, {}
    for d in trial_dirs(results):
        path = d / "metrics.jsonl"
        metrics[d.name] = path.read_text() if path.exists() else ""
        last = d / "last.pt"
        checkpoint[d.name] = (torch.load(last, weights_only=False)["epoch"] if last.exists()
                              else ended_at(metrics[d.name]))
    return Observation(kill, checkpoint, metrics, snapshot_numbers(results / STUDY / "optuna.db"))


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


def live_rows(live: Path | None, query: str) -> set[int]:
    """Rows of ``query`` in the live database now, read only (none while it does not exist,
    is busy, or holds what a killed write left half-done: the run rolls that back itself)."""
    if live is None or not live.exists():
        return set()
    try:
        with sqlite3.connect(f"file:{live}?mode=ro", uri=True, timeout=0.05) as db:
            return {r[0] for r in db.execute(query)}
    except sqlite3.Error:
        return set()


def rows_at_rest(db: Path, query: str) -> set[int]:
    """Rows of ``query`` in ``db`` while no process uses it, a write half-done by the kill
    rolled back in a private copy: the next run must meet the file as the kill left it."""
    if not db.exists():
        return set()
    with tempfile.TemporaryDirectory() as tmp:
        for file in (db, db.with_name(f"{db.name}-journal")):
            if file.exists():
                shutil.copy2(file, Path(tmp) / file.name)
        with sqlite3.connect(Path(tmp) / db.name) as copy:
            return {r[0] for r in copy.execute(query)}


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


class Finished(Exception):
    """The run ended by itself before its planned kill."""


class Runner:
    """Starts the study command in its own session and kills its process group as planned."""

    def __init__(self, results: Path, args: list[str], logs: Path, local: Path) -> None:
        self.results, self.args, self.logs, self.local = results, args, logs, local
        self.runs = 0
        self.proc: subprocess.Popen | None = None

    @property
    def live(self) -> Path | None:
        return next(self.local.glob("*/optuna.db"), None)

    def start(self) -> subprocess.Popen:
        self.runs += 1
        log = open(self.logs / f"run_{self.runs:02d}.log", "w")
        with log:
            self.proc = subprocess.Popen(
                ["python", "-m", "gg_optuna_helpers", *self.args], cwd=ROOT, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
                env=dict(os.environ, PYTHONPATH=str(ROOT), GG_OPTUNA_LOCAL_DIR=str(self.local),
                         GG_OPTUNA_THREADS="1"))
        self.began = time.monotonic()
        return self.proc

    def run_and_kill(self, kill: Kill) -> str | None:
        """One run, SIGKILLed as ``kill`` plans; where it landed, or None if it finished first."""
        restored = self.live or self.results / STUDY / "optuna.db"  # what this run starts from
        before = rows_at_rest(restored, "select number from trials where state = 'RUNNING'")
        dead = rows_at_rest(restored, NO_HEARTBEAT)  # left by the run before: not this run's
        self.start()
        try:
            where = getattr(self, f"_{kill.phase}")(kill, before=before, dead=dead)
            return f"{where}, at {time.monotonic() - self.began:.1f} s"
        except Finished:
            return None
        finally:
            self.stop()

    def wait(self, condition, poll: float = 0.02):
        """Poll ``condition`` until it returns something true; that value."""
        while not (found := condition()):
            if self.proc.poll() is not None:
                raise Finished
            assert time.monotonic() - self.began < 180, f"no progress in run {self.runs}"
            time.sleep(poll)
        return found

    def kill_after(self, delay: float, where: str) -> str:
        time.sleep(delay)
        if self.proc.poll() is not None:
            raise Finished
        os.killpg(self.proc.pid, signal.SIGKILL)  # the whole group: no goodbye, no cleanup
        return where

    def _epoch(self, kill: Kill, **_) -> str:
        trained = progress(self.results)[0]
        self.wait(lambda: progress(self.results)[0] >= trained + kill.more_epochs)
        return self.kill_after(kill.u * EPOCH_S, f"{kill.more_epochs} epoch(s) in")

    def _startup(self, kill: Kill, **_) -> str:
        return self.at_time(0.2 + 2.8 * kill.u, 1, "during start-up")

    def _random(self, kill: Kill, **_) -> str:
        return self.at_time(10.0 * kill.u, 2, "at a random moment")

    def at_time(self, seconds: float, at_most: int, where: str) -> str:
        """Kill ``seconds`` after the start, or once the run trained ``at_most`` epochs (so
        that a fast machine does not finish the study before the planned kills)."""
        trained = progress(self.results)[0]
        self.wait(lambda: (time.monotonic() - self.began >= seconds
                           or progress(self.results)[0] >= trained + at_most), poll=0.01)
        return self.kill_after(0.0, where)

    def _trial_end(self, kill: Kill, **_) -> str:
        ended = progress(self.results)[1]
        self.wait(lambda: progress(self.results)[1] > ended)
        return self.kill_after(0.6 * kill.u, "just after a trial's end")

    def _first_second(self, kill: Kill, before: set[int], **_) -> str:
        running = "select number from trials where state = 'RUNNING'"
        number = min(self.wait(lambda: live_rows(self.live, running) - before))
        return self.kill_after(kill.u, f"{kill.u:.2f} s into trial {number}")

    def _no_heartbeat(self, kill: Kill, dead: set[int], **_) -> str:
        return self.wait(lambda: self._kill_in_window(dead), poll=0.001)

    def _kill_in_window(self, dead: set[int]) -> str | None:
        """Kill while the live database shows a trial of this run RUNNING with no heartbeat:
        this read transaction holds off every write, so the kill lands in that state."""
        if self.live is None:
            return None
        try:  # read only: a write the last kill left half-done is the run's to roll back
            db = sqlite3.connect(f"file:{self.live}?mode=ro", uri=True, isolation_level=None,
                                 timeout=0.05)
        except sqlite3.Error:
            return None
        try:
            db.execute("begin")
            found = {r[0] for r in db.execute(NO_HEARTBEAT)} - dead
            if found:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                return f"trial id {min(found)} RUNNING without a heartbeat"
            return None
        except sqlite3.Error:
            return None
        finally:
            db.close()

    def _snapshot(self, kill: Kill, **_) -> str:
        """Kill during the (1 + 3u)-th snapshot copy seen: stop the group when the copy's
        temporary file appears; kill it if the file is still there, else let it go on."""
        tmp = self.results / STUDY / f".optuna.db.{self.proc.pid}.tmp"
        for _ in range(int(3 * kill.u)):
            self.wait(tmp.exists, poll=0.0005)
            self.wait(lambda: not tmp.exists(), poll=0.0005)
        while True:
            self.wait(tmp.exists, poll=0.0005)
            os.killpg(self.proc.pid, signal.SIGSTOP)
            if tmp.exists():
                os.killpg(self.proc.pid, signal.SIGKILL)
                return f"during snapshot copy {1 + int(3 * kill.u)} ({tmp.name} left)"
            os.killpg(self.proc.pid, signal.SIGCONT)

    def finish(self) -> None:
        self.start()
        try:
            assert self.proc.wait(timeout=300) == 0, self.output()[-3000:]
        finally:
            self.stop()

    def stop(self) -> None:
        """Leave nothing running: the run's process group, then its orphaned worker."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        reap_workers(self.results)

    def output(self) -> str:
        return "".join(p.read_text() for p in sorted(self.logs.glob("run_*.log")))


def torture(tmp_path: Path, *, new_vm: bool, seed: int, trials: int, epochs: int,
            kills: int) -> tuple[list[Observation], Runner, float]:
    results, logs, local = tmp_path / "drive", tmp_path / "logs", tmp_path / "local"
    logs.mkdir()
    args = run_args(results, "--pruner", "none", "--set", "lr=1e-4:2e-3", trials=trials,
                    epochs=epochs)  # a range that never diverges: every trial must finish
    runner = Runner(results, args, logs, local)
    observations, began = [], time.monotonic()
    for i, kill in enumerate(plan(seed, kills), start=1):
        where = runner.run_and_kill(kill)
        assert where is not None, f"the study finished after only {i - 1} kills"
        observations.append(observe(results, f"{kill.phase}: {where}"))
        if new_vm:  # a fresh Colab VM: the local live database is gone
            shutil.rmtree(local, ignore_errors=True)
    runner.finish()
    observations.append(observe(results, "finished"))
    return observations, runner, time.monotonic() - began


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


def check_trials(runner: Runner, observations: list[Observation], n: int, epochs: int) -> None:
    """Exactly ``n`` finished, none RUNNING or WAITING, each chain finished once from its own
    folder, and its last attempt resumed from its checkpoint."""
    study = optuna.load_study(study_name=STUDY,
                              storage=f"sqlite:///{runner.results / STUDY / 'optuna.db'}")
    trials = study.get_trials()
    states = [t.state.name for t in trials]
    assert states.count("COMPLETE") == n, states
    assert set(states) <= {"COMPLETE", "FAIL"}, states  # none RUNNING, none WAITING
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert not [t.user_attrs["failure"] for t in failed if "failure" in t.user_attrs]  # only kills
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert sum(bool(t.user_attrs.get("baseline")) for t in complete) == 1
    chains = {t.system_attrs.get("failed_trial", t.number) for t in complete}
    assert len(chains) == n  # each original trial finished exactly once
    fresh = [t.params for t in trials if "failed_trial" not in t.system_attrs]
    assert len(fresh) == n  # no chain was given up (a new trial would have replaced it)
    assert len({json.dumps(p, sort_keys=True) for p in fresh}) == n  # no run repeats one
    for t in complete:
        assert set(t.intermediate_values) == set(range(1, epochs + 1)), t.number
        number = t.system_attrs.get("failed_trial", t.number)
        assert t.user_attrs["trial_dir"].endswith(f"trial_{number:04d}")
        last_start = [e for e in events(observations[-1].metrics[f"trial_{number:04d}"])
                      if e["event"] == "start"][-1]
        assert t.user_attrs["start_epoch"] == last_start["start_epoch"]
        assert t.user_attrs["epochs"] == epochs - last_start["start_epoch"] + 1


@dataclass
class Tally:
    """Epochs over every attempt, and where each kill landed."""

    checkpointed: int = 0
    begun: int = 0  # checkpointed + those in flight at a kill
    allowed: int = 0  # the bound on the waste
    phases: list[str] = field(default_factory=list)
    finished: Counter = field(default_factory=Counter)  # (folder, epoch): lines not replayed


def check_attempt(tally: Tally, i: int, name: str, previous: Observation, obs: Observation, *,
                  new_vm: bool, epochs: int) -> str | None:
    """The docstring's assertions on run ``i``'s attempt in folder ``name``; what it did."""
    reused, new = run_events(previous.metrics.get(name, ""), obs.metrics[name])
    starts = [e for e in new if e["event"] == "start"]
    assert len(starts) <= 1, (i, name, starts)  # one attempt per folder and run
    if reused:
        # only a trial the snapshot did not know may start over, in its old folder
        assert new_vm, f"{name} was wiped on the local path (run {i})"
        assert int(name.removeprefix("trial_")) not in previous.snapshot_knows
        for e in range(1, epochs + 1):  # its lines before are of a lost attempt
            tally.finished[(name, e)] = 0
    if not starts:
        return None
    start, c = starts[0]["start_epoch"], obs.checkpoint[name]
    expected = 1 if reused else previous.checkpoint.get(name, 0) + 1
    assert start == expected, f"run {i}: {name} started at {start}, not {expected}"
    trained = [e["epoch"] for e in new if e["event"] == "epoch" and not e.get("replayed")]
    # the metrics agree with the checkpoint (the last line may die with its epoch)
    assert trained in (list(range(start, c + 1)), list(range(start, c))), (i, name)
    for e in trained:
        tally.finished[(name, e)] += 1
    killed = obs.kill != "finished"
    in_flight = killed and not any(e["event"] == "end" for e in new) and c < epochs
    tally.checkpointed += c - start + 1
    tally.begun += c - start + 1 + in_flight
    return f"{name} in epoch {c + 1}" if in_flight else f"{name} from {start}"


def allowed_waste(obs: Observation, *, new_vm: bool, epochs: int) -> int:
    """The epoch in flight, plus (new VM) what the snapshot did not know yet."""
    if not new_vm:
        return 1
    unknown = [n for n in obs.checkpoint if int(n.removeprefix("trial_")) not in obs.snapshot_knows]
    assert len(unknown) <= 1, unknown  # a snapshot at every trial's start
    lost = sum(obs.checkpoint[n] for n in unknown)
    assert lost <= epochs
    return 1 + lost


def check_epochs(observations: list[Observation], *, new_vm: bool, epochs: int) -> Tally:
    tally, previous = Tally(), Observation("none", {}, {})
    for i, obs in enumerate(observations, start=1):
        did = [check_attempt(tally, i, name, previous, obs, new_vm=new_vm, epochs=epochs)
               for name in obs.metrics]
        if obs.kill != "finished":
            tally.phases.append(f"kill {i} ({obs.kill}): "
                                f"{', '.join(d for d in did if d) or 'no worker'}")
            tally.allowed += allowed_waste(obs, new_vm=new_vm, epochs=epochs)
        previous = obs
    # no epoch line written twice: an epoch once reported is never trained again
    assert max(tally.finished.values(), default=0) <= 1, [
        k for k, v in tally.finished.items() if v > 1]
    return tally


def check_study(result: tuple, *, new_vm: bool, seed: int, trials: int, epochs: int,
                kills: int) -> None:
    """Every assertion of the module docstring's definitions."""
    observations, runner, seconds = result
    output = runner.output()
    for error in DB_ERRORS:
        assert error not in output, output[-3000:]
    check_trials(runner, observations, trials, epochs)
    tally = check_epochs(observations, new_vm=new_vm, epochs=epochs)
    waste = tally.begun - trials * epochs
    print(f"\n{'new VM' if new_vm else 'local'}: {kills} kills in {seconds:.0f} s, {tally.begun} "
          f"epochs begun for {trials * epochs} needed: waste {waste} <= bound {tally.allowed}\n  "
          + "\n  ".join(tally.phases))
    assert len(tally.phases) == kills and 0 <= waste <= tally.allowed
    if not new_vm:
        # 0 retrained epochs; the waste is the epochs in flight: at most one per kill
        assert tally.checkpointed == trials * epochs
    landed = " ".join(tally.phases)
    for phase in PHASES + ("epoch",):
        assert f"({phase}:" in landed, phase
    assert " in epoch " in landed  # some kills fell mid-epoch


def test_the_kill_plan_is_seeded_and_spread_over_every_phase():
    one, again = plan(1, 36), plan(1, 36)
    assert one == again and plan(2, 36) != one
    counts = Counter(k.phase for k in one)
    assert counts == {"epoch": 18, **{p: 3 for p in PHASES}}
    assert sum(s["kills"] for s in SCENARIOS.values()) >= 30
    assert all(k.phase == "epoch" for k in one[::2])  # progress between two other kills


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
    """Both scenarios at once: each mostly waits (start-up, the kill moments), so together
    they take little longer than one."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield {name: pool.submit(torture, tmp_path_factory.mktemp(name), **params)
               for name, params in SCENARIOS.items()}


def test_sigkill_at_every_phase_local_database(scenarios):
    check_study(scenarios["local"].result(timeout=1200), **SCENARIOS["local"])


def test_sigkill_at_every_phase_new_vm_each_time(scenarios):
    check_study(scenarios["new_vm"].result(timeout=1200), **SCENARIOS["new_vm"])
