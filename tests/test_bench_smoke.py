"""Every benchmark runs at its quick size and prints its ratios (not how fast it is)."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import run_all  # noqa: E402

pytestmark = pytest.mark.slow

# each benchmark script once, with what it must print: its ratio lines
PRINTS = {
    "time_to_quality": ["time to `none`'s best", "regret at 25% of T", "trials (median)",
                        "target:"],
    "pruning": ["epochs vs none", "regret", "time vs none", "target:"],
    "search": ["trials to reach random's", "best vs baseline", "best vs random's best",
               "target:"],
    "overhead": ["what the helper adds", "per epoch", "vs target", "target:"],
    "resume": ["helper / plain", "epochs lost", "target:"],
    "scaling": ["vs 1 worker", "efficiency vs linear", "CPU cores"],
    "setup_repo": ["ratio fresh/cached"],
}


@pytest.mark.parametrize("name", list(PRINTS))
def test_quick_benchmark_prints_its_ratios(name, tmp_path):
    script = run_all.BENCHMARKS[name][0]
    out = subprocess.run([sys.executable, str(ROOT / "bench" / script[0]), *script[1:],
                          "--quick", "--out", str(tmp_path)], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    if name in ("scaling", "setup_repo") and "skipped:" in out.stdout:
        pytest.skip(out.stdout.strip().splitlines()[-1])
    for text in PRINTS[name]:
        assert text in out.stdout, f"{name} did not print {text!r}:\n{out.stdout}"
    record = json.loads((tmp_path / f"{name}_quick.json").read_text())
    assert record["quick"] and record["machine"]["cores"] and record["figures"]
    assert (tmp_path / f"{name}_quick.md").read_text().startswith(f"`python bench/{script[0]}")


def test_docs_block_is_replaced_per_benchmark(tmp_path):
    docs = tmp_path / "benchmarks.md"
    docs.write_text(f"# Benchmarks\n\nintro\n\n{run_all.BEGIN}\n{run_all.END}\n\nnotes\n")
    results = tmp_path / "results"
    results.mkdir()
    (results / "search.md").write_text("search table v1\n")
    (results / "pruning.md").write_text("pruning table\n")
    run_all.update_docs(docs, results, ["search", "pruning"])
    (results / "search.md").write_text("search table v2\n")
    run_all.update_docs(docs, results, ["search"])
    text = docs.read_text()
    assert text.startswith("# Benchmarks\n\nintro\n\n") and text.endswith("\n\nnotes\n")
    assert "pruning table" in text and "search table v2" in text and "v1" not in text
    assert text.index("Pruning") < text.index("Search")  # the docs' order, not the run's
    run_all.update_docs(docs, results, ["search"])
    assert docs.read_text() == text
