"""The shared machinery of experiments/benchmarks/ (harness.py): timing, FLOP and MFU arithmetic,
the machine tag, the shared weights, the exchange with a peer process and the results files.

Fast: no network is compiled; the matmul yardstick runs at size 8 and the peer process is a
plain Python script in this environment (no torch needed).
"""

import argparse
import importlib.util
import json
import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "experiments" / "benchmarks"


@pytest.fixture(scope="module")
def harness():
    spec = importlib.util.spec_from_file_location("benchmark_harness", BENCHMARKS / "harness.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_time_calls_warms_up_then_times_every_rep(harness):
    calls, synced = [], []

    def fn():
        calls.append(len(calls))
        return len(calls)

    times, out = harness.time_calls(fn, lambda x: synced.append(x) or x, reps=3, warmup=2)
    assert len(calls) == 5 and synced == [1, 2, 3, 4, 5]
    assert out == 5 and len(times) == 3 and all(t >= 0 for t in times)
    times, out = harness.time_calls(fn, lambda x: x, reps=0, warmup=1)
    assert times == [] and out == 6


def test_median_and_times(harness):
    assert harness.median_and_times([3.0, 1.0, 2.0]) == {
        "median_s": 2.0, "min_s": 1.0, "times_s": [3.0, 1.0, 2.0]
    }
    assert harness.median_and_times([4.0, 1.0])["median_s"] == 2.5


def test_flop_arithmetic(harness):
    # The 2D example's MLP, 3 -> 4 x 512 -> 2: 2 * (3*512 + 3*512*512 + 512*2) per point.
    shapes = [(3, 512)] + [(512, 512)] * 3 + [(512, 2)]
    assert harness.linear_flops(1, shapes) == 1_577_984
    assert harness.linear_flops(10, shapes) == 10 * 1_577_984
    assert harness.matmul_flops(2048) == 2 * 2048**3
    assert harness.gflops(3e9, 1.5) == pytest.approx(2.0)
    assert harness.mfu(30.0, 120.0) == pytest.approx(0.25)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_jax_matmul_yardstick(harness, dtype):
    result = harness.jax_matmul(8, reps=2, dtype=dtype)
    assert set(result) == {"median_s", "min_s", "times_s", "gflops"}
    assert len(result["times_s"]) == 2
    assert result["gflops"] == pytest.approx(2 * 8**3 / result["median_s"] / 1e9)
    with pytest.raises(ValueError, match="float16"):
        harness.jax_matmul(8, reps=1, dtype="float16")


def test_machine_tag(harness):
    machine = {"cpu_model": "AMD EPYC", "cpus_available_to_process": 2, "logical_cpus": 2}
    assert harness.machine_tag(machine) == "amd-epyc-2c"
    machine = {
        "cpu_model": "Intel(R) Xeon(R) CPU @ 2.20GHz",
        "cpus_available_to_process": None,
        "logical_cpus": 8,
    }
    assert harness.machine_tag(machine) == "intel-xeon-8c"
    machine = {"cpu_model": "Processor", "cpus_available_to_process": 4, "logical_cpus": 16}
    assert harness.machine_tag(machine) == "cpu-4c"


def test_describe_machine_records_the_load(harness):
    machine = harness.describe_machine()
    assert machine["logical_cpus"] == os.cpu_count()
    assert set(machine["thread_env"]) == set(harness.THREAD_ENV_VARS)
    if hasattr(os, "getloadavg"):
        assert len(machine["load_average_at_start"]) == 3
        assert isinstance(harness.load_average(), float) and harness.load_average() >= 0
    assert harness.machine_tag(machine).endswith("c")


def test_shared_weights_round_trip(harness):
    shapes = [(3, 4), (4, 4), (4, 2)]
    layers = harness.torch_default_init(np.random.default_rng(0), shapes)
    again = harness.torch_default_init(np.random.default_rng(0), shapes)
    for (w, b), (fan_in, fan_out), (w2, b2) in zip(layers, shapes, again):
        assert w.shape == (fan_in, fan_out) and b.shape == (fan_out,)
        assert w.dtype == np.float32 and b.dtype == np.float32
        assert np.abs(w).max() <= 1 / np.sqrt(fan_in) and np.abs(b).max() <= 1 / np.sqrt(fan_in)
        np.testing.assert_array_equal(w, w2)
        np.testing.assert_array_equal(b, b2)
    arrays = {}
    harness.store_linear_layers(arrays, 4, layers)
    assert sorted(arrays) == ["b4_0", "b4_1", "b4_2", "w4_0", "w4_1", "w4_2"]
    for (w, b), (w2, b2) in zip(harness.stored_linear_layers(arrays, 4, 3), layers, strict=True):
        assert w is w2 and b is b2


def test_flax_weights_are_copied_in_order(harness):
    from flax import nnx

    linears = [nnx.Linear(3, 4, rngs=nnx.Rngs(0)), nnx.Linear(4, 2, rngs=nnx.Rngs(1))]
    weights = harness.torch_default_init(np.random.default_rng(1), [(3, 4), (4, 2)])
    harness.set_flax_linear_weights(linears, weights)
    for linear, (w, b) in zip(linears, weights):
        np.testing.assert_array_equal(np.asarray(linear.kernel[...]), w)
        np.testing.assert_array_equal(np.asarray(linear.bias[...]), b)
    with pytest.raises(ValueError):
        harness.set_flax_linear_weights(linears, weights[:1])


def test_fill_defaults(harness):
    args = argparse.Namespace(quick=False, reps=None, matmul_size=512)
    harness.fill_defaults(args, {"reps": (7, 2), "matmul_size": (2048, 256)})
    assert args.reps == 7 and args.matmul_size == 512
    args = argparse.Namespace(quick=True, reps=None)
    harness.fill_defaults(args, {"reps": (7, 2)})
    assert args.reps == 2


def test_results_path(harness, tmp_path):
    machine = {"cpu_model": "AMD EPYC", "cpus_available_to_process": 2, "logical_cpus": 2}
    args = argparse.Namespace(out=None, tag=None, quick=False, no_peer=False)
    path = harness.results_path("vs_flow_matching", args, machine)
    assert path == BENCHMARKS / "results" / "vs_flow_matching_amd-epyc-2c.json"
    args = argparse.Namespace(out=None, tag="box", quick=True, no_peer=True)
    path = harness.results_path("trainer_overhead", args, machine)
    assert path.name == "trainer_overhead_box_quick_flowjax_only.json"
    args = argparse.Namespace(out=tmp_path / "r.json", tag="box", quick=True, no_peer=False)
    assert harness.results_path("trainer_overhead", args, machine) == tmp_path / "r.json"
    assert harness.results_file("image_models", "cpu_bf16").name == "image_models_cpu_bf16.json"


def test_write_results_prints_the_table_and_keeps_it_last(harness, tmp_path, capsys):
    report = {**harness.report_header("a benchmark"), "rows": [{"x": 1.5}]}
    out = tmp_path / "sub" / "results.json"
    harness.write_results(out, report, "a | b\n--+--\n1 | 2")
    assert capsys.readouterr().out == "a | b\n--+--\n1 | 2\n"
    written = json.loads(out.read_text())
    assert list(written) == ["benchmark", "date", "command", "rows", "table"]
    assert written["table"] == ["a | b", "--+--", "1 | 2"] and "table" not in report
    harness.write_results(out, {"rows": []})
    assert json.loads(out.read_text()) == {"rows": []}


def test_benchmark_running_flag(harness, tmp_path, monkeypatch):
    flag = tmp_path / "benchmark_running"
    monkeypatch.setattr(harness, "FLAG_FILE", str(flag))
    with harness.benchmark_running_flag():
        assert flag.read_text() == f"{os.getpid()}\n"
    assert not flag.exists()
    with pytest.raises(RuntimeError), harness.benchmark_running_flag():
        raise RuntimeError("a failed measurement")
    assert not flag.exists()


PEER_SCRIPT = """
import argparse
import sys

sys.path.insert(0, {benchmarks!r})
import harness

parser = argparse.ArgumentParser()
harness.add_peer_arguments(parser)
args = parser.parse_args()
assert args.peer
spec, inputs = harness.read_exchange(args.exchange)
env = {{"spec": spec, "inputs": sorted(inputs)}}
outputs = {{name: {{"double": 2 * x}} for name, x in inputs.items()}} if inputs else None
harness.write_exchange(args.exchange, env, outputs)
"""


def test_run_peer_exchanges_spec_inputs_and_outputs(harness, tmp_path, monkeypatch):
    script = tmp_path / "peer_side.py"
    script.write_text(textwrap.dedent(PEER_SCRIPT.format(benchmarks=str(BENCHMARKS))))
    # The peer's interpreter: this one (the script above needs no torch).
    monkeypatch.setattr(harness, "ensure_peer_venv", lambda venv, url: Path(sys.executable))
    args = argparse.Namespace(no_peer=False, peer_venv=tmp_path / "venv", torch_index_url=None)
    inputs = {"a": np.arange(3.0), "b": np.ones((2, 2), np.float32)}
    env, outputs = harness.run_peer(args, script, {"reps": 2}, inputs)
    assert env == {"spec": {"reps": 2}, "inputs": ["a", "b"]}
    assert sorted(outputs) == ["a", "b"]
    np.testing.assert_array_equal(outputs["a"]["double"], 2 * inputs["a"])
    assert outputs["b"]["double"].dtype == np.float32

    env, outputs = harness.run_peer(args, script, {"cases": []})
    assert env == {"spec": {"cases": []}, "inputs": []} and outputs == {}

    args.no_peer = True
    assert harness.run_peer(args, script, {"cases": []}) == (None, {})
