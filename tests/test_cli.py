"""The command line: readable help, and bad input answered with one line and exit code 2."""

import pytest

from conftest import cli


def test_help_reads_well():
    out = cli("run", "--help")
    assert out.returncode == 0
    for flag in ("--stage", "--backend", "--study-name", "--storage", "--n-trials", "--pruner",
                 "--sampler", "--seed", "--max-epochs", "--results-dir", "--set"):
        assert flag in out.stdout


@pytest.mark.parametrize("args, words", [
    (["run", "--stage", "eyes"], ["invalid choice", "eyes"]),
    (["run"], ["--stage"]),
    (["run", "--stage", "meshhead", "--n-trials", "0"], ["n_trials", ">= 1"]),
    (["run", "--stage", "meshhead", "--n-trials", "many"], ["invalid int value"]),
    (["run", "--stage", "meshhead", "--pruner", "fast"], ["invalid choice"]),
    (["run", "--stage", "meshhead", "--set", "lr=1e-2:1e-5"], ["low < high"]),
    (["run", "--stage", "meshhead", "--set", "depth=4"], ["Unknown parameter", "depth"]),
    (["run", "--stage", "gazegaussian", "--set", "dit_num_heads=4,6"], ["must divide", "6"]),
    (["run", "--stage", "gazegaussian", "--set", "dit_patch_size=5"], ["must divide", "5"]),
    (["run", "--stage", "meshhead", "--backend-option", "repo"], ["key=value"]),
    (["status", "--study-name", "nope", "--storage", "{tmp}"], ["No study named 'nope'"]),
    (["run", "--stage", "meshhead", "--storage", "sqlite:////no/such/dir/x.db"],
     ["does not exist"]),
])
def test_bad_input_is_one_line_and_exit_2(args, words, tmp_path):
    out = cli(*[a.replace("{tmp}", str(tmp_path)) for a in args], cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    for word in words:
        assert word in lines[0]
    assert not (tmp_path / "gg_results").exists()  # refused before anything was created


@pytest.mark.parametrize("text, value", [
    ("true", True), ("False", False), ("3", 3), ("0.5", 0.5), ("1e-3", 1e-3), ("[1, 2]", [1, 2]),
    ("adam", "adam"), ("nan", "nan"), ("inf", "inf"), ("\u0663", "\u0663"),
    ('{"a": 1}', '{"a": 1}'),
])
def test_set_and_backend_option_read_a_value_the_same_way(text, value):
    from gg_optuna_helpers.cli import build_parser, _backend_options
    from gg_optuna_helpers.spaces import parse_edit
    from gg_optuna_helpers.values import parse_value

    args = build_parser().parse_args(["run", "--stage", "meshhead", "--backend-option",
                                      f"x={text}"])
    assert parse_value(text) == value
    assert _backend_options(args) == {"x": value}
    if not text.startswith(("[", "{")):  # ',' and ':' are --set's own syntax
        assert parse_edit(f"x={text}") == ("x", value)
