"""The README's Python snippets run as written, in order.

The snippets run in two fresh interpreters, the even-numbered ones here and the odd-numbered ones
in test_readme_odd.py (two test files, so that a run with `--dist loadfile` can give them to two
workers), each importing JAX and flowjax once instead of once per snippet: each snippet with its
own globals and its own empty working directory, as if pasted into a new session; each snippet's
result is reported by its own test, named by its index in the README.
"""

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)

RUNNER = """
import json, os, sys, traceback
blocks, root = json.loads(sys.stdin.read()), os.getcwd()
results = {}
for index, block in blocks.items():
    os.chdir(os.path.join(root, index))
    try:
        exec(compile(block, f"<README snippet {index}>", "exec"), {"__name__": "__main__"})
        results[index] = None
    except BaseException:
        results[index] = traceback.format_exc()
    sys.stdout.flush()
os.chdir(root)
with open("results.json", "w") as f:
    json.dump(results, f)
"""


def run_snippets(indices, work: pathlib.Path) -> dict[int, str | None]:
    """Runs the snippets `indices` in order in one fresh interpreter: index -> None, or the
    traceback of the snippet's error."""
    for index in indices:
        (work / str(index)).mkdir()
    process = subprocess.run(
        [sys.executable, "-c", RUNNER],
        input=json.dumps({str(index): BLOCKS[index] for index in indices}),
        cwd=work,
        capture_output=True,
        text=True,
        timeout=1200,
        env={"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
             "XLA_FLAGS": os.environ.get("XLA_FLAGS", "")},  # conftest's: compile fast
    )
    assert process.returncode == 0, f"The README runner failed:\n{process.stderr[-5000:]}"
    results = json.loads((work / "results.json").read_text())
    return {int(index): error for index, error in results.items()}


def snippet_tests(indices):
    """A module-scoped fixture that runs the snippets `indices` in one interpreter, and a test per
    snippet: (fixture, test), to be bound to the names `snippet_results` and
    `test_readme_snippet_runs` of a test module."""
    indices = list(indices)

    @pytest.fixture(scope="module")
    def snippet_results(tmp_path_factory):
        return run_snippets(indices, tmp_path_factory.mktemp("readme"))

    @pytest.mark.parametrize("index", indices)
    def test_readme_snippet_runs(index, snippet_results):
        error = snippet_results[index]
        assert error is None, f"README snippet {index} failed:\n{BLOCKS[index]}\n{error}"

    return snippet_results, test_readme_snippet_runs


def test_readme_has_snippets():
    assert len(BLOCKS) >= 3


snippet_results, test_readme_snippet_runs = snippet_tests(range(0, len(BLOCKS), 2))
