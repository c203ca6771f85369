"""Text embeddings from a local file (Berrada et al., 2024): the data source, noisy replicate
padding and caption dropout in the training step, guidance on captions, and the trainer run."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax import data
from flowjax.guidance import guided_velocity, two_scale_guided_velocity

M, D = 4, 12  # tokens per caption, width


def captions_of(labels):
    """A caption per digit whose tokens name its class: token j of label y is the one-hot of
    y in the first 10 entries plus j / M in entry 10, and 1 + y % M valid tokens."""
    n = len(labels)
    context = np.zeros((n, M, D), np.float32)
    context[np.arange(n), :, labels] = 1.0
    context[:, :, 10] = np.arange(M) / M
    context[:, :, 11] = 7.0  # padding past the length holds junk the trainer must not read
    lengths = 1 + labels % M
    for i, n_valid in enumerate(lengths):
        context[i, :n_valid, 11] = 0.0
    return context, lengths


@pytest.fixture(scope="module")
def digit_captions(tmp_path_factory):
    _, labels = data.load_digits("train")
    path = str(tmp_path_factory.mktemp("captions") / "digits_train")
    return data.save_text_embeddings(path, *captions_of(labels))


def test_text_embeddings_are_read_by_row_and_bad_files_are_named(tmp_path):
    context = np.random.default_rng(0).standard_normal((5, 3, 2)).astype(np.float16)
    path = data.save_text_embeddings(str(tmp_path / "e"), context, [1, 2, 3, 3, 1])
    captions = data.TextEmbeddings(path)
    assert len(captions) == 5 and captions.token_shape == (3, 2)
    rows = captions.read(np.array([4, 0, 4]))
    np.testing.assert_array_equal(rows["context"], context[[4, 0, 4]].astype(np.float32))
    np.testing.assert_array_equal(rows["context_length"], [1, 1, 1])
    with pytest.raises(FileNotFoundError, match="context.npy.*save_text_embeddings"):
        data.TextEmbeddings(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match=r"\[1, 3\]"):
        data.save_text_embeddings(str(tmp_path / "f"), context, [0, 1, 1, 1, 1])
    with pytest.raises(ValueError, match=r"\(N, M, D\)"):
        data.save_text_embeddings(str(tmp_path / "f"), context[0])


def test_each_batch_carries_its_records_captions_on_any_process_split(digit_captions):
    config = dict(source="digits", context_path=digit_captions)
    assert data.context_shape(config) == (M, D)
    whole = next(data.build_dataset(config, global_batch_size=64, seed=5))
    assert whole["context"].shape == (64, M, D) and whole["context"].dtype == np.float32
    # the caption names the record's own class, under shuffling
    np.testing.assert_array_equal(np.argmax(whole["context"][:, 0, :10], -1), whole["label"])
    np.testing.assert_array_equal(whole["context_length"], 1 + whole["label"] % M)
    halves = [next(data.build_dataset(config, global_batch_size=64, seed=5, process_index=p,
                                      process_count=2)) for p in (0, 1)]
    for key in ("context", "context_length"):
        np.testing.assert_array_equal(np.concatenate([h[key] for h in halves]), whole[key])
    with pytest.raises(ValueError, match="one row per record"):
        data.context_shape(dict(source="digits", split="test", context_path=digit_captions))


def flow_config(captions, **loss):
    from flowjax.train import default_config, registry

    config = default_config()
    config.data = dict(source="digits", context_path=captions)
    config.model = registry.model_defaults("dit")
    config.model.update(patch_size=2, hidden_dim=32, depth=1, num_heads=2,
                        conditioning="attention", context_dim=D)
    config.train.update(num_steps=2, global_batch_size=8, log_every=1)
    config.checkpoint.every_steps = 1000
    config.evaluate.after_training = False
    config.sample.update(num_samples=4, batch_size=4, step_size=0.5, method="euler")
    config.loss.update(label_dropout=0.1, **loss)
    return config


def test_the_training_step_pads_captions_by_noisy_replication_and_drops_them(digit_captions):
    from flowjax.train.objectives import DataSpec, build_objective

    config = flow_config(digit_captions, context_noise=0.5, context_dropout=0.25)
    objective = build_objective(config, DataSpec.from_config(config.data))
    batch = next(data.build_dataset(config.data, global_batch_size=512, seed=0))
    out = objective.draw_step_noise(jax.random.key(3), jax.tree.map(jnp.asarray, batch))
    assert "context_length" not in out
    context, lengths = np.asarray(out["context"]), batch["context_length"]
    dropped = np.all(context == 0.0, axis=(1, 2))
    assert abs(dropped.mean() - 0.25) < 0.06
    kept = np.flatnonzero(~dropped)
    padding_noise = []
    for i in kept:
        n = lengths[i]
        np.testing.assert_array_equal(context[i, :n], batch["context"][i, :n])  # valid: as read
        copies = batch["context"][i, np.arange(n, M) % n]  # the replicated tokens, not junk
        padding_noise.append(context[i, n:] - copies)
    noise = np.concatenate([p.ravel() for p in padding_noise])
    assert abs(noise.std() - 0.5) < 0.03 and abs(noise.mean()) < 0.03


def test_guidance_on_captions_doubles_the_batch_with_the_null_caption():
    def model(x, t, context, label=None, control=None):
        out = x + jnp.sum(context, axis=(1, 2))[:, None] + t
        if label is not None:
            out = out * (1.0 + label[:, None])
        if control is not None:
            out = out + 2.0 * jnp.nan_to_num(control, nan=0.0)
        return out

    x = jnp.asarray([[1.0], [2.0]])
    context = jnp.ones((2, 3, 2)) * jnp.asarray([1.0, -0.5])[:, None, None]
    null = jnp.zeros_like(context)
    w = 2.5
    guided = guided_velocity(model, w, null_label=None)(x, 0.3, context=context)
    expected = (1 + w) * model(x, 0.3, context) - w * model(x, 0.3, null)
    np.testing.assert_allclose(guided, expected, rtol=1e-6)
    np.testing.assert_allclose(
        guided_velocity(model, 0.0, null_label=None)(x, 0.3, context=context),
        model(x, 0.3, context), rtol=1e-6)
    label = jnp.asarray([1, 2])
    both = guided_velocity(model, w, null_label=0)(x, 0.3, context=context, label=label)
    expected = ((1 + w) * model(x, 0.3, context, label)
                - w * model(x, 0.3, null, jnp.zeros(2, int)))
    np.testing.assert_allclose(both, expected, rtol=1e-6)
    control = jnp.asarray([[1.0], [0.0]])
    nan = jnp.full_like(control, jnp.nan)
    three = two_scale_guided_velocity(model, 3.0, 2.0, null_label=None)(
        x, 0.3, context=context, control=control)
    none, semantic = model(x, 0.3, null, control=nan), model(x, 0.3, context, control=nan)
    full = model(x, 0.3, context, control=control)
    np.testing.assert_allclose(three, none + 3 * (semantic - none) + 2 * (full - semantic),
                               rtol=1e-6)
    with pytest.raises(ValueError, match="condition to guide on"):
        guided_velocity(model, w, null_label=None)(x, 0.3)


def test_a_text_conditioned_dit_trains_and_draws_the_given_prompts(digit_captions, tmp_path):
    from flowjax.train import sample, train
    from flowjax.train.objectives import DataSpec, build_objective

    prompts, _ = captions_of(np.array([3, 7]))
    prompts_path = data.save_text_embeddings(str(tmp_path / "prompts"), prompts)
    config = flow_config(digit_captions, context_dropout=0.2)
    config.sample.update(guidance_scale=1.0, context_path=prompts_path, label=3)
    objective = build_objective(config, DataSpec.from_config(config.data))
    inputs = objective.source_batch(4, seed=0)
    np.testing.assert_array_equal(inputs["context"], prompts[[0, 1, 0, 1]])  # in order, cycled
    train(config, str(tmp_path / "run"))
    samples = sample(config, str(tmp_path / "run"))["samples"]
    assert samples.shape == (4, 8, 8, 1) and np.all(np.isfinite(samples))


def test_bad_text_settings_are_refused_before_compiling(digit_captions, tmp_path):
    from flowjax.train import ConfigError, validate_config

    config = flow_config(digit_captions)
    config.model.context_dim = D + 1
    with pytest.raises(ConfigError, match="model.context_dim"):
        validate_config(config)
    config = flow_config(digit_captions)
    config.data = dict(source="digits")
    config.loss.context_dropout = 0.1
    config.model.context_dim = 0
    with pytest.raises(ConfigError, match="data.context_path"):
        validate_config(config)
    narrow = data.save_text_embeddings(str(tmp_path / "narrow"), np.zeros((2, 3, D - 2)))
    config = flow_config(digit_captions)
    config.sample.context_path = narrow
    with pytest.raises(ConfigError, match="same text encoder"):
        validate_config(config)
    config = flow_config(str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="save_text_embeddings"):
        validate_config(config)
