"""Two runtimes on one Drive folder (issue 12): real processes, each with its own local live
folder, as two Colab VMs. Two studies: both are kept whole. One study: the second runtime is
refused in one line naming the holder, and takes the study over once the first has stopped."""

from pathlib import Path

import pytest

from conftest import cli
from test_bad_input_matrix import refused
from test_study import _start, run_args, status, trials, wait_for

pytestmark = pytest.mark.slow


def vm(tmp_path: Path, name: str) -> dict:
    return {"GG_OPTUNA_LOCAL_DIR": str(tmp_path / name)}


def finish(proc) -> str:
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0 and "Traceback" not in output, output
    return output


def test_two_runtimes_two_studies_lose_nothing(tmp_path):
    drive = tmp_path / "drive"
    a = _start(run_args(drive, "--pruner", "none", trials=2, epochs=2), env=vm(tmp_path, "a"))
    b = _start(run_args(drive, "--pruner", "none", "--study-name", "other", trials=2, epochs=2),
               env=vm(tmp_path, "b"))
    finish(a), finish(b)
    # read from the Drive folder alone (this test's own, empty local folder: a third VM)
    for study in ("mini_meshhead", "other"):
        assert status(drive, study)["finished"] == 2
        assert {t.state.name for t in trials(drive, study)} <= {"COMPLETE", "FAIL"}


def test_a_second_runtime_on_one_study_is_refused_then_takes_over(tmp_path):
    drive = tmp_path / "drive"
    a = _start(run_args(drive, "--pruner", "none", trials=3, epochs=3), env=vm(tmp_path, "a"))
    try:
        wait_for(lambda: (drive / "mini_meshhead" / "trial_0000").is_dir())
        second = cli(*run_args(drive, trials=3, epochs=3), env=vm(tmp_path, "b"))
        line = refused(second, "Study 'mini_meshhead' is held by another runtime (host ",
                       f"pid {a.pid},", "PostgreSQL database (docs/workers.md)")
        assert "last seen" in line
    finally:
        finish(a)
    before = {t.number: (t.state.name, t.value) for t in trials(drive)}
    assert status(drive)["finished"] == 3 and "RUNNING" not in str(before)
    again = cli(*run_args(drive, "--pruner", "none", trials=4, epochs=3), env=vm(tmp_path, "b"))
    assert again.returncode == 0, again.stdout + again.stderr
    after = {t.number: (t.state.name, t.value) for t in trials(drive)}
    assert {n: after[n] for n in before} == before and status(drive)["finished"] == 4
