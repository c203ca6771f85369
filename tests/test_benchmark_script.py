"""Keeps experiments/benchmarks/vs_flow_matching.py working: its flowjax side at a tiny size.

No peer environment is created or used here. The training-step case is marked slow.
"""

import dataclasses
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "benchmarks" / "vs_flow_matching.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("vs_flow_matching", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_flop_counts(bench):
    # 2 * (3*512 + 3*512*512 + 512*2) per point and evaluation.
    assert bench.forward_flops(1, 512) == 1_577_984
    sample = bench.Workload("sample", 1000, 512)
    assert bench.workload_flops(sample, 40, "flowjax") == 40 * 1000 * 1_577_984
    assert bench.workload_flops(sample, 40, "peer") == 40 * 1000 * 1_577_984
    likelihood = bench.Workload("likelihood", 10, 512)
    assert bench.workload_flops(likelihood, 40, "peer") == 3 * 40 * 10 * 1_577_984
    assert bench.workload_flops(likelihood, 40, "flowjax") == 2 * 40 * 10 * 1_577_984


def test_likelihood_matmul_count_matches_the_flop_model(bench):
    """The compiled midpoint likelihood has 10 matmuls on N rows and 5 on D*N rows per step.

    This is what the flowjax FLOP count of the likelihood workload assumes: XLA drops the
    divergence of the midpoint rule's first stage.
    """
    import re

    import jax
    from flax import nnx

    import flowjax

    n, hidden = 7, 32
    w = bench.Workload("likelihood", n, hidden)
    inputs = bench.make_inputs([w])
    graphdef, params = nnx.split(bench.flowjax_mlp(bench.weights_for(inputs, hidden), hidden))

    def log_likelihood(params, x_1):
        return flowjax.solvers.ode_log_likelihood(
            nnx.merge(graphdef, params), x_1, flowjax.solvers.standard_normal_log_density,
            method="midpoint", step_size=0.05, time_grid=(1.0, 0.0), exact_divergence=True,
        )

    hlo = jax.jit(log_likelihood).lower(params, inputs[f"x_{w.name}"]).compile().as_text()
    rows = [int(r) for r in re.findall(r"= f32\[(\d+),\d+\]\S* dot\(", hlo)]
    if not rows:
        pytest.skip("this XLA backend does not lower the matmuls to dot ops")
    assert rows.count(n) == 10 and rows.count(bench.DATA_DIM * n) == 5, sorted(rows)


def test_workload_selection(bench):
    full = bench.build_workloads(quick=False)
    assert [w.name for w in full] == [
        "train_n4096", "sample_n1000", "sample_n50000", "small_n1000", "likelihood_n10000"
    ]
    assert {w.group for w in bench.build_workloads(quick=True, only=["sample"])} == {"sample"}


def test_small_sampling_workload_runs(bench):
    small = dataclasses.replace(bench.build_workloads(quick=True, only=["small"])[0], n=8)
    inputs = bench.make_inputs([small])
    result, outputs = bench.flowjax_run_workload(small, inputs, reps=1, train_steps=1, warmup=1)
    assert result["nfe"] == 100  # 100 Euler steps of 0.01
    assert result["compilations"] == 1
    assert result["median_s"] > 0 and result["gflops"] > 0
    assert outputs["x_1"].shape == (8, 2) and np.all(np.isfinite(outputs["x_1"]))


@pytest.mark.slow  # compiling the gradient and Adam step takes a few seconds
def test_train_workload_runs(bench):
    train = bench.Workload("train", 16, 16)
    inputs = bench.make_inputs([train])
    result, _ = bench.flowjax_run_workload(train, inputs, reps=1, train_steps=2, warmup=1)
    assert result["compilations"] == 1
    assert np.isfinite(result["final_loss"])
