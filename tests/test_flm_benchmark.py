"""Keeps experiments/benchmarks/flm.py working: its --quick run and the fields of its results
(FLM and MDM updates, the samplers at every number of steps, FMLM's one step, the memory of the
compiled updates, the yardstick and the load)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "experiments" / "benchmarks" / "flm.py"


def positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_quick_run_writes_consistent_results(tmp_path):
    out = tmp_path / "flm.json"
    subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--matmul-reps=1", f"--out={out}"],
        check=True, cwd=REPO, capture_output=True, text=True,
    )
    results = json.loads(out.read_text())
    w = results["settings"]["workload"]
    assert positive(results["matmul"]["gflops"])
    assert len(results["machine"]["load_average_at_start"]) == 3
    train = results["train"]
    for kind in ("flm", "mdm"):
        assert positive(train[kind]["median_s"]) and positive(train[kind]["tokens_per_s"])
        assert train[kind]["tokens_per_s"] == w["batch"] * w["length"] / train[kind]["median_s"]
    assert train["flm_over_mdm_time"] == train["flm"]["median_s"] / train["mdm"]["median_s"]
    sample = results["sample"]
    for steps in w["steps"]:
        assert sample[f"flm_{steps}"]["nfe"] == steps == sample[f"mdm_{steps}"]["nfe"]
        speedup = sample["fmlm_1_speedup_over_flm"][str(steps)]
        assert speedup == sample[f"flm_{steps}"]["median_s"] / sample["fmlm_1"]["median_s"]
    assert sample["fmlm_1"]["nfe"] == 1 and sample["fmlm_stage_one_1"]["nfe"] == 2
    memory = results["memory"]
    assert memory["state_bytes_per_sequence"] == 4 * w["memory_vocab"] * w["memory_length"]
    assert positive(memory["flm"]["temp_bytes"]) and positive(memory["mdm"]["temp_bytes"])
    assert results["table"][-1].startswith("--quick")
