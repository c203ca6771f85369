"""The objective "setvae" on the shared trainer: its loss is the summed Chamfer distance plus
the warmed-up beta times the KL, computed by hand from the model; the smoke configs train,
sample and evaluate (with the point-cloud metrics against held-out sets); bad settings are
refused by the config check."""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax import data
from flowjax.train import inference, load_config_file, train
from flowjax.train.config import ConfigError, validate_config
from flowjax.train.objectives import build_objective

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def config_of(name: str, variant: str = "smoke"):
    return load_config_file(os.path.join(ROOT, "configs", "setvae", f"{name}.py"), variant)


def test_loss_is_summed_chamfer_plus_warmed_up_beta_kl():
    from flax import nnx

    from flowjax.train import registry

    config = config_of("shapes")
    objective = build_objective(config)
    assert [float(objective.schedule_inputs(jnp.asarray(s))["kl_weight"]) for s in (0, 1, 2, 5)] \
        == [0.0, 0.5, 1.0, 1.0]
    batch = next(data.build_dataset(config.data, global_batch_size=4, seed=0))
    batch = {k: jnp.asarray(v) for k, v in batch.items()}
    entry = registry.MODELS["setvae"]
    model = entry.cls(batch["x"].shape[1:], rngs=nnx.Rngs(0), **{
        k: config.model[k] for k in entry.defaults})
    inputs = {**objective.draw_step_noise(jax.random.key(0), batch),
              "kl_weight": jnp.full((4,), 0.25)}
    reconstruction, kl = model(batch["x"], batch["mask"], inputs["seed"])
    squared = np.sum((np.asarray(reconstruction)[:, :, None] - np.asarray(batch["x"])[:, None])
                     ** 2, axis=-1)
    chamfer_sum = squared.min(axis=2).sum(axis=1) + squared.min(axis=1).sum(axis=1)
    expected = np.mean(chamfer_sum + 0.25 * np.asarray(kl))
    np.testing.assert_allclose(objective.loss(model, inputs), expected, rtol=1e-4)


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) for n in ("shapes", "multimnist")]
)
def test_smoke_config_trains_samples_and_evaluates(tmp_path, name):
    config = config_of(name)
    train(config, str(tmp_path))
    drawn = inference.sample(config, str(tmp_path))
    inference.evaluate(config, str(tmp_path), samples=drawn["samples"])
    with open(tmp_path / "metrics.json") as f:
        metrics = json.load(f)
    assert metrics["reconstruction_chamfer"] > 0 and metrics["kl_per_set"] >= 0
    if name == "shapes":  # sets of one size: prior samples against held-out sets
        for key in ("mmd_cd", "cov_cd", "1nna_cd", "mmd_emd", "cov_emd", "1nna_emd"):
            assert np.isfinite(metrics[key]), key
        assert 0 <= metrics["cov_cd"] <= 1 and 0 <= metrics["1nna_emd"] <= 1
    else:  # sets of different sizes: no sample metrics
        assert "mmd_cd" not in metrics
    samples = np.load(tmp_path / "samples.npy")
    assert samples.shape == (config.sample.num_samples, *data.event_shape(config.data))
    assert np.all(np.isfinite(samples))


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(evaluate=dict(set_distances=("hausdorff",))), "set_distances"),
        (dict(loss=dict(kl_warmup_steps=-1)), "kl_warmup_steps"),
        (dict(model=dict(name="mlp")), "SetVAE"),
    ],
)
def test_bad_settings_are_refused(change, message):
    config = config_of("shapes")
    for section, values in change.items():
        if section == "model" and values.get("name") == "mlp":
            config.model = load_config_file(os.path.join(ROOT, "configs", "fm_guide",
                                                         "checkerboard.py")).model
        else:
            config[section].update(values)
    with pytest.raises(ConfigError, match=message):
        validate_config(config)
