"""The Flax FID Inception against the network run in torch, its weight converter, sharded
feature extraction, and the checks made before anything is compiled.

The real weights file cannot be downloaded here: the tests use random weights with the names
and shapes of pytorch-fid's state dict (tests/inception_testing.py), converted by
`convert_state_dict`, and outputs of the torch network on those weights stored by
tests/reference/make_inception_reference.py (regenerated in the torch environment when there is
one).
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import threadpoolctl
from inception_testing import (
    REFERENCE_FILE,
    REPO,
    RESIZE_TO,
    random_torch_weights,
    reference_inputs,
)

from flowjax.metrics import frechet, inception
from flowjax.metrics.convert_inception import convert_state_dict

PEER_PYTHON = os.path.join(REPO, ".peer-venv", "bin", "python")


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("inception") / "inception_fid.npz"
    np.savez(path, **convert_state_dict(random_torch_weights()))
    return str(path)


@pytest.fixture(scope="module")
def model(weights_file):
    return inception.load_inception(weights_file)


@pytest.fixture(scope="module")
def features_fn(model):
    return inception.inception_feature_fn(model, resize_to=RESIZE_TO)


@pytest.fixture(scope="module")
def flax_outputs(features_fn):
    return features_fn(reference_inputs())


def test_matches_torch_network_on_converted_weights(flax_outputs):
    reference = np.load(REFERENCE_FILE)
    pool, logits = flax_outputs
    assert pool.shape == (4, 2048) and logits.shape == (4, 1008)
    # float32 through 94 layers with different convolution algorithms: measured agreement
    # 9e-7 of the scale; a misplaced or mis-transposed tensor gives O(1) relative errors.
    for name, value in (("pool", pool), ("logits", logits)):
        tolerance = 1e-5 * np.abs(reference[name]).max()
        np.testing.assert_allclose(value, reference[name], atol=tolerance, err_msg=name)
        # The features of different images differ by far more than the tolerance, so the
        # comparison resolves the inputs, not just the weights.
        assert np.abs(reference[name][0] - reference[name][1]).max() > 10 * tolerance


def test_resize_matches_torch_bilinear():
    reference = np.load(REFERENCE_FILE)
    resized = inception.preprocess(reference_inputs()[:1], RESIZE_TO)
    np.testing.assert_allclose(np.asarray(resized), reference["resized_first"], atol=1e-5)


def test_uint8_and_grey_inputs_match_float_rgb():
    float_images = reference_inputs()[:2]
    as_uint8 = np.round((float_images + 1) * 127.5).astype(np.uint8)
    np.testing.assert_allclose(
        np.asarray(inception.preprocess(as_uint8, 80)),
        np.asarray(inception.preprocess(float_images, 80)),
        atol=1e-6,
    )
    grey = inception.preprocess(float_images[..., :1], None)
    np.testing.assert_allclose(np.asarray(grey), np.repeat(float_images[..., :1], 3, -1), atol=1e-6)


def test_converter_maps_names_and_transposes():
    weights = random_torch_weights()
    converted = convert_state_dict(weights)
    assert len(converted) == len(weights) - 94  # the 94 num_batches_tracked are dropped
    kernel = weights["Mixed_7b.branch3x3_2b.conv.weight"]  # (O, I, kh=3, kw=1)
    assert kernel.shape == (384, 384, 3, 1)
    np.testing.assert_array_equal(
        converted["mixed_7b/branch3x3_2b/conv/kernel"], kernel.transpose(2, 3, 1, 0)
    )
    np.testing.assert_array_equal(
        converted["conv2d_4a_3x3/bn/var"], weights["Conv2d_4a_3x3.bn.running_var"]
    )
    with pytest.raises(ValueError, match="AuxLogits.fc.weight"):
        convert_state_dict({"AuxLogits.fc.weight": np.zeros((1000, 768))})


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(PEER_PYTHON), reason="no torch environment (.peer-venv)")
def test_torch_file_conversion_reproduces_reference(tmp_path):
    """The converter's torch path (.pth -> .npz), run where torch is installed, gives back the
    stored reference."""
    out = tmp_path / "reference.npz"
    script = os.path.join(REPO, "tests", "reference", "make_inception_reference.py")
    subprocess.run([PEER_PYTHON, script, str(out)], check=True, cwd=REPO, capture_output=True)
    fresh, stored = np.load(out), np.load(REFERENCE_FILE)
    for name in ("pool", "logits", "resized_first"):
        np.testing.assert_allclose(fresh[name], stored[name], rtol=1e-5, atol=1e-6)


def test_sharded_features_match_one_device(weights_file, flax_outputs, tmp_path):
    """The feature function with the batch split over 8 virtual devices (4 images padded to 8
    rows; a ("data", "fsdp") = (4, 2) mesh) gives the one-device features."""
    inputs = tmp_path / "inputs.npy"
    np.save(inputs, reference_inputs())
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
    env["JAX_PLATFORMS"] = "cpu"
    out = tmp_path / "sharded.npz"
    worker = os.path.join(REPO, "tests", "inception_testing.py")
    result = subprocess.run(
        [sys.executable, worker, weights_file, str(inputs), str(out), "4,2,1"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    sharded = np.load(out)
    assert int(sharded["device_count"]) == 8
    pool, logits = flax_outputs
    np.testing.assert_allclose(sharded["pool"], pool, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(sharded["logits"], logits, rtol=1e-4, atol=1e-6)


def test_fid_of_a_set_against_itself_is_zero(features_fn):
    """End to end through `inception_metrics`: FID(images, their own statistics) ~ 0, and the
    streamed pool statistics equal the mean and covariance of all the features."""
    rng = np.random.default_rng(3)
    images = np.round(rng.uniform(0, 255, (12, 40, 40, 3))) / 127.5 - 1.0
    batches = [images[:4], images[4:8], images[8:]]
    pool_stats, _ = inception.inception_statistics(
        iter(batches), 12, batch_size=4, feature_fn=features_fn
    )
    pool = np.concatenate([features_fn(batch)[0] for batch in batches]).astype(np.float64)
    np.testing.assert_allclose(pool_stats.mean, pool.mean(0), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(pool_stats.covariance, np.cov(pool, rowvar=False), atol=1e-15)
    # One BLAS thread: the (2048, 2048) eigendecompositions are far slower with several
    # threads on a loaded 2-core machine.
    with threadpoolctl.threadpool_limits(1):
        metrics = inception.inception_metrics(
            iter(batches), 12, reference=pool_stats, batch_size=4, feature_fn=features_fn,
            num_splits=2,
        )
    assert abs(metrics["fid"]) < 1e-9 * np.trace(pool_stats.covariance)
    assert metrics["inception_score"] >= 1.0


def test_missing_weights_file_fails_before_any_work(tmp_path, monkeypatch):
    monkeypatch.delenv(inception.WEIGHTS_ENV, raising=False)
    missing = str(tmp_path / "nowhere" / "inception_fid.npz")

    def sampler(key, n):
        raise AssertionError("the sampler must not run when the weights file is missing")

    with pytest.raises(FileNotFoundError) as error:
        inception.inception_metrics(sampler, 100, weights=missing, key=None)
    message = str(error.value)
    assert missing in message and inception.TORCH_WEIGHTS_FILE in message
    assert "convert_inception.py" in message
    monkeypatch.setenv(inception.WEIGHTS_ENV, missing)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        inception.load_inception()


def test_bad_inputs_raise_before_compiling(model, features_fn, tmp_path):
    with pytest.raises(ValueError, match=r"\(B, H, W, C\)"):
        features_fn(np.zeros((2, 40, 40)))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        features_fn(np.full((2, 40, 40, 3), 200.0, np.float32))
    small = inception.inception_feature_fn(model, resize_to=None)
    with pytest.raises(ValueError, match="at least 75x75"):
        small(np.zeros((2, 32, 32, 3), np.float32))
    bad_reference = tmp_path / "ref.npz"
    np.savez(bad_reference, mu=np.zeros(64), sigma=np.eye(64))
    with pytest.raises(ValueError, match="dimension 64"):
        inception.inception_metrics(
            iter([]), 10, reference=str(bad_reference), feature_fn=features_fn
        )
    with pytest.raises(ValueError, match="'sigma'"):
        np.savez(bad_reference, mu=np.zeros(2048))
        frechet.load_reference_statistics(str(bad_reference))
