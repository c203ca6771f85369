"""Training the KL autoencoder (objective "autoencoder") and writing it as a diffusers
checkpoint: the loss against its closed form and a Monte-Carlo KL, the checkpoint writer
against the diffusers file it was read from (name for name, bit for bit), and a digits run
that trains, exports with its measured scaling factor and loads back."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flowjax import losses
from flowjax.models import load_autoencoder_kl
from flowjax.models.autoencoder import autoencoder_for_images
from flowjax.models.convert_autoencoder import WEIGHTS, save_autoencoder_kl

CHECKPOINT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "autoencoder_tiny")


def test_gaussian_kl_is_the_monte_carlo_kl():
    key_mean, key_var, key_z = jax.random.split(jax.random.key(0), 3)
    mean = jax.random.normal(key_mean, (2, 3))
    logvar = 0.5 * jax.random.normal(key_var, (2, 3))
    z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(key_z, (200_000, 2, 3))
    log_q = -0.5 * ((z - mean) ** 2 / jnp.exp(logvar) + logvar + jnp.log(2 * jnp.pi))
    log_p = -0.5 * (z**2 + jnp.log(2 * jnp.pi))
    monte_carlo = jnp.mean(jnp.sum(log_q - log_p, axis=-1), axis=0)
    np.testing.assert_allclose(losses.gaussian_kl(mean, logvar), monte_carlo, rtol=0.02)


def test_autoencoder_loss_is_pixel_error_plus_weighted_kl():
    model = autoencoder_for_images((8, 8, 1), block_out_channels=(16, 32), layers_per_block=1,
                                   latent_channels=2, norm_num_groups=8, rngs=nnx.Rngs(0))
    x = jax.random.uniform(jax.random.key(1), (3, 8, 8, 1), minval=-1, maxval=1)
    eps = jax.random.normal(jax.random.key(2), (3, 4, 4, 2))
    total, terms = losses.autoencoder_loss(model, x, eps, reconstruction="l2", kl_weight=0.5)
    mean, logvar = model.encode(x)
    x_hat = model.decode(mean + jnp.exp(0.5 * logvar) * eps)
    np.testing.assert_allclose(terms["reconstruction"], jnp.mean((x_hat - x) ** 2, (1, 2, 3)),
                               rtol=1e-5)
    kl = 0.5 * jnp.sum(mean**2 + jnp.exp(logvar) - 1 - logvar, (1, 2, 3)) / 64
    np.testing.assert_allclose(terms["kl"], kl, rtol=1e-5)
    np.testing.assert_allclose(total, terms["reconstruction"] + 0.5 * kl, rtol=1e-6)
    with pytest.raises(ValueError, match="latent shape"):
        losses.autoencoder_loss(model, x, eps[:, :2])
    with pytest.raises(ValueError, match="reconstruction"):
        losses.autoencoder_loss(model, x, eps, reconstruction="lpips")


def test_the_writer_gives_back_the_diffusers_checkpoint_it_read(tmp_path):
    from safetensors.numpy import load_file

    written = save_autoencoder_kl(load_autoencoder_kl(CHECKPOINT), tmp_path / "copy")
    original = load_file(os.path.join(CHECKPOINT, WEIGHTS))
    copy = load_file(os.path.join(written, WEIGHTS))
    assert set(copy) == set(original)
    for name, value in original.items():
        np.testing.assert_array_equal(copy[name], value, err_msg=name)
    assert load_autoencoder_kl(written).config == load_autoencoder_kl(CHECKPOINT).config


def digits_autoencoder_config():
    from flowjax.train import default_config

    config = default_config("autoencoder")
    config.data = dict(source="digits")
    config.evaluate.data = dict(split="test", shuffle=False)
    config.model.update(block_out_channels=(16, 32), layers_per_block=1, latent_channels=2,
                        norm_num_groups=8)
    config.train.update(num_steps=30, global_batch_size=32, log_every=10)
    config.optim.learning_rate = 3e-3
    config.checkpoint.every_steps = 1000
    config.evaluate.update(num_points=64, batch_size=32, after_training=False)
    config.sample.update(num_samples=8, batch_size=8)
    return config


@pytest.mark.slow
def test_digits_autoencoder_trains_exports_and_loads(tmp_path):
    from flowjax.train import sample, train
    from flowjax.train.inference import export_autoencoder

    config = digits_autoencoder_config()
    train(config, str(tmp_path))
    recon = sample(config, str(tmp_path))["samples"]
    assert recon.shape == (8, 8, 8, 1)
    result = export_autoencoder(config, str(tmp_path))
    m = result["metrics"]
    assert m["reconstruction_rmse"] < 0.9  # better than predicting 0 for every pixel (about 1)
    np.testing.assert_allclose(m["reconstruction_psnr_db"],
                               10 * np.log10(4 / m["reconstruction_rmse"] ** 2), rtol=1e-6)
    np.testing.assert_allclose(m["scaling_factor"] * m["latent_std"], 1.0, rtol=1e-6)
    loaded = load_autoencoder_kl(result["files"]["autoencoder"])
    assert loaded.config.scaling_factor == pytest.approx(m["scaling_factor"], rel=1e-6)
    from flowjax import data

    test = next(data.build_dataset(dict(source="digits", split="test", shuffle=False),
                                   global_batch_size=8, seed=config.seed))["x"]
    reconstruct = nnx.jit(lambda model, x: model.decode(model.encode(x)[0]))
    np.testing.assert_allclose(reconstruct(loaded, jnp.asarray(test)), recon, atol=1e-5)


def test_bad_autoencoder_configs_are_refused():
    from flowjax.train import ConfigError, registry, validate_config

    config = digits_autoencoder_config()
    config.model.block_out_channels = (16, 32, 32, 32, 32)  # f = 16 does not divide 8
    with pytest.raises(ConfigError, match="multiples"):
        validate_config(config)
    config = digits_autoencoder_config()
    config.model = registry.model_defaults("mlp")
    with pytest.raises(ConfigError, match="autoencoder_kl"):
        validate_config(config)


@pytest.mark.slow
def test_cli_trains_and_exports_the_digits_autoencoder(tmp_path):
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    base = [sys.executable, "-m", "flowjax.main",
            "--config=configs/lpl/digits.py:autoencoder,smoke", f"--workdir={tmp_path}",
            "--config.evaluate.after_training=false"]
    for mode in ("train", "export"):
        result = subprocess.run(base + [f"--mode={mode}"], cwd=root, capture_output=True,
                                text=True)
        assert result.returncode == 0, result.stderr[-3000:]
    assert "scaling_factor" in result.stdout
    assert load_autoencoder_kl(tmp_path / "autoencoder").config.in_channels == 1


def test_cli_export_of_another_objective_is_a_plain_error(tmp_path):
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    wrong = subprocess.run(
        [sys.executable, "-m", "flowjax.main", "--config=configs/fm_guide/checkerboard.py:smoke",
         f"--workdir={tmp_path / 'cb'}", "--mode=export"], cwd=root, capture_output=True,
        text=True)
    assert wrong.returncode == 2 and "objective 'autoencoder'" in wrong.stderr
