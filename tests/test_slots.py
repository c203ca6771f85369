"""Slot attention and the synthetic scenes (flowjax.models.slots, flowjax.data.scenes):
equivariance and invariance that hold exactly, shared initial slots, and the scene generator's
masks against its images; bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flowjax import data
from flowjax.data import scenes
from flowjax.models.slots import SlotAttention, SlotComposer, SpatialBroadcastDecoder
from flowjax.train.objectives.compose import shared_slot_noise


@pytest.fixture(scope="module")
def attention():
    return SlotAttention(6, 8, iterations=3, mlp_hidden=16, rngs=nnx.Rngs(0))


def test_slot_attention_equivariant_in_slots_invariant_in_inputs(attention):
    inputs = jax.random.normal(jax.random.key(1), (2, 10, 6))
    noise = jax.random.normal(jax.random.key(2), (2, 4, 8))
    call = nnx.jit(lambda module, i, n: module(i, n))  # one compiled function for the 3 calls
    slots, masks = call(attention, inputs, noise)
    slot_perm, input_perm = jnp.array([2, 0, 3, 1]), jax.random.permutation(jax.random.key(3), 10)
    slots_p, masks_p = call(attention, inputs, noise[:, slot_perm])
    np.testing.assert_allclose(slots_p, slots[:, slot_perm], atol=1e-5)
    np.testing.assert_allclose(masks_p, masks[:, slot_perm], atol=1e-6)
    slots_i, masks_i = call(attention, inputs[:, input_perm], noise)
    np.testing.assert_allclose(slots_i, slots, atol=1e-5)
    np.testing.assert_allclose(masks_i, masks[:, :, input_perm], atol=1e-6)
    np.testing.assert_allclose(masks.sum(axis=1), 1.0, atol=1e-6)  # a softmax over the slots


def test_shared_noise_gives_both_halves_the_same_initial_slots(attention):
    noise = shared_slot_noise(jax.random.key(0), 6, 4, 8)
    initial = attention.initial_slots(noise)
    np.testing.assert_array_equal(initial[:3], initial[3:])
    assert not np.allclose(initial[0], initial[1])
    np.testing.assert_allclose(
        initial, attention.mu[...] + jnp.exp(attention.log_sigma[...]) * noise, atol=0)
    independent = shared_slot_noise(jax.random.key(0), 6, 4, 8, shared=False)
    assert not np.allclose(independent[:3], independent[3:])
    with pytest.raises(ValueError, match="must be even"):
        shared_slot_noise(jax.random.key(0), 5, 4, 8)


def test_decoder_masks_partition_and_composite():
    decoder = SpatialBroadcastDecoder(8, (8, 8, 3), 4, 1, rngs=nnx.Rngs(0))
    slots = jax.random.normal(jax.random.key(0), (2, 3, 8))
    reconstruction, masks, appearance = decoder(slots)
    np.testing.assert_allclose(masks.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(reconstruction, jnp.sum(masks[..., None] * appearance, axis=1),
                               atol=1e-6)


def test_scene_masks_match_image_colours():
    for background in scenes.BACKGROUNDS:
        for index in range(3):
            image, mask, colours = scenes.scene_record("train", index, 32, 2, 5, background)
            assert image.shape == (32, 32, 3) and mask.shape == (32, 32)
            assert 2 <= len(colours) <= 5 and mask.max() <= len(colours)
            for j in range(1, len(colours) + 1):
                pixels = image[mask == j]
                expected = np.broadcast_to(colours[j - 1], pixels.shape)
                np.testing.assert_array_equal(pixels, expected)
            greys = scenes.BACKGROUND_COLOURS
            assert np.all((image[mask == 0][:, None] == greys[None]).all(-1).any(-1))
    again = scenes.scene_record("train", 1, 32, 2, 5, "plain")
    np.testing.assert_array_equal(again[0], scenes.scene_record("train", 1, 32, 2, 5, "plain")[0])


def test_directory_source_and_its_errors(tmp_path):
    from PIL import Image

    for split in ("train",):
        (tmp_path / split / "images").mkdir(parents=True)
        (tmp_path / split / "masks").mkdir(parents=True)
        for i in range(3):
            image, mask, _ = scenes.scene_record("test", i, 16)
            Image.fromarray(image).save(tmp_path / split / "images" / f"{i}.png")
            Image.fromarray(mask.astype(np.uint8)).save(tmp_path / split / "masks" / f"{i}.png")
    spec = dict(source="scenes", name="directory", path=str(tmp_path), shuffle=False)
    assert data.event_shape(spec) == (16, 16, 3)
    batch = next(data.build_dataset(spec, global_batch_size=3, seed=0))
    image, mask, _ = scenes.scene_record("test", 1, 16)
    np.testing.assert_array_equal(batch["mask"][1], mask)
    np.testing.assert_allclose(batch["x"][1], image / 127.5 - 1, atol=1e-6)
    with pytest.raises(ValueError, match="images/<name>.png"):
        data.build_dataset({**spec, "split": "test"}, global_batch_size=3, seed=0)
    (tmp_path / "train" / "masks" / "2.png").unlink()
    with pytest.raises(ValueError, match="have no mask"):
        data.build_dataset(spec, global_batch_size=3, seed=0)


def test_bad_settings_raise_clear_errors():
    with pytest.raises(ValueError, match="num_slots must be a positive integer"):
        nnx.eval_shape(lambda: SlotComposer((16, 16, 3), num_slots=0, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="multiples of 8"):
        nnx.eval_shape(lambda: SlotComposer((12, 12, 3), num_slots=2, decoder_upsamples=3,
                                            rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="encoder_downsample=3 must divide"):
        nnx.eval_shape(lambda: SlotComposer((16, 16, 3), num_slots=2, encoder_downsample=3,
                                            rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="min_objects <= max_objects"):
        data.parse_config(dict(source="scenes", name="shapes", min_objects=4, max_objects=2))
    with pytest.raises(ValueError, match="noise must have shape"):
        SlotAttention(6, 8, iterations=1, mlp_hidden=8, rngs=nnx.Rngs(0))(
            jnp.zeros((2, 5, 6)), jnp.zeros((2, 3, 7)))
