"""The latent ImageNet configs of the LPL and conditioning papers (configs/lpl/,
configs/conditioning/): their smoke variants train and sample on a small latent store with the
test autoencoder's decoder, and their settings are the papers'."""

from __future__ import annotations

import os

import numpy as np
import pytest

from flowjax.data.sources import write_array_record
from flowjax.train import load_config_file, sample, train, validate_config

CHECKPOINT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "autoencoder_tiny")


@pytest.fixture(scope="module")
def latents_256(tmp_path_factory):
    rng = np.random.default_rng(0)
    z = (0.5 * rng.normal(size=(16, 32, 32, 4))).astype(np.float32)
    path = str(tmp_path_factory.mktemp("latents") / "latents-00000-of-00001.array_record")
    return write_array_record(path, z, rng.integers(0, 1000, 16))


@pytest.mark.parametrize("config_arg", [
    pytest.param("configs/lpl/imagenet256.py:smoke", marks=pytest.mark.slow),
    "configs/conditioning/imagenet256.py:smoke",
])
def test_latent_smoke_configs_train_and_sample(config_arg, latents_256, tmp_path):
    path, variant = config_arg.split(":")
    config = load_config_file(path, variant)
    config.data.path = latents_256
    config.data.num_classes = 1000
    if config.loss.lpl_weight > 0:
        config.loss.lpl_autoencoder = CHECKPOINT
    config.evaluate.after_training = False
    train(config, str(tmp_path))
    samples = sample(config, str(tmp_path))["samples"]
    assert samples.shape == (16, 32, 32, 4) and np.all(np.isfinite(samples))


def test_latent_configs_hold_the_papers_settings():
    lpl = load_config_file("configs/lpl/imagenet256.py")
    assert (lpl.model.size, lpl.model.patch_size, lpl.model.image_size) == ("XL", 2, 32)
    assert (lpl.loss.lpl_weight, lpl.loss.lpl_t_min) == (1.0, 0.8)
    assert load_config_file("configs/lpl/imagenet512.py", "baseline").loss.lpl_weight == 0.0
    cond = load_config_file("configs/conditioning/imagenet256.py")
    assert (cond.model.conditioning, cond.model.control_schedule, cond.model.control_dim) == (
        "attention", "cosine", 1)
    adaln = load_config_file("configs/conditioning/imagenet256.py", "adaln")
    assert (adaln.model.conditioning, adaln.model.control_schedule) == ("adaln", "constant")
    transfer = load_config_file("configs/conditioning/imagenet512.py")
    assert transfer.model.image_size == 64 and transfer.model.position_base_grid == 16
    assert transfer.path.resolution_shift == 2.0
    with pytest.raises(ValueError, match="Unknown variant"):
        load_config_file("configs/lpl/imagenet256.py", "adaln")


def test_latent_config_without_its_files_is_refused():
    from flowjax.train import ConfigError

    with pytest.raises(ConfigError, match="data.path is not set"):
        validate_config(load_config_file("configs/lpl/imagenet256.py", "smoke"))
