"""The latent perceptual loss in the trainer (flow_matching's loss.lpl_weight): with weight 0
the run is bit-identical to plain latent flow matching; with a positive weight the loss adds
the decoder-feature term of the frozen autoencoder, whose weights training leaves unchanged;
bad settings refused before anything is compiled."""

from __future__ import annotations

import functools
import json
import os

import jax
import numpy as np
import pytest
from flax import nnx

from flowjax.data.sources import write_array_record
from flowjax.train import ConfigError, train, validate_config
from flowjax.train.trained import load_trained_flow

CHECKPOINT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "autoencoder_tiny")


def latent_config(latents: str, **loss):
    from flowjax.train import default_config

    config = default_config()
    config.data = dict(source="array_record", path=latents)
    config.model.update(hidden_dim=32, num_layers=2)
    config.train.update(num_steps=3, global_batch_size=8, log_every=1)
    config.checkpoint.every_steps = 1000
    config.evaluate.after_training = False
    config.sample.num_samples = 8
    config.sample.batch_size = 8
    config.loss.update(t_max=1.0, **loss)
    return config


@pytest.fixture(scope="module")
def latents(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = str(tmp_path_factory.mktemp("latents") / "z.array_record")
    return write_array_record(path, (0.18215 * rng.normal(size=(32, 4, 4, 4))).astype(np.float32))


def losses_of(workdir) -> list[float]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line)["loss"] for line in f if '"loss"' in line]


@pytest.mark.slow
def test_weight_zero_is_plain_flow_matching_and_a_weight_adds_the_term(latents, tmp_path):
    runs = {
        "plain": latent_config(latents),
        "zero": latent_config(latents, lpl_weight=0.0, lpl_autoencoder=CHECKPOINT),
        "lpl": latent_config(latents, lpl_weight=1.0, lpl_autoencoder=CHECKPOINT, lpl_t_min=0.0),
    }
    params, flows = {}, {}
    for name, config in runs.items():
        train(config, str(tmp_path / name))
        flows[name] = load_trained_flow(config, str(tmp_path / name))
        params[name] = nnx.to_pure_dict(flows[name].state.params)
    flat = lambda tree: [np.asarray(x) for x in jax.tree.leaves(tree)]  # noqa: E731
    for a, b in zip(flat(params["plain"]), flat(params["zero"]), strict=True):
        np.testing.assert_array_equal(a, b)
    assert losses_of(tmp_path / "plain") == losses_of(tmp_path / "zero")
    with_lpl = losses_of(tmp_path / "lpl")
    assert all(x > y for x, y in zip(with_lpl, losses_of(tmp_path / "plain")))  # the added term
    # The network sits under "net"; the autoencoder is frozen model state, not parameters.
    assert set(params["lpl"]) == {"net"}
    frozen = nnx.to_pure_dict(flows["lpl"].state.model_state)["autoencoder"]
    from flowjax.models import load_autoencoder_kl

    original = nnx.to_pure_dict(nnx.state(load_autoencoder_kl(CHECKPOINT), nnx.Param))
    np.testing.assert_array_equal(frozen["decoder"]["conv_out"]["kernel"],
                                  original["decoder"]["conv_out"]["kernel"])


def test_bad_lpl_settings_are_refused(latents, tmp_path):
    with pytest.raises(ConfigError, match="lpl_autoencoder"):
        validate_config(latent_config(latents, lpl_weight=1.0))
    with pytest.raises(ConfigError, match="config.json"):
        validate_config(latent_config(latents, lpl_weight=1.0, lpl_autoencoder=str(tmp_path)))
    flat = write_array_record(str(tmp_path / "flat.array_record"),
                              np.zeros((8, 16), np.float32))
    with pytest.raises(ConfigError, match=r"latents \(h, w, 4\)"):
        validate_config(latent_config(flat, lpl_weight=1.0, lpl_autoencoder=CHECKPOINT))


def test_lpl_on_the_latest_times_only_is_exact_while_they_cover_t_min(latents):
    from flowjax.train import build_objective, registry

    config = latent_config(latents, lpl_weight=1.0, lpl_autoencoder=CHECKPOINT)
    objective = build_objective(config)
    spec = objective.spec
    model = objective.model_fn(
        lambda rngs: registry.build_model(config.model, spec.event_shape, None, rngs)
    )(nnx.Rngs(0))
    rng = np.random.default_rng(1)
    x = (0.18215 * rng.normal(size=(8, 4, 4, 4))).astype(np.float32)
    batch = objective.draw_step_noise(jax.random.key(0), {"x": jax.numpy.asarray(x)})

    graphdef, state = nnx.split(model)

    @functools.cache  # one program per fraction, for both sets of times
    def compiled(fraction):
        def fn(s, b):
            config.loss.lpl_fraction = fraction  # read when the loss is traced
            return objective.loss(nnx.merge(graphdef, s), b)

        return jax.jit(fn)

    def loss(t, fraction):
        return float(compiled(fraction)(state, {**batch, "t": jax.numpy.asarray(t)}))

    three_late = [0.1, 0.95, 0.3, 0.85, 0.5, 0.2, 0.9, 0.6]  # 3 examples with t >= 0.8
    np.testing.assert_allclose(loss(three_late, 0.5), loss(three_late, 1.0), rtol=1e-6)
    np.testing.assert_allclose(loss(three_late, 0.375), loss(three_late, 1.0), rtol=1e-6)
    six_late = [0.81, 0.95, 0.3, 0.85, 0.99, 0.2, 0.9, 0.88]  # 6 late, only 3 decoded
    assert loss(six_late, 0.375) < loss(six_late, 1.0)
