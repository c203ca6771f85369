"""The evaluate mode's image metrics: FID / Inception Score against reference statistics
(`evaluate.fid_reference`) and, on the offline digits, the digits-classifier distance; and the
checks on the FID settings made before anything is compiled."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from inception_testing import random_torch_weights
from train_testing import repo_config

from flowjax import data
from flowjax.metrics import frechet, inception
from flowjax.metrics.convert_inception import convert_state_dict
from flowjax.train import inference, train
from flowjax.train.setup import setup_run


def reference_file(path, dim=inception.FEATURE_DIM):
    np.savez(path, mu=np.zeros(dim), sigma=np.eye(dim))
    return str(path)


def test_fid_settings_are_checked_before_compiling(tmp_path):
    """Missing reference statistics, missing Inception weights, statistics of the wrong
    dimension and FID on non-image data stop the run while the model is being set up."""
    config = repo_config("configs/fm_guide/digits.py", "smoke")
    config.evaluate.fid_reference = str(tmp_path / "cifar10_train.npz")
    config.evaluate.inception_weights = str(tmp_path / "weights.npz")
    with pytest.raises(FileNotFoundError, match="weights.npz"):
        setup_run(config)  # the weights are checked first
    np.savez(tmp_path / "weights.npz", unused=np.zeros(1))
    with pytest.raises(FileNotFoundError, match="cifar10_train.npz"):
        setup_run(config)
    config.evaluate.fid_reference = reference_file(tmp_path / "small.npz", dim=64)
    with pytest.raises(ValueError, match="dimension 64, FID needs 2048"):
        setup_run(config)

    toy = repo_config("configs/fm_guide/checkerboard.py", "smoke")
    toy.evaluate.fid_reference = reference_file(tmp_path / "ref.npz")
    toy.evaluate.inception_weights = str(tmp_path / "weights.npz")
    with pytest.raises(ValueError, match=r"FID scores images \(H, W, C\)"):
        setup_run(toy)


@pytest.mark.slow
def test_evaluate_streams_fid_and_scores_digits(tmp_path):
    """A digits smoke run evaluated with FID (random-weight Inception at 299 x 299) against
    statistics of the real digits: the FID of the samples is finite and positive, and equals
    the Frechet distance of the same samples' features computed directly; the Inception
    Score lies in [1, 1008]; the digits distance is reported."""
    weights = tmp_path / "inception_fid.npz"
    np.savez(weights, **convert_state_dict(random_torch_weights()))
    features = inception.inception_feature_fn(inception.load_inception(str(weights)))
    real = data.load_digits("train")[0][:64]
    reference = tmp_path / "digits_inception.npz"
    frechet.FeatureStatistics.from_features(features(real)[0]).save(str(reference))

    config = repo_config("configs/fm_guide/digits.py", "smoke")
    config.evaluate.after_training = False
    config.evaluate.fid_reference = str(reference)
    config.evaluate.fid_num_samples = 20  # three streamed batches of sample.batch_size = 8
    config.evaluate.inception_weights = str(weights)
    train(config, str(tmp_path / "run"))
    flow = inference.load_trained_flow(config, str(tmp_path / "run"))
    result = inference.evaluate(config, str(tmp_path / "run"), flow)["metrics"]

    # The same 20 samples in one go, their features at once: the streamed FID is that of them.
    key = jax.random.fold_in(jax.random.key(config.evaluate.seed), inference.FID_KEY)
    draw = inference.image_sampler(config, flow)
    samples = np.concatenate(list(frechet.image_batches(draw, 20, 8, key)))
    direct = frechet.frechet_distance_to_reference(
        frechet.FeatureStatistics.from_features(features(samples)[0]), str(reference)
    )
    assert result["fid_num_samples"] == 20
    assert np.isfinite(result["fid"]) and result["fid"] > 0
    np.testing.assert_allclose(result["fid"], direct, rtol=1e-6)
    assert 1.0 <= result["inception_score"] <= 1008.0
    assert np.isfinite(result["digits_frechet_distance"]) and result["digits_frechet_distance"] > 0
    assert np.isfinite(result["nll_bits_per_dim"])
