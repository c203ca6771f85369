"""The objective "classification" on the shared trainer: its loss is the members' summed
cross-entropy (BatchEnsemble: the mean) plus L2 on the kernels, computed by hand; bad settings
(a model with another number of classes than the data, mismatched sample and evaluation
sizes) are refused before compiling; a smoke config trains, predicts and evaluates."""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flowjax import data
from flowjax.train import inference, load_config_file, registry, train
from flowjax.train.config import ConfigError, validate_config
from flowjax.train.objectives import build_objective

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def config_of(variant: str):
    return load_config_file(os.path.join(ROOT, "configs", "uncertainty", "digits.py"), variant)


@pytest.mark.parametrize(
    "method", ["ensemble", pytest.param("batchensemble", marks=pytest.mark.slow)])
def test_loss_is_the_members_cross_entropy_plus_l2(method):
    config = config_of(f"{method},smoke")
    config.loss.l2 = 0.01
    objective = build_objective(config)
    batch = next(data.build_dataset(config.data, global_batch_size=4, seed=0))
    batch = objective.draw_step_noise(jax.random.key(0), {k: jnp.asarray(v)
                                                         for k, v in batch.items()})
    model = registry.build_model(config.model, (8, 8, 1), 10, nnx.Rngs(0))
    log_p, labels = model.train_log_probs(batch["x"], batch["label"],
                                          jax.random.key(batch["seed"][0]))
    nll = -np.take_along_axis(np.asarray(log_p), np.asarray(labels)[..., None], -1)[..., 0]
    data_term = nll.mean(1).sum() if method == "ensemble" else nll.mean()
    params = nnx.state(model, nnx.Param)
    l2 = sum(float(jnp.sum(leaf ** 2)) for path, leaf in
             jax.tree_util.tree_leaves_with_path(params) if "kernel" in jax.tree_util.keystr(path))
    np.testing.assert_allclose(objective.loss(model, batch), data_term + 0.01 * l2, rtol=1e-5)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(model=dict(output_classes=7)), "output_classes=7"),
        (dict(sample=dict(num_samples=4)), "sample.num_samples"),
        (dict(evaluate=dict(corruptions=("fog",))), "evaluate.corruptions"),
        (dict(model=dict(method="bayes")), "model.method"),
    ],
)
def test_bad_settings_are_refused(change, message):
    config = config_of("smoke")
    for section, values in change.items():
        config[section].update(values)
    with pytest.raises(ConfigError, match=message):
        validate_config(config)


@pytest.mark.slow
def test_smoke_config_trains_predicts_and_evaluates(tmp_path):
    config = config_of("ensemble,smoke")
    train(config, str(tmp_path))
    drawn = inference.sample(config, str(tmp_path))
    inference.evaluate(config, str(tmp_path), samples=drawn["samples"])
    with open(tmp_path / "metrics.json") as f:
        metrics = json.load(f)
    groups = 1 + 2 + 2 * 2  # held-out, two OOD sets, two corruptions at two severities
    probs = np.load(tmp_path / "samples.npy")
    assert probs.shape == (groups * 8, 10)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert 0 <= metrics["accuracy"] <= 1 and metrics["nll"] > 0 and 0 <= metrics["ece"] <= 1
    for key in ("ood_auroc_uniform_noise", "ood_auroc_inverted", "corrupt_accuracy_s5",
                "corrupt_nll", "corrupt_accuracy_contrast"):
        assert np.isfinite(metrics[key]), key
    members = np.load(tmp_path / "trajectories.npy")  # (members, inputs, K), swapped by sample
    assert members.shape == (2, 4, 10)
