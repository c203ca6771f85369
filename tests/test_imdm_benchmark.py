"""Keeps experiments/benchmarks/imdm.py working: its --quick run and the fields of its results
(sampling of the masked model and IMDM at every number of steps with and without skipping,
the four distillation updates, the yardstick, the machine and its load)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "experiments" / "benchmarks" / "imdm.py"


def positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_quick_run_writes_consistent_results(tmp_path):
    out = tmp_path / "imdm.json"
    subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--matmul-reps=1", f"--out={out}"],
        check=True, cwd=REPO, capture_output=True, text=True,
    )
    results = json.loads(out.read_text())
    settings = results["settings"]
    assert settings["quick"] and settings["parts"] == ["sample", "train"]
    w = settings["workload"]
    assert len(results["machine"]["load_average_at_start"]) == 3
    assert len(results["machine"]["load_average_at_end"]) == 3
    assert positive(results["matmul"]["gflops"])
    # IMDM's mask MLP adds 4 d D_eps + 4 d^2 weights per token (D_eps = d).
    extra = settings["matmul_params"]["imdm"] - settings["matmul_params"]["mdm"]
    assert extra == 8 * w["width"] ** 2

    cases = results["sample"]["cases"]
    assert [c["steps"] for c in cases] == w["steps"] == [1, 8]
    for case in cases:
        for model in ("mdm", "imdm"):
            without, skipping = case[model]["no_skip"], case[model]["skip"]
            assert without["nfe"] == case["steps"]  # every step calls the network
            assert 1 <= skipping["nfe"] <= case["steps"]
            for record in (without, skipping):
                for field in ("median_s", "tokens_per_s", "flops", "gflops", "mfu"):
                    assert positive(record[field]), (model, field, record[field])
                tokens = record["tokens_per_s"] * record["median_s"]
                assert abs(tokens - w["batch"] * w["length"]) < 1e-6 * tokens
                assert record["fraction_masked"] == 0.0  # sampling ends with every token
        ratios = case["imdm_over_mdm_time"]
        assert ratios["no_skip"] == (
            case["imdm"]["no_skip"]["median_s"] / case["mdm"]["no_skip"]["median_s"]
        )
        assert positive(ratios["skip"])
        assert all(positive(v) for v in case["imdm_over_mdm_time_paired"].values())
        assert positive(case["load_average_after"])

    updates = results["train"]["updates"]
    assert list(updates) == ["mdm_elbo", "imdm_elbo", "mdm_sdtt", "imdm_sdtt"]
    for name, record in updates.items():
        fields = ("median_s", "updates_per_s", "gflops", "mfu", "time_over_mdm_elbo",
                  "time_over_mdm_elbo_paired")
        for field in fields:
            assert positive(record[field]), (name, field, record[field])
        assert math.isfinite(record["final_loss"])
        assert record["compilations"] == 1
    assert updates["mdm_elbo"]["time_over_mdm_elbo"] == 1.0
    assert updates["mdm_elbo"]["time_over_mdm_elbo_paired"] == 1.0
    assert results["table"][-1].startswith("--quick")
    assert isinstance(results["under_load"], bool)
