"""Keeps experiments/benchmarks/image_models.py working: its --quick mode (tiny networks); slow,
like the other benchmarks' harness checks (run with `make test-slow` before benchmarking)."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "benchmarks" / "image_models.py"


@pytest.mark.slow
def test_quick_benchmark_writes_consistent_results(tmp_path):
    spec = importlib.util.spec_from_file_location("image_models", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    out = tmp_path / "results.json"
    module.main(["--quick", "--models=dit_b2", "--reps=1", "--matmul-size=256",
                 "--train-batch=2", "--sample-batch=2", "--sample-steps=2", f"--out={out}"])
    results = json.loads(out.read_text())
    (record,) = results["models"]
    train, sample = record["train"], record["sample"]
    # images/s is the batch over the median time; MFU the achieved over the peak FLOP/s.
    assert abs(train["images_per_s"] - 2 / train["median_s"]) < 1e-9 * train["images_per_s"]
    assert sample["nfe"] == 4
    peak = results["matmul_peak"]["gflops"]
    assert abs(sample["mfu"] - sample["achieved_gflops"] / peak) < 1e-12
    # An update costs more than a forward pass of the same batch (backward ~ 2x forward).
    assert train["flops_per_step"] > 2 * sample["flops_per_call"] / sample["nfe"]
    assert not Path(module.harness.FLAG_FILE).exists()
