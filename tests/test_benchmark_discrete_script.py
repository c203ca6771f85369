"""Keeps experiments/benchmarks/vs_flow_matching_discrete.py working: its flowjax side at a tiny
size, and the weights it loads give the network it describes (checked against NumPy)."""

import dataclasses
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = (
    Path(__file__).resolve().parents[1]
    / "experiments"
    / "benchmarks"
    / "vs_flow_matching_discrete.py"
)


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("vs_flow_matching_discrete", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_flop_count_and_workloads(bench):
    # 2 * (257*128 + 2*128*128 + 128*258) per point and step.
    assert bench.forward_flops(1, 128) == 2 * (257 * 128 + 2 * 128 * 128 + 128 * 258)
    assert [w.name for w in bench.build_workloads(quick=False)] == [
        "discrete_n10000_steps64",
        "discrete_n10000_steps1024",
    ]


def test_flowjax_side_runs_and_loads_the_weights(bench):
    import jax.numpy as jnp
    from flax import nnx

    from flowjax.models import DiscreteMLP

    w = dataclasses.replace(bench.build_workloads(quick=True)[0], n=8, steps=4, hidden=8)
    inputs = bench.make_inputs([w])
    result, outputs = bench.flowjax_run_workload(w, inputs, reps=1, warmup=1)
    assert result["nfe"] == 4 and result["compilations"] == 1 and result["median_s"] > 0
    assert outputs["samples"].shape == (8, 2) and result["fraction_masked"] == 0.0
    assert outputs["samples"].max() < bench.DATA_VOCAB  # the posterior never draws the mask

    # The network the benchmark builds equals a NumPy forward pass of the same weights.
    model = DiscreteMLP(
        (2,),
        vocab_size=bench.VOCAB,
        hidden_dim=8,
        token_embed_dim=8,
        num_layers=3,
        activation="swish",
        time_embedding="raw",
        rngs=nnx.Rngs(0),
    )
    bench.load_weights(model, inputs, 8)
    x, t = np.array([[0, 128], [5, 7]]), 0.3
    h = np.concatenate([inputs["e8"][x].reshape(2, -1), np.full((2, 1), t)], axis=1)
    for k, (weight, bias) in enumerate(bench.layers_of(inputs, 8)):
        h = h @ weight + bias
        if k < bench.NUM_LAYERS:
            h = h / (1.0 + np.exp(-h))
    expected = h.reshape(2, 2, bench.VOCAB)
    np.testing.assert_allclose(model(jnp.asarray(x), t), expected, rtol=1e-4, atol=1e-5)
