"""FVD: the Flax I3D against an independent torch.nn.functional forward pass on the same random
weights (converted from a state dict with exactly the keys and shapes of
`i3d_pretrained_400.pt`), the FVD pipeline's exact properties, and the errors on bad input.

The weights file cannot be downloaded here. The default tests compare with torch outputs stored
in tests/data/i3d_torch_reference.npz (made by tests/i3d_testing.py) on a small clip (the
Mixed_5c map of a 10-frame 64 x 64 clip) and on a map of the head's size; where torch is
importable the stored outputs are recomputed, and the full network at 224 x 224 is compared
end to end (slow). The FVD properties run through the same jitted, sharded pipeline with a tiny
stand-in network (the metric does not depend on which network gives the features).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from flax import nnx
from i3d_testing import (
    REFERENCE_FILE,
    random_state_dict,
    reference_clip,
    reference_map,
    torch_features,
    torch_head,
    torch_logits,
)

from flowjax.metrics import fvd as fvd_lib
from flowjax.metrics.frechet import FeatureStatistics
from flowjax.models import convert_i3d, i3d

HAS_TORCH = importlib.util.find_spec("torch") is not None


@pytest.fixture(scope="module")
def state_dict():
    return random_state_dict()


@pytest.fixture(scope="module")
def network(state_dict):
    return convert_i3d.i3d_from_state_dict(state_dict)


@pytest.fixture(scope="module")
def flax_outputs(network):
    features = nnx.jit(lambda m, x: m.features(x))(network, reference_clip())
    head = nnx.jit(lambda m, x: m.head(x))(network, reference_map())
    return np.asarray(features), np.asarray(head)


def test_i3d_matches_torch_functional_reference(flax_outputs):
    """Trunk (all convolutions, SAME paddings, max pools, inception blocks) and head (2x7x7
    pool, logits, time mean) against torch. float32 through 58 layers: measured agreement
    9e-7 of the scale; a mis-transposed kernel or a misplaced padding gives O(1) errors."""
    reference = np.load(REFERENCE_FILE)
    for name, value in zip(("features", "head"), flax_outputs):
        expected = reference[name]
        assert value.shape == expected.shape
        np.testing.assert_allclose(value, expected, atol=1e-5 * np.abs(expected).max(), err_msg=name)
    features = reference["features"]
    # The positions of the map differ by far more than the tolerance: the check resolves space
    # and time, not only the weights.
    assert np.abs(features[0, 0] - features[0, 1]).max() > 0.1 * np.abs(features).max()


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
def test_stored_reference_is_the_torch_forward(state_dict):
    reference = np.load(REFERENCE_FILE)
    np.testing.assert_allclose(
        torch_features(state_dict, reference_clip()), reference["features"], rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        torch_head(state_dict, reference_map()), reference["head"], rtol=1e-5, atol=1e-6
    )


@pytest.mark.slow
@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
def test_full_network_at_224_matches_torch(network, state_dict):
    """The whole network on the FVD input size, 16 frames: (1, 400) logits."""
    clip = reference_clip(shape=(1, 16, 224, 224, 3))
    expected = torch_logits(state_dict, clip)
    logits = np.asarray(nnx.jit(lambda m, x: m(x))(network, clip))
    assert logits.shape == (1, 400)
    np.testing.assert_allclose(logits, expected, atol=1e-5 * np.abs(expected).max())


def test_converter_folds_batch_norm_and_transposes(state_dict):
    converted = convert_i3d.convert_state_dict(state_dict, epsilon=1e-3)
    unit = "Mixed_4e.b1b"
    weight = state_dict[f"{unit}.conv3d.weight"]  # (O, I, kt, kh, kw)
    gamma, beta = state_dict[f"{unit}.bn.weight"], state_dict[f"{unit}.bn.bias"]
    mean, var = state_dict[f"{unit}.bn.running_mean"], state_dict[f"{unit}.bn.running_var"]
    scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + 1e-3)
    np.testing.assert_allclose(
        converted[("mixed_4e", "b1b", "conv", "kernel")],
        weight.transpose(2, 3, 4, 1, 0) * scale,
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        converted[("mixed_4e", "b1b", "conv", "bias")], beta - mean * scale, rtol=1e-6, atol=1e-7
    )
    np.testing.assert_array_equal(
        converted[("logits", "conv", "bias")], state_dict["logits.conv3d.bias"]
    )
    assert len(converted) == 2 * 58  # 57 batch-normed units and the logits, kernel + bias


def test_converter_reports_bad_state_dicts(state_dict):
    broken = dict(state_dict)
    del broken["Mixed_5c.b2b.bn.running_var"]
    with pytest.raises(ValueError, match=r"Mixed_5c\.b2b\.bn\.running_var"):
        convert_i3d.i3d_from_state_dict(broken)
    broken = dict(state_dict)
    broken["Mixed_3b.b0.conv3d.weight"] = np.zeros((64, 191, 1, 1, 1), np.float32)
    with pytest.raises(ValueError, match=r"mixed_3b\.b0\.conv\.kernel \(1, 1, 1, 191, 64\)"):
        convert_i3d.i3d_from_state_dict(broken)
    with pytest.raises(ValueError, match="Unexpected tensors.*AuxLogits"):
        convert_i3d.convert_state_dict({**state_dict, "AuxLogits.bn.weight": np.ones(3)})


def test_missing_weights_file_says_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv(convert_i3d.WEIGHTS_ENV, raising=False)
    missing = tmp_path / "i3d_pretrained_400.pt"
    with pytest.raises(FileNotFoundError, match="i3d_pretrained_400.pt.*1mQK8KD8G6UWRa5t87SRMm5PVXtlpneJT"):
        convert_i3d.load_i3d(missing)


def test_npz_copy_of_the_state_dict_loads(tmp_path, state_dict, network):
    path = tmp_path / "i3d.npz"
    np.savez(path, **state_dict)
    loaded = convert_i3d.load_i3d(path)
    ours, theirs = nnx.to_flat_state(nnx.state(loaded)), nnx.to_flat_state(nnx.state(network))
    for (path_a, a), (path_b, b) in zip(ours, theirs, strict=True):
        assert path_a == path_b
        np.testing.assert_array_equal(np.asarray(a[...]), np.asarray(b[...]))


def test_too_few_frames_and_wrong_rank_fail_before_running(network):
    fn = fvd_lib.fvd_feature_fn(network)
    clips = np.zeros((2, 8, 32, 32, 3), np.float32)
    with pytest.raises(ValueError, match="at least 9 frames"):
        fn(clips)  # traced at 224 x 224 only, never compiled
    with pytest.raises(ValueError, match=r"\(B, T, H, W, C\)"):
        fn(clips[0])
    with pytest.raises(ValueError, match=r"in \[-1, 1\]"):
        fn(clips + 3.0)


# ------------------------------------------------------------------------------------------
# The FVD pipeline with a tiny stand-in network: (B, T, S, S, 3) -> (B, 4).


class TinyVideoNet(nnx.Module):
    """Frame means of the first 4 frames (12 values) through a Linear layer to 4 features."""

    def __init__(self, *, rngs: nnx.Rngs):
        self.linear = nnx.Linear(12, 4, rngs=rngs)

    def __call__(self, x):
        return self.linear(x[:, :4].mean(axis=(2, 3)).reshape(x.shape[0], 12))


SIZE = 8
"""Clips are resized to 8 x 8 for the stand-in network."""


@pytest.fixture(scope="module")
def tiny():
    return TinyVideoNet(rngs=nnx.Rngs(0))


def clips(seed, n=12, frames=5, size=12):
    rng = np.random.default_rng(seed)
    # Per-clip brightness and per-frame noise: features with a full-rank covariance.
    base = rng.uniform(-0.6, 0.6, (n, 1, 1, 1, 3))
    return np.clip(base + 0.3 * rng.standard_normal((n, frames, size, size, 3)), -1, 1).astype(
        np.float32
    )


def test_fvd_of_a_set_with_itself_is_zero_and_fvd_is_symmetric(tiny):
    a, b = clips(1), clips(2)
    stats_a = fvd_lib.fvd_statistics(tiny, [a], len(a), batch_size=len(a), resize_to=SIZE)
    stats_b = fvd_lib.fvd_statistics(tiny, [b], len(b), batch_size=len(b), resize_to=SIZE)
    scale = np.trace(stats_a.covariance)
    assert abs(fvd_lib.fvd(tiny, [a], len(a), stats_a, resize_to=SIZE)) < 1e-9 * scale
    ab = fvd_lib.fvd(tiny, [a], len(a), stats_b, resize_to=SIZE)
    ba = fvd_lib.fvd(tiny, [b], len(b), stats_a, resize_to=SIZE)
    assert ab > 1e-3 * scale
    np.testing.assert_allclose(ab, ba, rtol=1e-9)


def test_streaming_statistics_equal_one_pass(tiny):
    videos = clips(3, n=10)
    batches = [videos[:3], videos[3:6], videos[6:9], videos[9:]]
    features = [fvd_lib.fvd_features(tiny, v, batch_size=3, resize_to=SIZE) for v in batches]
    one_pass = FeatureStatistics.from_features(np.concatenate(features))
    streamed = fvd_lib.fvd_statistics(tiny, batches, 10, batch_size=3, resize_to=SIZE)
    assert streamed.count == 10
    np.testing.assert_allclose(streamed.mean, one_pass.mean, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(streamed.covariance, one_pass.covariance, rtol=1e-10, atol=1e-15)
    # One batch of 10 is another compiled program: the same features up to float32 round-off.
    np.testing.assert_allclose(
        fvd_lib.fvd_features(tiny, videos, batch_size=10, resize_to=SIZE),
        np.concatenate(features), rtol=1e-5, atol=1e-6,
    )


def test_a_feature_shift_by_d_gives_its_squared_norm(tiny):
    """Shifting the network's output bias by d moves every feature by d and leaves the
    covariance unchanged: FVD = |d|^2."""
    videos = clips(4)
    reference = fvd_lib.fvd_statistics(tiny, [videos], len(videos), batch_size=12, resize_to=SIZE)
    shifted = TinyVideoNet(rngs=nnx.Rngs(0))
    d = np.array([0.5, -1.0, 0.25, 2.0], np.float32)
    shifted.linear.bias.set_value(shifted.linear.bias[...] + d)
    value = fvd_lib.fvd(shifted, [videos], len(videos), reference, batch_size=12, resize_to=SIZE)
    np.testing.assert_allclose(value, float(d @ d), rtol=1e-5)


def test_uint8_and_unit_range_clips_give_the_same_features(tiny):
    videos = clips(5, n=4)
    as_uint8 = np.round((videos + 1) * 127.5).astype(np.uint8)
    signed = fvd_lib.fvd_features(tiny, videos, resize_to=SIZE)
    np.testing.assert_array_equal(fvd_lib.fvd_features(tiny, as_uint8, resize_to=SIZE), signed)
    unit = fvd_lib.fvd_features(tiny, as_uint8 / np.float32(255), resize_to=SIZE, value_range=(0, 1))
    np.testing.assert_allclose(unit, signed, atol=1e-6)
    grey = fvd_lib.preprocess_videos(videos[..., :1], None)
    np.testing.assert_allclose(np.asarray(grey), np.repeat(as_uint8[..., :1], 3, -1) / 127.5 - 1,
                               atol=1e-6)


def test_bad_settings_and_references_are_rejected(tiny, tmp_path):
    videos = clips(6, n=4)
    with pytest.raises(ValueError, match="value_range"):
        fvd_lib.fvd_feature_fn(tiny, value_range=(0, 255))
    with pytest.raises(ValueError, match="batch_size"):
        fvd_lib.fvd_features(tiny, videos, batch_size=0)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        fvd_lib.fvd(tiny, [videos], 4, str(tmp_path / "missing.npz"), resize_to=SIZE)
    wrong = (np.zeros(400), np.eye(400))  # I3D's dimension, not the stand-in's 4
    with pytest.raises(ValueError, match=r"\(B, 400\)"):
        fvd_lib.fvd(tiny, [videos], 4, wrong, resize_to=SIZE)


def test_reference_file_round_trip(tiny, tmp_path):
    videos = clips(7)
    stats = fvd_lib.fvd_statistics(tiny, [videos], len(videos), batch_size=12, resize_to=SIZE)
    path = str(tmp_path / "reference.npz")
    stats.save(path)
    assert abs(fvd_lib.fvd(tiny, [videos], len(videos), path, resize_to=SIZE)) < 1e-9 * np.trace(
        stats.covariance
    )


def test_i3d_rejects_clips_too_small_for_its_head():
    with pytest.raises(ValueError, match="at least 9 frames"):
        i3d.check_clip_shape((1, 16, 128, 128, 3))
    i3d.check_clip_shape((1, 9, 193, 224, 3))
