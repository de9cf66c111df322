"""The warm worker: a fresh process per trial, started ahead; a dead or stale one is replaced."""

import json
import os
import signal

from gg_optuna_helpers.backends import get_backend
from gg_optuna_helpers.protocol import LOG, METRICS, PREVIEW, TrialSpec
from gg_optuna_helpers.runner import WarmWorker, _launch


def _spec(tmp_path, name, **options):
    trial_dir = tmp_path / name
    trial_dir.mkdir()
    return TrialSpec(backend="mini", stage="meshhead", max_epochs=2, device="cpu",
                     params=get_backend("mini").defaults("meshhead", {}), trial_dir=str(trial_dir),
                     cache_dir=str(tmp_path / "cache"), options=options)


def _events(spec):
    with open(os.path.join(spec.trial_dir, METRICS)) as f:
        return [json.loads(line) for line in f]


def test_trials_take_warm_processes_each_its_own(tmp_path):
    with WarmWorker() as warm:
        first, second = _spec(tmp_path, "a"), _spec(tmp_path, "b", fault={"kind": "crash",
                                                                         "epoch": 1})
        spare = warm._child
        child = _launch(first, warm)
        assert child is spare and warm._child is None
        warm.refill()  # run_trial does it at the first epoch: the next one warms meanwhile
        assert warm._child.poll() is None
        assert child.wait(timeout=120) == 0
        crashed = _launch(second, warm)
        assert crashed.pid != child.pid
        assert crashed.wait(timeout=120) == 86  # the crash ends its own process only
        warm.refill()
        assert warm._child.poll() is None
    assert [e["event"] for e in _events(first)] == ["start", "epoch", "epoch", "end"]
    assert os.path.getsize(os.path.join(first.trial_dir, PREVIEW)) > 0  # rendered at the end
    assert "Traceback" not in open(os.path.join(first.trial_dir, LOG)).read()
    assert warm._child is None  # closed: no process left behind


def test_a_dead_warm_process_is_replaced_by_a_cold_start(tmp_path):
    with WarmWorker() as warm:
        dead = warm._child
        os.killpg(dead.pid, signal.SIGKILL)
        dead.wait()
        child = _launch(_spec(tmp_path, "a"), warm)  # a cold start
        assert child is not dead and child.wait(timeout=120) == 0
        warm.refill()
        assert warm._child.poll() is None


def test_a_warm_process_from_another_environment_is_not_used(tmp_path, monkeypatch):
    with WarmWorker() as warm:
        stale = warm._child
        monkeypatch.setenv("GG_OPTUNA_THREADS", "2")
        child = _launch(_spec(tmp_path, "a"), warm)
        assert child is not stale and stale.poll() is not None
        assert child.wait(timeout=120) == 0
