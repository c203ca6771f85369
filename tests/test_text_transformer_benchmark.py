"""Keeps experiments/benchmarks/text_transformer.py working: its --quick flowjax side (no peer)
and the fields of its results, its FLOP count and parameter names against the flax model, and,
where the peer environment is installed, the torch module's logits against flowjax's.

torch is not in the project's environment: the agreement check runs in the script's peer
process (`--check-only`), and is skipped unless the peer's virtual environment is ready (the test
never installs it).
"""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "experiments" / "benchmarks" / "text_transformer.py"
PEER_VENV = REPO / ".peer-venv"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("text_transformer", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_flop_count(bench):
    arch = bench.Arch(width=8, depth=2, heads=2, cond=4)  # MLP width m = 32, f = 256
    b, length, v = 3, 5, 11
    # Per token: N (3 d^2 + d^2 + 2 d m) + d V; attention 4 N B L^2 d; per sequence the
    # conditioning MLP (f c + c^2) and the modulations (N c 6d + c 2d).
    expected = (
        2 * b * length * (2 * (3 * 64 + 64 + 2 * 8 * 32) + 8 * v)
        + 4 * 2 * b * length**2 * 8
        + 2 * b * (256 * 4 + 4 * 4 + 2 * 4 * 48 + 4 * 16)
    )
    assert bench.forward_flops(arch, b, length, v) == expected
    assert bench.train_flops(arch, b, length, v) == 3 * expected - 2 * b * 256 * 4


def test_parameter_names_and_shapes_are_the_flax_models(bench):
    from flax import nnx

    arch = bench.QUICK_ARCH
    model = bench.flowjax_text_transformer(arch, 13, 8, None)
    flat = nnx.to_flat_state(nnx.state(model, nnx.Param))
    shapes = {".".join(map(str, path)): tuple(v.get_value().shape) for path, v in flat}
    assert shapes == bench.parameter_shapes(arch, 13)
    # Loading the drawn weights puts every one of them in place.
    weights = bench.draw_weights(np.random.default_rng(0), shapes)
    loaded = bench.flowjax_text_transformer(arch, 13, 8, weights)
    np.testing.assert_array_equal(loaded.head.kernel[...], weights["head.kernel"])
    scale = weights["blocks.0.norm1.scale"]
    np.testing.assert_array_equal(loaded.blocks[0].norm1.scale[...], scale)


@pytest.mark.slow
def test_quick_flowjax_side_writes_consistent_results(bench, tmp_path):
    out = tmp_path / "results.json"
    bench.main(["--quick", "--no-peer", "--matmul-reps=1", f"--out={out}"])
    results = json.loads(out.read_text())
    assert results["settings"]["quick"] and results["peer"] is None
    assert len(results["machine"]["load_average_at_start"]) == 3
    assert len(results["machine"]["load_average_at_end"]) == 3
    arch = bench.QUICK_ARCH
    workloads = {w.name: w for w in bench.build_workloads(quick=True)}
    peak = results["flowjax"]["matmul"]["gflops"]
    assert [r["workload"] for r in results["rows"]] == list(workloads)
    for row in results["rows"]:
        w = workloads[row["workload"]]
        # tokens/s is B L over the median time; FLOP/s and MFU follow from the analytic count.
        tokens = row["flowjax_tokens_per_s"] * row["flowjax_s"]
        assert abs(tokens - w.batch * w.length) < 1e-6 * tokens
        assert row["flops"] == bench.workload_flops(arch, w)
        assert abs(row["flowjax_gflops"] - row["flops"] / row["flowjax_s"] / 1e9) < 1e-6
        assert abs(row["flowjax_mfu_of_own_matmul"] - row["flowjax_gflops"] / peak) < 1e-12
        assert "ratio" not in row and "max_abs_diff" not in row  # no peer
        record = results["flowjax"]["workloads"][w.name]
        assert record["compilations"] == (1 if w.group == "train" else 2)
        if w.group == "train":
            assert np.isfinite(record["final_loss"])
    cases = results["sampler"]["cases"]
    assert [c["case"] for c in cases] == [c.name for c in bench.build_sampler_cases(quick=True)]
    for case in cases:
        without, skipping = case["no_skip"], case["skip"]
        assert without["nfe"] == case["steps"]  # one network call per step
        assert 1 <= skipping["nfe"] <= case["steps"]
        assert without["fraction_masked"] == skipping["fraction_masked"] == 0.0
        assert case["speedup"] == without["median_s"] / skipping["median_s"]
    # With one sequence of 16 tokens, at most 16 of the 32 steps reveal anything.
    assert cases[0]["batch"] == 1 and cases[0]["skip"]["nfe"] <= 16
    assert results["table"][-1].startswith("--quick")
    assert isinstance(results["under_load"], bool)
    assert not Path(bench.harness.FLAG_FILE).exists()


def test_torch_module_gives_flowjaxs_logits(bench, tmp_path):
    """Runs only where the peer's environment (.peer-venv, torch) is installed."""
    if not bench.harness.peer_is_ready(bench.harness.peer_python(PEER_VENV)):
        pytest.skip("the peer environment .peer-venv (torch) is not installed")
    out = tmp_path / "check.json"
    bench.main(["--quick", "--check-only", f"--peer-venv={PEER_VENV}", f"--out={out}"])
    results = json.loads(out.read_text())
    assert results["max_abs_logit_diff"] < 1e-4
    for check in results["checks"].values():
        assert check["max_abs_diff"] < 1e-4, check
