"""The trainer with the Riemannian flow-matching objective: config checks and a train / sample /
evaluate run of the torus config (the sphere config from the command line is marked slow)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from train_testing import repo_config, run_cli, set_field

from flowjax import main
from flowjax.train import registry, validate_config


def _plain_mlp(c):
    c.model = registry.model_defaults("mlp")
    return c


def _planar_data(c):
    c.data.name = "checkerboard"
    c.path.manifold = ""
    return c


BAD_CONFIGS = {
    "manifold unlike the data's": (
        set_field("path", "manifold", "S2"), r"lives on FlatTorus\(dim=2\)"
    ),
    "no manifold for planar data": (_planar_data, "Set path.manifold"),
    "unreadable manifold": (set_field("path", "manifold", "torus"), "Cannot read the manifold"),
    "model without a manifold": (_plain_mlp, "'mlp' does not take a manifold"),
    "non-convex scheduler": (
        set_field("path", "scheduler", "cosine"), r"'path.scheduler' must be one of \['cond_ot'"
    ),
    "adaptive solver": (set_field("sample", "method", "dopri5"), "'sample.method' must be one of"),
    "unknown manifold update": (
        set_field("sample", "manifold_update", "retract"), "'sample.manifold_update' must be one of"
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_riemannian_configs_are_refused(case):
    mutate, message = BAD_CONFIGS[case]
    config = mutate(repo_config("configs/riemannian/torus.py", "smoke"))
    with pytest.raises(ValueError, match=message):
        validate_config(config)


def test_torus_config_trains_samples_and_evaluates(tmp_path):
    config = repo_config("configs/riemannian/torus.py", "smoke")
    config.train.num_steps = 10
    lines = main.run(config, str(tmp_path), "train")
    assert any("Metrics:" in line for line in lines)
    samples = np.load(tmp_path / "samples.npy")
    trajectories = np.load(tmp_path / "trajectories.npy")
    assert samples.shape == (512, 2) and trajectories.shape == (6, 64, 2)
    assert np.all((trajectories >= 0.0) & (trajectories < 2 * math.pi))  # on the torus
    with open(tmp_path / "metrics.json") as f:
        metrics = json.load(f)
    assert metrics["step"] == 10
    assert metrics["true_nll_nats"] == pytest.approx(2.57, abs=0.1)  # the mixture's entropy
    # Barely trained, the model is still close to the uniform base: NLL near 2 log(2 pi).
    assert abs(metrics["nll_nats"] - 2 * math.log(2 * math.pi)) < 0.3
    assert metrics["nll_bits_per_dim"] == pytest.approx(metrics["nll_nats"] / (2 * math.log(2)))


@pytest.mark.slow
def test_sphere_config_runs_from_the_command_line(tmp_path):
    result = run_cli(
        "--config=configs/riemannian/sphere.py:smoke", f"--workdir={tmp_path}", timeout=600
    )
    assert result.returncode == 0, result.stderr[-5000:]
    samples = np.load(tmp_path / "samples.npy")
    np.testing.assert_allclose(np.linalg.norm(samples, axis=1), 1.0, rtol=1e-5)
    with open(tmp_path / "metrics.json") as f:
        metrics = json.load(f)
    assert np.isfinite(metrics["nll_nats"]) and metrics["true_nll_nats"] < metrics["nll_nats"]
