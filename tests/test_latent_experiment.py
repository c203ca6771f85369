"""experiments/latent/run.py end to end at 3 updates per run (slow: about 4 minutes): the
autoencoder trains and exports, the latent stores are written, the LPL and baseline runs and
the two conditioning models sample, and every reported number is finite."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_latent_experiment_runs_end_to_end(tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, os.path.join(ROOT, "experiments", "latent", "run.py"),
               f"--workdir={tmp_path / 'runs'}", f"--out={out}", "--steps=3",
               "--leak-samples=20"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert set(results["lpl"]) == {"baseline", "lpl"}
    assert set(results["leak"]) == {"disentangled", "shared_adaln"}
    numbers = [x for part in ("lpl", "leak") for run in results[part].values()
               for v in run.values() for x in (v if isinstance(v, list) else [v])]
    assert all(math.isfinite(v) for v in numbers)
    for picture in ("autoencoder.png", "lpl_samples.png", "leak_samples.png"):
        assert (out / picture).stat().st_size > 0
