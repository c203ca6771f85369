"""The KL autoencoder (flowjax.models.autoencoder) against diffusers' AutoencoderKL: a tiny model
with random weights (tests/data/autoencoder_tiny/, made with its outputs by
tests/reference/make_autoencoder_reference.py) converted by `load_autoencoder_kl` encodes and
decodes as diffusers does; shapes, scaling and bad input."""

from __future__ import annotations

import json
import re
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flowjax.models.autoencoder import AutoencoderConfig, AutoencoderKL
from flowjax.models.convert_autoencoder import load_autoencoder_kl

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
CHECKPOINT = os.path.join(DATA, "autoencoder_tiny")


@pytest.fixture(scope="module")
def reference():
    with np.load(os.path.join(DATA, "autoencoder_tiny_reference.npz")) as archive:
        return {name: archive[name] for name in archive.files}


@pytest.fixture(scope="module")
def model():
    return load_autoencoder_kl(CHECKPOINT)


def channels_last(x):
    return jnp.asarray(x).transpose(0, 2, 3, 1)


def test_encoding_and_decoding_equal_diffusers(model, reference):
    mean, logvar = nnx.jit(lambda m, x: m.encode(x))(model, channels_last(reference["images"]))
    np.testing.assert_allclose(mean, channels_last(reference["mean"]), atol=1e-4)
    np.testing.assert_allclose(logvar, channels_last(reference["logvar"]), atol=1e-4)
    decoded = nnx.jit(lambda m, z: m.decode(z))(model, channels_last(reference["mean"]))
    np.testing.assert_allclose(decoded, channels_last(reference["decoded"]), atol=1e-4)
    # diffusers' own float32 error on the same weights, for scale
    assert np.abs(reference["float32_decoded"] - reference["decoded"]).max() < 1e-4


def test_config_scaling_and_features(model, reference):
    assert model.config == AutoencoderConfig(
        block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=8
    )
    assert model.config.downsampling == 2
    images = channels_last(reference["images"])
    np.testing.assert_allclose(model.latents(images), 0.18215 * model.encode(images)[0], rtol=1e-6)
    z = model.latents(images, key=jax.random.key(0))
    mean, logvar = model.encode(images)
    spread = (z / 0.18215 - mean) / jnp.exp(0.5 * logvar)
    assert 0.5 < float(spread.std()) < 1.5  # a posterior sample: mean + std * N(0, 1)
    np.testing.assert_allclose(model.images(0.18215 * mean), model.decode(mean), atol=1e-5)
    features = model.decoder_features(mean)
    assert [f.shape for f in features] == [(2, 8, 8, 64), (2, 16, 16, 64), (2, 16, 16, 32)]


def test_bad_input_and_checkpoints_are_refused(model, tmp_path):
    with pytest.raises(ValueError, match=r"images must be \(B, H, W, 3\)"):
        model.encode(jnp.zeros((1, 3, 16, 16)))  # channels first
    with pytest.raises(ValueError, match="multiples of 2"):
        model.encode(jnp.zeros((1, 15, 16, 3)))
    with pytest.raises(ValueError, match=r"latents must be \(B, H, W, 4\)"):
        model.decode(jnp.zeros((1, 8, 8, 3)))
    with pytest.raises(FileNotFoundError, match="diffusion_pytorch_model.safetensors"):
        os.makedirs(tmp_path / "empty")
        shutil.copy(os.path.join(CHECKPOINT, "config.json"), tmp_path / "empty")
        load_autoencoder_kl(tmp_path / "empty")
    wrong = tmp_path / "wrong"
    shutil.copytree(CHECKPOINT, wrong)
    config = json.loads((wrong / "config.json").read_text())
    config["latent_channels"] = 8
    (wrong / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="do not match"):
        load_autoencoder_kl(wrong)
    with pytest.raises(ValueError, match="multiples of norm_num_groups"):
        AutoencoderKL(AutoencoderConfig(block_out_channels=(30,)), rngs=nnx.Rngs(0))


def test_bfloat16_compute_tracks_float32_with_float32_parameters(model, reference):
    bf16 = AutoencoderKL(model.config, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    nnx.update(bf16, nnx.state(model))
    assert {p.dtype for p in jax.tree.leaves(nnx.state(bf16, nnx.Param))} == {np.dtype("float32")}
    images = channels_last(reference["images"])
    round_trip = nnx.jit(lambda m, x: m.decode(m.encode(x)[0]))
    a, b = round_trip(model, images), round_trip(bf16, images)
    assert b.dtype == jnp.float32
    relative = float(jnp.linalg.norm(a - b) / jnp.linalg.norm(a))
    assert 0 < relative < 0.03, relative
    graphdef, state = nnx.split(bf16)
    program = jax.jit(lambda s, z: nnx.merge(graphdef, s).decode(z)).lower(
        state, channels_last(reference["mean"])).as_text()
    convolutions = [line for line in program.splitlines() if "convolution" in line]
    assert convolutions and all("bf16" in line for line in convolutions[1:])  # post_quant: f32


def test_sharding_rules_split_every_convolution_and_attention_map(model):
    from flowjax.models.autoencoder import AUTOENCODER_SHARDING_RULES
    from flowjax.parallel import LOGICAL_AXES, leaf_partition_spec, path_string
    from jax.sharding import PartitionSpec as P

    sizes = {"data": 1, "fsdp": 4, "tensor": 2}
    leaves = jax.tree_util.tree_flatten_with_path(nnx.state(model, nnx.Param))[0]
    specs = {path_string(path): leaf_partition_spec(path_string(path), leaf.shape, sizes,
                                                    AUTOENCODER_SHARDING_RULES, 2**30, LOGICAL_AXES)
             for path, leaf in leaves}
    assert specs["encoder/resnets/0/0/conv1/kernel"] == P(None, None, "fsdp", "tensor")
    assert specs["decoder/mid/resnets/1/conv2/kernel"] == P(None, None, "tensor", "fsdp")
    assert specs["encoder/mid/attention/to_k/kernel"] == P("fsdp", "tensor")
    assert specs["decoder/mid/attention/to_out/kernel"] == P("tensor", "fsdp")
    for pattern, _ in AUTOENCODER_SHARDING_RULES:  # every rule splits some kernel
        assert any(re.search(pattern, path) for path in specs), pattern
    assert specs["quant_conv/kernel"] == P()  # small leaves stay replicated
