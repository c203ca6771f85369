"""The README's Python snippets run as written, in order.

All snippets run in one fresh interpreter (importing JAX and flowjax once instead of once per
snippet): each with its own globals and its own empty working directory, as if pasted into a new
session; each snippet's result is reported by its own test.
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
results = []
for index, block in enumerate(blocks):
    os.chdir(os.path.join(root, str(index)))
    try:
        exec(compile(block, f"<README snippet {index}>", "exec"), {"__name__": "__main__"})
        results.append(None)
    except BaseException:
        results.append(traceback.format_exc())
    sys.stdout.flush()
os.chdir(root)
with open("results.json", "w") as f:
    json.dump(results, f)
"""


@pytest.fixture(scope="module")
def snippet_results(tmp_path_factory):
    work = tmp_path_factory.mktemp("readme")
    for index in range(len(BLOCKS)):
        (work / str(index)).mkdir()
    process = subprocess.run(
        [sys.executable, "-c", RUNNER],
        input=json.dumps(BLOCKS),
        cwd=work,
        capture_output=True,
        text=True,
        timeout=1200,
        env={"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
             "XLA_FLAGS": os.environ.get("XLA_FLAGS", "")},  # conftest's: compile fast
    )
    assert process.returncode == 0, f"The README runner failed:\n{process.stderr[-5000:]}"
    return json.loads((work / "results.json").read_text())


def test_readme_has_snippets():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_snippet_runs(index, snippet_results):
    error = snippet_results[index]
    assert error is None, f"README snippet {index} failed:\n{BLOCKS[index]}\n{error}"
