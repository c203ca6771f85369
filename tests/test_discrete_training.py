"""The trainer with the discrete flow-matching objective: config checks, exact gradient
accumulation, and a full train / sample / evaluate run of a discrete checkerboard config."""

from __future__ import annotations

import json

import numpy as np
import pytest
from train_testing import flat_state, losses, repo_config, run_cli, set_field

from flowjax import data, main
from flowjax.train import default_config, registry, train, validate_config


def tiny_discrete_config(**overrides):
    config = default_config("discrete_flow_matching")
    config.data = dict(source="toy", name="discrete_checkerboard")
    config.model.hidden_dim = 16
    config.model.token_embed_dim = 4
    config.model.num_layers = 2
    config.train.num_steps = 3
    config.train.global_batch_size = 64
    config.train.log_every = 1
    config.evaluate.after_training = False
    for key, value in overrides.items():
        section, name = key.split(".")
        config[section][name] = value
    return config


def test_discrete_checkerboard_toy_is_deterministic_by_index_and_in_its_support():
    batch = data.toy_batch("discrete_checkerboard", 4096, seed=3, index=7)
    assert batch.dtype == np.int32 and batch.shape == (4096, 2)
    assert batch.min() >= 0 and batch.max() < 128
    np.testing.assert_array_equal(batch, data.toy_batch("discrete_checkerboard", 4096, seed=3, index=7))
    assert np.all(np.asarray(data.in_support("discrete_checkerboard", batch)))
    assert not np.any(np.asarray(data.in_support("discrete_checkerboard", [[0, 32], [40, 0]])))
    log_q = np.asarray(data.log_density("discrete_checkerboard", batch))
    np.testing.assert_allclose(log_q, -np.log(8192.0), rtol=1e-6)
    # Both coordinates cover their 128 bins; each square is 32 bins wide.
    assert len(np.unique(batch[:, 0])) == 128 and len(np.unique(batch // 32, axis=0)) == 8
    config = dict(source="toy", name="discrete_checkerboard")
    assert data.vocab_size(config) == 128 and data.event_shape(config) == (2,)
    assert data.vocab_size(dict(source="toy", name="checkerboard")) is None


def _continuous_objective_on_tokens(c):
    fresh = default_config()
    fresh.data = c.data
    return fresh


def _discrete_objective_on_points(c):
    c.data.name = "checkerboard"
    return c


def _continuous_model(c):
    c.model = registry.model_defaults("mlp")
    return c


BAD_CONFIGS = {
    "continuous objective on tokens": (
        _continuous_objective_on_tokens,
        "'flow_matching' trains on continuous data",
    ),
    "discrete objective on points": (
        _discrete_objective_on_points,
        "'discrete_flow_matching' trains on discrete data",
    ),
    "continuous model": (_continuous_model, "'mlp' reads continuous data.*'discrete_mlp'"),
    "metric path from a mask": (set_field("path", "kind", "metric"), "path.source='uniform'"),
    "unknown scheduler": (
        set_field("path", "scheduler", "cosine"),
        r"'path.scheduler' must be one of \['polynomial'",
    ),
    "float64 sampling without x64": (
        set_field("sample", "categorical_dtype", "float64"),
        "JAX_ENABLE_X64=1",
    ),
    "negative corrector": (set_field("sample", "div_free", -1.0), "'sample.div_free' must be >= 0"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_discrete_configs_are_refused(case):
    mutate, message = BAD_CONFIGS[case]
    config = mutate(tiny_discrete_config())
    with pytest.raises(ValueError, match=message):
        validate_config(config)


def test_unknown_objective_is_refused():
    config = tiny_discrete_config()
    config.objective = "score_matching"
    with pytest.raises(ValueError, match="'objective' must be one of"):
        validate_config(config)
    with pytest.raises(ValueError, match="Unknown objective 'score_matching'"):
        default_config("score_matching")


@pytest.mark.slow  # two trainings; the accumulation code is the one test_train.py checks fast
def test_discrete_gradient_accumulation_equals_one_large_batch(tmp_path):
    """The source, time and path draws are made for the global batch, so 4 micro-batches of 16
    take the same steps as one batch of 64."""
    settings = {"optim.ema_decay": 0.0}
    one = flat_state(train(tiny_discrete_config(**settings), str(tmp_path / "one")))
    four = flat_state(
        train(
            tiny_discrete_config(**settings, **{"train.grad_accum_steps": 4}),
            str(tmp_path / "four"),
        )
    )
    np.testing.assert_allclose(losses(tmp_path / "one"), losses(tmp_path / "four"), rtol=1e-5)
    for key in one:
        np.testing.assert_allclose(one[key], four[key], rtol=1e-4, atol=1e-6, err_msg=key)


def test_discrete_config_trains_samples_and_evaluates(tmp_path):
    config = repo_config("configs/kinetic_optimal/checkerboard.py", "mask,smoke")
    lines = main.run(config, str(tmp_path), "train")
    assert any("Metrics:" in line for line in lines)
    samples = np.load(tmp_path / "samples.npy")
    assert samples.shape == (512, 2) and samples.dtype == np.int32
    assert samples.min() >= 0 and samples.max() < 128
    assert np.load(tmp_path / "trajectories.npy").shape == (6, 64, 2)
    for plot in ("samples.png", "trajectories.png"):
        assert (tmp_path / "plots" / plot).stat().st_size > 0
    with open(tmp_path / "metrics.json") as f:
        metrics = json.load(f)
    assert metrics["step"] == 12
    assert np.isfinite(metrics["nelbo_bits_per_token"]) and metrics["nelbo_bits_per_token"] > 6.5
    assert metrics["true_nll_bits_per_token"] == pytest.approx(6.5)
    assert 0.0 <= metrics["fraction_in_support"] <= 1.0


@pytest.mark.slow
@pytest.mark.parametrize(
    "config",
    [
        "configs/fm_guide/discrete_checkerboard.py:mask,smoke",
        "configs/fm_guide/discrete_checkerboard.py:uniform,smoke",
        "configs/kinetic_optimal/checkerboard.py:mask,smoke",
        "configs/kinetic_optimal/checkerboard.py:uniform,smoke",
        "configs/kinetic_optimal/checkerboard.py:metric,smoke",
    ],
)
def test_discrete_configs_run_from_the_command_line(config, tmp_path):
    result = run_cli(f"--config={config}", f"--workdir={tmp_path}", timeout=600)
    assert result.returncode == 0, result.stderr[-5000:]
    with open(tmp_path / "metrics.json") as f:
        assert np.isfinite(json.load(f)["nelbo_bits_per_token"])
