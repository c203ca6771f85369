"""Video data for MeBT: moving digits (bounce law, sprites at the recorded positions), the
"moving_digits", "video_tokens" and "video_folder" sources, token files and their errors."""

import numpy as np
import pytest

from flowjax import data
from flowjax.data import videos


def _reflect_steps(start, velocity, num_frames, limit):
    """The bounce law step by step: move, then reflect p -> -p at 0 and p -> 2L - p at L."""
    p, v, out = int(start), int(velocity), []
    for _ in range(num_frames):
        out.append(p)
        p += v
        if p < 0:
            p, v = -p, -v
        elif p > limit:
            p, v = 2 * limit - p, -v
    return np.asarray(out)


def test_moving_digits_follow_the_bounce_law_and_show_the_sprite():
    md = videos.moving_digits(3, 4, 40, canvas=20, digits=1, sprite_size=12, max_speed=3)
    assert md.videos.shape == (4, 40, 20, 20, 1) and md.videos.dtype == np.float32
    assert md.positions.shape == (4, 40, 1, 2) and md.labels.shape == (4, 1)
    sprites, labels = videos.digit_sprites("train", 12)
    limit = 20 - 12
    for n in range(4):
        assert 1 <= np.abs(md.velocities[n]).min() and np.abs(md.velocities[n]).max() <= 3
        for axis in range(2):
            expected = _reflect_steps(
                md.positions[n, 0, 0, axis], md.velocities[n, 0, axis], 40, limit
            )
            np.testing.assert_array_equal(md.positions[n, :, 0, axis], expected)
        sprite = sprites[md.sprite_index[n, 0]]
        assert md.labels[n, 0] == labels[md.sprite_index[n, 0]]
        for t in range(40):
            r, c = md.positions[n, t, 0]
            frame = md.videos[n, t, :, :, 0]
            np.testing.assert_array_equal(frame[r : r + 12, c : c + 12], sprite)
            outside = frame.copy()
            outside[r : r + 12, c : c + 12] = 0
            assert not outside.any()
    # Deterministic, and video i does not depend on how many are drawn.
    again = videos.moving_digits(3, 2, 40, canvas=20, sprite_size=12)
    np.testing.assert_array_equal(again.videos, md.videos[:2])
    # Upsampling is nearest neighbour of the 8x8 digit in [0, 1].
    images, _ = data.load_digits("train")
    np.testing.assert_array_equal(sprites[5][::3, ::3][:4, :4], ((images[5, ::2, ::2, 0] + 1) / 2)[:4, :4])


def test_two_digits_take_the_pixelwise_max():
    md = videos.moving_digits(0, 1, 5, canvas=24, digits=2, sprite_size=8)
    sprites, _ = videos.digit_sprites("train", 8)
    for t in range(5):
        canvas = np.zeros((24, 24), np.float32)
        for d in range(2):
            r, c = md.positions[0, t, d]
            canvas[r : r + 8, c : c + 8] = np.maximum(
                canvas[r : r + 8, c : c + 8], sprites[md.sprite_index[0, d]]
            )
        np.testing.assert_array_equal(md.videos[0, t, :, :, 0], canvas)


def test_moving_digits_errors():
    with pytest.raises(ValueError, match="sprite_size"):
        videos.moving_digits(0, 1, 4, canvas=8, sprite_size=12)
    with pytest.raises(ValueError, match="num_frames"):
        videos.moving_digits(0, 1, 0)
    with pytest.raises(ValueError, match="split"):
        videos.moving_digits(0, 1, 4, split="val")


def test_moving_digits_source():
    cfg = dict(source="moving_digits", num_frames=6, canvas=16, sprite_size=8)
    assert data.event_shape(cfg) == (6, 16, 16, 1)
    assert data.num_classes(cfg) is None and data.vocab_size(cfg) is None
    batch = next(data.build_dataset({**cfg, "shuffle": False}, global_batch_size=3, seed=0))
    assert set(batch) == {"x"} and batch["x"].dtype == np.float32
    expected = videos.moving_digits(0, 3, 6, canvas=16, sprite_size=8).videos * 2 - 1
    np.testing.assert_array_equal(batch["x"], expected)
    with pytest.raises(ValueError, match="sprite_size"):
        data.parse_config({**cfg, "canvas": 4})


def test_video_tokens_round_trip_and_source(tmp_path):
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 50, size=(5, 2, 3, 4))
    path = data.write_video_tokens(str(tmp_path / "t" / "tokens.npz"), tokens, 50)
    read, size = data.read_video_tokens(path)
    np.testing.assert_array_equal(read, tokens)
    assert read.dtype == np.int32 and size == 50
    cfg = dict(source="video_tokens", path=path, shuffle=False)
    assert data.event_shape(cfg) == (2, 3, 4) and data.vocab_size(cfg) == 50
    batch = next(data.build_dataset(cfg, global_batch_size=4, seed=0))
    assert batch["tokens"].dtype == np.int32 and batch["x"].dtype == np.int32
    np.testing.assert_array_equal(batch["tokens"], tokens[:4])
    np.testing.assert_array_equal(batch["x"], tokens[:4])
    # A bare .npy needs the codebook size in the config.
    npy = str(tmp_path / "tokens.npy")
    np.save(npy, tokens)
    assert data.vocab_size({"source": "video_tokens", "path": npy, "codebook_size": 64}) == 64
    with pytest.raises(ValueError, match="codebook_size"):
        data.vocab_size({"source": "video_tokens", "path": npy})


def test_video_tokens_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="write_video_tokens"):
        data.event_shape(dict(source="video_tokens", path=str(tmp_path / "missing.npz")))
    with pytest.raises(ValueError, match=r"\(N, t, h, w\)"):
        data.write_video_tokens(str(tmp_path / "a.npz"), np.zeros((2, 3, 4), np.int32), 8)
    with pytest.raises(ValueError, match="integers"):
        data.write_video_tokens(str(tmp_path / "a.npz"), np.zeros((1, 1, 2, 2)), 8)
    with pytest.raises(ValueError, match="outside"):
        data.write_video_tokens(str(tmp_path / "a.npz"), np.full((1, 1, 2, 2), 8), 8)
    bad = str(tmp_path / "bad.npy")
    np.save(bad, np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(N, t, h, w\)"):
        data.event_shape(dict(source="video_tokens", path=bad, codebook_size=4))
    assert not (tmp_path / "a.npz").exists()


def test_video_folder_source(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(1)
    root = tmp_path / "ucf"
    frames_a = rng.integers(0, 256, size=(7, 12, 16, 3), dtype=np.uint8)
    (root / "train" / "a").mkdir(parents=True)
    for i, f in enumerate(frames_a):
        Image.fromarray(f).save(root / "train" / "a" / f"{i:03d}.png")
    frames_b = rng.integers(0, 256, size=(4, 8, 8), dtype=np.uint8)
    np.save(root / "train" / "b.npy", frames_b)
    cfg = dict(source="video_folder", path=str(root), num_frames=3, resolution=8, shuffle=False)
    assert data.event_shape(cfg) == (3, 8, 8, 3)
    batch = next(data.build_dataset(cfg, global_batch_size=3, seed=0))
    expected = np.stack([
        np.stack([videos.resize_frame(f, 8) for f in frames_a[0:3]]),
        np.stack([videos.resize_frame(f, 8) for f in frames_a[3:6]]),
        np.stack([videos.resize_frame(f, 8) for f in frames_b[0:3]]),
    ])
    np.testing.assert_allclose(batch["x"], expected / 127.5 - 1, atol=1e-6)
    # An 8x8 grey frame at resolution 8 is unchanged, repeated in three channels.
    np.testing.assert_array_equal(expected[2, 0], np.repeat(frames_b[0][..., None], 3, -1))
    # Resizing: a 12x16 frame -> shorter side 8 (8x11), centred 8x8 crop.
    assert videos.resize_frame(frames_a[0], 8).shape == (8, 8, 3)
    with pytest.raises(ValueError, match="one folder of frame images per video"):
        data.event_shape({**cfg, "path": str(tmp_path / "nowhere")})
    with pytest.raises(ValueError, match="num_frames"):
        data.event_shape({**cfg, "num_frames": 9})
