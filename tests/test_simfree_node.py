"""Neural ODEs on paired data (Kim et al., 2024): NFE counts, the loss against its formula, the
crossing-pairs check, the trainer and CLI on digits, the TFDS settings, and bad input."""

from __future__ import annotations

import io
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from train_testing import repo_config, run_cli

from flowjax import data, losses, main, paths, solvers
from flowjax.models import SimFreeNODE
from flowjax.train import inference, train, validate_config


def counted(fn):
    """fn plus a host-side counter of its evaluations at run time (jax.debug.callback)."""
    calls = [0]

    def bump():
        calls[0] += 1

    def wrapped(x, t):
        jax.debug.callback(bump)
        return fn(x, t)

    return wrapped, calls


# NFE reporting of the solvers ----------


@pytest.mark.parametrize(
    ("method", "step_size", "expected"), [("euler", 0.1, 10), ("rk4", 0.25, 16)]
)
def test_fixed_step_nfe_is_steps_times_stages(method, step_size, expected):
    velocity, calls = counted(lambda x, t: -x * (1.0 + t))
    x, nfe = jax.jit(
        lambda x0: solvers.ode_sample(
            velocity, x0, method=method, step_size=step_size, return_nfe=True
        )
    )(jnp.ones((3, 2)))
    jax.block_until_ready(x)
    assert int(nfe) == expected == calls[0]
    plain = solvers.ode_sample(
        lambda x, t: -x * (1.0 + t), jnp.ones((3, 2)), method=method, step_size=step_size
    )
    np.testing.assert_allclose(x, plain, rtol=1e-6)  # the same solve with or without the count


def test_dopri5_nfe_counts_every_evaluation():
    velocity, calls = counted(lambda x, t: -x * jnp.cos(3.0 * t) + jnp.sin(5.0 * t))
    x, nfe = jax.jit(
        lambda x0: solvers.ode_sample(velocity, x0, method="dopri5", return_nfe=True)
    )(jnp.ones((4, 3)))
    jax.block_until_ready(x)
    assert int(nfe) == calls[0] > 7  # several steps of 6 evaluations, one at the start


# The loss against its formula ----------


@pytest.fixture(scope="module")
def small_model():
    return SimFreeNODE(
        (3,),
        num_classes=4,
        latent_dim=5,
        encoder_hidden_dim=8,
        decoder_hidden_dim=8,
        hidden_dim=8,
        num_layers=2,
        rngs=nnx.Rngs(0),
    )


@pytest.mark.parametrize("scheduler", ["linear", "trigonometric"])
def test_loss_is_flow_plus_label_autoencoder(small_model, scheduler):
    model, sigma = small_model, 3.0
    keys = jax.random.split(jax.random.key(1), 4)
    x = jax.random.normal(keys[0], (6, 3))
    labels = jnp.array([0, 1, 2, 3, 1, 0])
    y = jax.nn.one_hot(labels, 4)
    t = jax.random.uniform(keys[1], (6,))
    xi = jax.random.normal(keys[2], (6, 5))
    if scheduler == "linear":
        path = paths.AffineProbPath(paths.CondOTScheduler())
        a, s, da, ds = t, 1 - t, jnp.ones_like(t), -jnp.ones_like(t)
    else:  # z_t = cos(pi t / 2) z_0 + sin(pi t / 2) z_1
        path = paths.AffineProbPath(paths.CosineScheduler())
        h = jnp.pi / 2
        a, s, da, ds = jnp.sin(h * t), jnp.cos(h * t), h * jnp.cos(h * t), -h * jnp.sin(h * t)
    z0, z1 = model.encode(x), model.encode_target(y)
    z_t = a[:, None] * z1 + s[:, None] * z0
    dz_t = da[:, None] * z1 + ds[:, None] * z0
    flow = jnp.mean((model(z_t, t) - dz_t) ** 2)
    autoencoder = jnp.mean((model.decode(z1 + sigma * xi) - y) ** 2)

    got_flow, got_ae = losses.simfree_node_loss_terms(
        model, path, x, labels, t, xi, label_noise=sigma
    )
    np.testing.assert_allclose(got_flow, flow, rtol=1e-5)
    np.testing.assert_allclose(got_ae, autoencoder, rtol=1e-5)
    total = losses.simfree_node_loss(model, path, x, labels, t, xi, label_noise=sigma)
    np.testing.assert_allclose(total, flow + autoencoder, rtol=1e-5)


def test_identity_embedding_is_flow_matching_in_data_space():
    model = SimFreeNODE((3,), target_dim=1, embedding="identity", hidden_dim=8, rngs=nnx.Rngs(0))
    x = jnp.arange(6.0).reshape(2, 3)
    y = jnp.array([[7.0], [8.0]])
    np.testing.assert_array_equal(model.encode(x), x)
    np.testing.assert_array_equal(model.encode_target(y), [[7.0, 0, 0], [8.0, 0, 0]])
    np.testing.assert_array_equal(model.decode(x), x[:, :1])
    path = paths.AffineProbPath(paths.CondOTScheduler())
    t = jnp.array([0.25, 0.5])
    flow, autoencoder = losses.simfree_node_loss_terms(
        model, path, x, y, t, jnp.ones((2, 3)), label_noise=3.0
    )
    padded = jnp.pad(y, ((0, 0), (0, 2)))
    expected = losses.cfm_loss(model, path, x, padded, t)
    np.testing.assert_allclose(flow, expected, rtol=1e-6)
    assert autoencoder == 0.0


def test_times_are_zero_with_the_given_probability():
    n, p = 200_000, 0.1
    t = np.asarray(losses.simfree_node_times(jax.random.key(0), n, p))
    zero = np.mean(t == 0.0)
    assert abs(zero - p) < 5 * math.sqrt(p * (1 - p) / n)  # binomial: 5 standard errors
    rest = t[t > 0]
    assert abs(rest.mean() - 0.5) < 5 * math.sqrt(1 / 12 / rest.size)  # U(0, 1) mean
    assert rest.max() < 1.0


# Crossing pairs through the trainer ----------


def trained_model(config, workdir):
    state = train(config, str(workdir))
    flow = inference.load_trained_flow(config, str(workdir))
    model = nnx.merge(flow.run.graphdef, state.ema_params, state.model_state)
    return model, flow


@pytest.fixture(scope="module")
def crossing_runs(tmp_path_factory):
    """The crossing-pairs config trained, sampled and evaluated as by the command line, for
    the method and for flow matching in data space: (metrics.json, the EMA model)."""
    runs = {}
    for method in ("embedding", "data_space"):
        config = repo_config("configs/simfree_node/crossing_pairs.py", method)
        workdir = tmp_path_factory.mktemp(method)
        main.run(config, str(workdir), "train")
        flow = inference.load_trained_flow(config, str(workdir))
        model = nnx.merge(flow.run.graphdef, flow.state.ema_params, flow.state.model_state)
        with open(workdir / "metrics.json") as f:
            runs[method] = (json.load(f), model)
    return runs


def test_crossing_pairs_embedding_maps_each_input_to_its_target_in_one_euler_step(
    crossing_runs,
):
    metrics, model = crossing_runs["embedding"]
    x, y = data.tabular.tabular_arrays("crossing_pairs")
    prediction = solvers.ode_predict(model, jnp.asarray(x), method="euler", step_size=1.0)
    np.testing.assert_allclose(prediction, y, atol=1e-2)
    assert metrics["rmse_euler_1"] < 1e-2 and metrics["rmse_dopri5"] < 1e-2


def test_crossing_pairs_data_space_flow_cannot_keep_the_pairs_apart(crossing_runs):
    """A flow on the line keeps the order of its points: an increasing map of x = -3, -1, 1, 3
    onto y = -x has squared error at least that of the best constant, 9 + 1 + 1 + 9, so its
    RMSE is at least sqrt(5) = 2.24 (an accurate solve of any 1-D ODE obeys this)."""
    metrics, _ = crossing_runs["data_space"]
    assert metrics["rmse_dopri5"] > math.sqrt(5.0) - 0.1


# The trainer and the command line on digits ----------


@pytest.mark.slow
def test_digits_smoke_trains_samples_and_evaluates(tmp_path):
    config = repo_config("configs/simfree_node/digits.py", "smoke")
    lines = main.run(config, str(tmp_path), "train")
    assert any("Metrics:" in line for line in lines)
    with open(tmp_path / "metrics.json") as f:
        metrics = json.load(f)
    assert metrics["num_points"] == 120
    for name in ("accuracy_euler_1", "accuracy_euler_2", "accuracy_dopri5"):
        assert 0.0 <= metrics[name] <= 1.0
    # dopri5: 6 evaluations per attempted step and one at the start.
    assert metrics["nfe_dopri5"] >= 7 and (metrics["nfe_dopri5"] - 1) % 6 == 0
    assert np.load(tmp_path / "samples.npy").shape == (120, 10)  # logits of held-out digits


@pytest.mark.slow
def test_digits_method_reaches_the_backprop_accuracy_with_fewer_evaluations(tmp_path):
    """The full digits configs (minutes each): the method after one Euler step (NFE 1) is within
    two test images per hundred of the neural ODE trained through dopri5, which needs many
    evaluations per prediction."""
    results = {}
    for method in ("embedding", "backprop"):
        config = repo_config("configs/simfree_node/digits.py", method)
        config.evaluate.after_training = False
        train(config, str(tmp_path / method))
        results[method] = inference.evaluate(config, str(tmp_path / method))["metrics"]
    ours, node = results["embedding"], results["backprop"]
    assert ours["accuracy_euler_1"] >= node["accuracy_dopri5"] - 0.02
    assert node["nfe_dopri5"] > 1


@pytest.mark.slow
def test_cli_digits_smoke(tmp_path):
    result = run_cli(
        "--config=configs/simfree_node/digits.py:smoke", f"--workdir={tmp_path}", timeout=600
    )
    assert result.returncode == 0, result.stderr[-5000:]
    assert "accuracy_dopri5" in result.stdout and "nfe_dopri5" in result.stdout


# TFDS settings ----------


@pytest.mark.parametrize(
    ("config_name", "dataset"),
    [("mnist", "mnist"), ("svhn", "svhn_cropped"), ("cifar10", "cifar10")],
)
def test_missing_tfds_dataset_names_the_dataset_and_directory(tmp_path, config_name, dataset):
    pytest.importorskip("tensorflow_datasets")
    config = repo_config(f"configs/simfree_node/{config_name}.py", "smoke")
    empty = tmp_path / "no_data_here"
    empty.mkdir()
    config.data.data_dir = str(empty)
    with pytest.raises(ValueError, match=rf"(?s){dataset}.*no_data_here"):
        validate_config(config)


@pytest.fixture(scope="module")
def tiny_tfds(tmp_path_factory):
    tfds = pytest.importorskip("tensorflow_datasets")
    pil = pytest.importorskip("PIL.Image")

    class FlowjaxTestTinyPairs(tfds.core.GeneratorBasedBuilder):
        """12 train and 6 test 8x8x1 images whose label is the brightest quadrant."""

        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                features=tfds.features.FeaturesDict(
                    {
                        "image": tfds.features.Image(shape=(8, 8, 1)),
                        "label": tfds.features.ClassLabel(num_classes=4),
                    }
                ),
            )

        def _split_generators(self, dl_manager):
            del dl_manager
            return {"train": self._generate_examples(12, 0), "test": self._generate_examples(6, 1)}

        def _generate_examples(self, n, seed):
            rng = np.random.default_rng(seed)
            for i in range(n):
                label = i % 4
                image = rng.integers(0, 60, (8, 8), dtype=np.uint8)
                r, c = divmod(label, 2)
                image[4 * r : 4 * r + 4, 4 * c : 4 * c + 4] += 190
                buf = io.BytesIO()
                pil.fromarray(image).save(buf, format="PNG")  # encoded without TensorFlow
                yield i, {"image": buf.getvalue(), "label": label}

    data_dir = str(tmp_path_factory.mktemp("tfds_pairs"))
    FlowjaxTestTinyPairs(data_dir=data_dir).download_and_prepare(
        file_format="array_record",
        download_config=tfds.download.DownloadConfig(try_download_gcs=False),
    )
    return data_dir


@pytest.mark.slow
def test_image_setting_trains_on_a_local_tfds_source(tmp_path, tiny_tfds):
    """The CIFAR-10 setting (CNN encoder) on a tiny locally built TFDS dataset: it trains, and
    its held-out scores are those of the trained model's own predictions."""
    config = repo_config("configs/simfree_node/cifar10.py", "smoke")
    config.data = dict(
        source="tfds", name="flowjax_test_tiny_pairs", split="train", data_dir=tiny_tfds
    )
    config.evaluate.data = dict(split="test")
    config.train.global_batch_size = 12
    config.sample.num_samples = config.sample.batch_size = 6
    config.evaluate.num_points = config.evaluate.batch_size = 6
    config.evaluate.after_training = False
    model, flow = trained_model(config, tmp_path)
    result = inference.evaluate(config, str(tmp_path), flow)["metrics"]
    batch = next(data.build_dataset(dict(config.data, split="test"), global_batch_size=6, seed=0))
    logits = solvers.ode_predict(model, jnp.asarray(batch["x"]), method="euler", step_size=1.0)
    expected = np.mean(np.argmax(logits, -1) == batch["label"])
    assert result["accuracy_euler_1"] == pytest.approx(expected)


# Bad input ----------


def test_labels_out_of_range_are_refused():
    x = np.zeros((3, 2), np.float32)
    with pytest.raises(ValueError, match=r"lie in \[0, 3\].*\[0, 4\]"):
        losses.check_pairs(x, np.array([0, 4, 1]), num_classes=4)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        losses.check_pairs(x, np.array([0, -1, 1]), num_classes=4)
    with pytest.raises(ValueError, match="integers"):
        losses.check_pairs(x, np.array([0.0, 1.0, 2.0]), num_classes=4)
    losses.check_pairs(x, np.array([0, 3, 1]), num_classes=4)  # in range: no error


def test_mismatched_lengths_are_refused(small_model):
    with pytest.raises(ValueError, match=r"pair up.*\(3, 2\).*\(2,\)"):
        losses.check_pairs(np.zeros((3, 2)), np.array([0, 1]), num_classes=4)
    path = paths.AffineProbPath(paths.CondOTScheduler())
    with pytest.raises(ValueError, match="pair up"):
        losses.simfree_node_loss(
            small_model, path, jnp.zeros((3, 3)), jnp.array([0, 1]), jnp.zeros(3),
            jnp.zeros((3, 5)), label_noise=1.0,
        )
    with pytest.raises(ValueError, match=r"lie in \[0, 3\]"):
        losses.simfree_node_loss(
            small_model, path, jnp.zeros((2, 3)), jnp.array([0, 7]), jnp.zeros(2),
            jnp.zeros((2, 5)), label_noise=1.0,
        )
    with pytest.raises(ValueError, match=r"targets of shape \(B, 4\)"):
        small_model.encode_target(jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"inputs of shape \(B, \*\(3,\)\)"):
        small_model.encode(jnp.zeros((2, 4)))


def test_bad_model_and_config_settings_are_refused():
    with pytest.raises(ValueError, match="exactly one"):
        SimFreeNODE((3,), num_classes=2, target_dim=1, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="image"):
        SimFreeNODE((3,), num_classes=2, encoder="cnn", rngs=nnx.Rngs(0))
    config = repo_config("configs/simfree_node/moons.py", "smoke")
    config.data = dict(source="toy", name="checkerboard")
    config.evaluate.data = {}
    with pytest.raises(ValueError, match="needs labelled data"):
        validate_config(config)
    config = repo_config("configs/simfree_node/moons.py", "smoke")
    config.data.name = "iris"
    with pytest.raises(ValueError, match="Unknown tabular data set 'iris'"):
        validate_config(config)
    config = repo_config("configs/simfree_node/moons.py", "smoke")
    config.evaluate.data.split = "validation"
    with pytest.raises(ValueError, match="split must be one of"):
        validate_config(config)
    with pytest.raises(ValueError, match="Unknown variant 'fast'"):
        repo_config("configs/simfree_node/moons.py", "fast")
