"""The latent store (flowjax.data.latents): the digits encoded by a small KL autoencoder in two
process shards read back, through the array_record source, as the direct encoding; the three
stores; decoding in batches; bad settings."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flowjax.data import build_dataset
from flowjax.data.images import digits_reader
from flowjax.data.latents import (
    decode_in_batches,
    latents_glob,
    sample_moments,
    write_latents,
)
from flowjax.data.sources import ArrayRecordReader, resolve_paths
from flowjax.models import AutoencoderConfig, AutoencoderKL

SCALE = 0.5


@pytest.fixture(scope="module")
def autoencoder():
    config = AutoencoderConfig(in_channels=1, out_channels=1, block_out_channels=(16, 32),
                               layers_per_block=1, norm_num_groups=8)
    model = AutoencoderKL(config, rngs=nnx.Rngs(0))
    encode = nnx.jit(lambda m, x: m.encode(x))
    decode = nnx.jit(lambda m, z: m.decode(z))
    return (lambda x: encode(model, x)), (lambda z: decode(model, z))


def test_two_process_shards_read_back_as_the_direct_encoding(autoencoder, tmp_path):
    encode, decode = autoencoder
    reader = digits_reader("test")
    prefix = str(tmp_path / "digits")
    for p in range(2):
        write_latents(encode, reader, prefix, scaling_factor=SCALE, batch_size=64,
                      process_index=p, process_count=2)
    stored = ArrayRecordReader(resolve_paths(latents_glob(prefix)))
    assert len(stored) == len(reader) and stored.event_shape == (4, 4, 4)
    everything = stored.read(np.arange(len(stored)))
    direct = reader.read(np.arange(len(reader)))
    mean, _ = encode(jnp.asarray(direct["x"]))
    np.testing.assert_allclose(everything["x"], SCALE * np.asarray(mean), atol=1e-5)
    np.testing.assert_array_equal(everything["label"], direct["label"])

    batches = build_dataset({"source": "array_record", "path": latents_glob(prefix),
                             "shuffle": False}, global_batch_size=8, seed=0)
    first = next(iter(batches))
    np.testing.assert_allclose(first["x"], everything["x"][:8], atol=1e-6)

    images = decode_in_batches(decode, everything["x"][:70] / SCALE, batch_size=32)
    np.testing.assert_allclose(images, np.asarray(decode(jnp.asarray(everything["x"][:70] / SCALE))),
                               atol=1e-5)


def test_sample_and_moments_stores(autoencoder, tmp_path):
    encode, _ = autoencoder
    reader = digits_reader("test")
    x = jnp.asarray(reader.read(np.arange(len(reader)))["x"])
    mean, logvar = (np.asarray(a) for a in encode(x))
    moments_path = write_latents(encode, reader, str(tmp_path / "m"), scaling_factor=SCALE,
                                 store="moments", process_index=0, process_count=1)
    moments = ArrayRecordReader([moments_path]).read(np.arange(len(reader)))["x"]
    np.testing.assert_allclose(moments[..., :4], SCALE * mean, atol=1e-5)
    np.testing.assert_allclose(moments[..., 4:], SCALE * np.exp(0.5 * logvar), rtol=1e-5)
    draws = sample_moments(jax.random.key(0), jnp.asarray(moments))
    z = (np.asarray(draws) - SCALE * mean) / (SCALE * np.exp(0.5 * logvar))
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1.0) < 0.05
    sample_path = write_latents(encode, reader, str(tmp_path / "s"), scaling_factor=SCALE,
                                store="sample", key=jax.random.key(1), process_index=0,
                                process_count=1)
    sampled = ArrayRecordReader([sample_path]).read(np.arange(len(reader)))["x"]
    z = (sampled - SCALE * mean) / (SCALE * np.exp(0.5 * logvar))
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1.0) < 0.05
    with pytest.raises(ValueError, match="pass key="):
        write_latents(encode, reader, str(tmp_path / "x"), scaling_factor=SCALE, store="sample")
    with pytest.raises(ValueError, match="store must be one of"):
        write_latents(encode, reader, str(tmp_path / "x"), scaling_factor=SCALE, store="median")
