"""Video data for MeBT (Yoo et al., CVPR 2023, "Towards End-to-End Generative Modeling of Long
Videos with Memory-Efficient Bidirectional Transformers") and its tokenizer, the TATS 3D-VQGAN
(Ge et al., ECCV 2022): moving digits made offline, local folders of real videos, and the token
files that a video tokenizer writes.

moving digits (offline; `moving_digits`, source "moving_digits")
    A Moving-MNIST-like set built from scikit-learn's 8x8 digits (the splits of
    `flowjax.data.images.load_digits`: every fifth image is "test"). A digit image, scaled from
    0..16 to [0, 1] and upsampled to `sprite_size` x `sprite_size` by nearest neighbour (row r
    of the sprite is row floor(8 r / sprite_size) of the digit), moves on a black
    `canvas` x `canvas` frame. Its top-left corner p_t = (row, col) is an integer point of
    [0, L]^2, L = canvas - sprite_size, moving with an integer velocity v (each component
    drawn uniformly from {-max_speed, ..., max_speed} without 0) and reflecting at the walls:
    per axis, with u_t = p_0 + v t,

        p_t = m_t if m_t <= L else 2 L - m_t,    m_t = u_t mod 2 L        (the bounce law)

    which is the elastic reflection p -> -p at 0 and p -> 2L - p at L applied step by step.
    With several digits each moves on its own and a pixel takes the largest of their values.
    Video i of (split, seed) is drawn from `numpy.random.default_rng([0x4D4F5645, seed, split
    tag, i])`, so any subset of videos is reproducible on its own. The source gives
    {"x": float32 (b, T, canvas, canvas, 1)} in [-1, 1] (x -> 2 x - 1, as the image sources'
    x / 127.5 - 1); records are made on the fly, the split size only sets the epoch length.

video tokens (source "video_tokens"; `write_video_tokens` / `read_video_tokens`)
    Integer codes (N, t, h, w) of a video tokenizer (`flowjax.models.vqvae3d.tokenize_videos`),
    in a .npz file holding "tokens" int32 (N, t, h, w) and "codebook_size" (a scalar: the
    codes lie in [0, codebook_size)), or a bare .npy of the tokens with `data.codebook_size`
    set in the config. Batches {"x": int32 (b, t, h, w), "tokens": the same array}: the
    trainer's objectives read "x", MeBT names it "tokens".

video folders (source "video_folder"; `VideoFolderReader`)
    Real video sets (UCF-101, SkyTimelapse, Taichi-HD) prepared locally as

        <path>/<split>/<video>/<frame>.png|.jpg   (frames in file-name order), or
        <path>/<split>/<video>.npy                (uint8 (F, H, W) or (F, H, W, C), C 1 or 3)

    Each video gives floor(F / num_frames) non-overlapping clips of num_frames consecutive
    frames (record order: videos sorted by name, clips in time order). Every frame is resized
    as TATS does (shorter side to `resolution`, bilinear, then a centred square crop) and
    made RGB; batches {"x": float32 (b, T, resolution, resolution, 3)} in [-1, 1].
"""

from __future__ import annotations

import functools
import os
from typing import Any, NamedTuple

import numpy as np

from flowjax.data.images import DIGITS_SPLITS, load_digits

Batch = dict[str, np.ndarray]

MOVING_DIGITS_SIZES = {"train": 10_000, "test": 1_000}
"""Records per epoch of the "moving_digits" splits (videos are made on the fly)."""
MOVING_DIGITS_DEFAULTS = dict(num_frames=16, canvas=32, digits=1, sprite_size=12, max_speed=3)
"""Defaults of `moving_digits` and of the "moving_digits" source."""
FRAME_EXTENSIONS = (".png", ".jpg", ".jpeg")
VIDEO_FOLDER_LAYOUT = (
    "a directory <path>/<split>/ holding one folder of frame images per video "
    "(<video>/<frame>.png or .jpg, frames in file-name order) or one uint8 .npy per video "
    "(<video>.npy of shape (F, H, W) or (F, H, W, C))"
)

_TAG = 0x4D4F5645
_SPLIT_TAGS = {"train": 1, "test": 2}
_TOKENS_HINT = "; write it with flowjax.data.write_video_tokens(path, tokens, codebook_size)"


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_positive(**values: Any) -> None:
    for name, value in values.items():
        if not _is_int(value) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}.")


# --------------------------------------------------------------------------------------------
# Moving digits.


class MovingDigits(NamedTuple):
    """Videos of bouncing digits with what made them.

    Attributes:
      videos: float32 (N, T, canvas, canvas, 1) in [0, 1].
      labels: int32 (N, digits), the class of each digit.
      positions: int32 (N, T, digits, 2), the (row, col) of each sprite's top-left corner.
      velocities: int32 (N, digits, 2), the unfolded velocity (before any reflection).
      sprite_index: int32 (N, digits), which image of the split each digit shows.
    """

    videos: np.ndarray
    labels: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray
    sprite_index: np.ndarray


def check_moving_digits(
    num_frames: int, canvas: int, digits: int, sprite_size: int, max_speed: int, split: str
) -> None:
    """Raises a clear ValueError for settings that make no video."""
    _check_positive(
        num_frames=num_frames, canvas=canvas, digits=digits, sprite_size=sprite_size,
        max_speed=max_speed,
    )
    if split not in DIGITS_SPLITS:
        raise ValueError(f"split must be one of {DIGITS_SPLITS}, got {split!r}.")
    if sprite_size > canvas:
        raise ValueError(
            f"sprite_size={sprite_size} does not fit on a canvas of {canvas} pixels; use "
            "sprite_size <= canvas (e.g. 12 on 32)."
        )


@functools.lru_cache(maxsize=8)
def digit_sprites(split: str, sprite_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(sprites float32 (n, sprite_size, sprite_size) in [0, 1], labels int32 (n,)) of a
    digits split, upsampled by nearest neighbour (read-only arrays)."""
    images, labels = load_digits(split)
    rows = (np.arange(sprite_size) * 8) // sprite_size
    sprites = ((images[..., 0] + 1.0) * 0.5)[:, rows][:, :, rows].astype(np.float32)
    sprites.setflags(write=False)
    labels.setflags(write=False)
    return sprites, labels


def bounce(start: np.ndarray, velocity: np.ndarray, num_frames: int, limit: int) -> np.ndarray:
    """Positions of points reflecting in [0, limit] (the bounce law of the module docstring).

    Args:
      start: integer (...,) positions in [0, limit] at frame 0.
      velocity: integer (...,) unfolded velocities.
      num_frames: T.
      limit: L >= 0, the largest position.

    Returns:
      int64 (T, ...): the position at frames 0..T-1.
    """
    t = np.arange(num_frames).reshape((-1,) + (1,) * np.ndim(start))
    unfolded = np.asarray(start, np.int64) + np.asarray(velocity, np.int64) * t
    if limit == 0:
        return np.zeros_like(unfolded)
    m = np.mod(unfolded, 2 * limit)
    return np.where(m <= limit, m, 2 * limit - m)


def moving_digits_video(
    split: str,
    seed: int,
    index: int,
    num_frames: int,
    canvas: int,
    digits: int,
    sprite_size: int,
    max_speed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Video `index` of (split, seed): (video float32 (T, canvas, canvas, 1) in [0, 1],
    labels int32 (digits,), positions int32 (T, digits, 2), velocities int32 (digits, 2),
    sprite_index int32 (digits,)); settings as in `moving_digits` (not re-checked)."""
    sprites, sprite_labels = digit_sprites(split, sprite_size)
    rng = np.random.default_rng([_TAG, seed, _SPLIT_TAGS[split], index])
    chosen = rng.integers(0, len(sprites), size=digits)
    limit = canvas - sprite_size
    start = rng.integers(0, limit + 1, size=(digits, 2))
    speed = rng.integers(1, max_speed + 1, size=(digits, 2))
    velocity = speed * rng.choice(np.array([-1, 1]), size=(digits, 2))
    positions = bounce(start, velocity, num_frames, limit)
    video = np.zeros((num_frames, canvas, canvas), np.float32)
    s = sprite_size
    for t in range(num_frames):
        for d in range(digits):
            r, c = positions[t, d]
            window = video[t, r : r + s, c : c + s]
            np.maximum(window, sprites[chosen[d]], out=window)
    return (
        video[..., None],
        sprite_labels[chosen].astype(np.int32),
        positions.astype(np.int32),
        velocity.astype(np.int32),
        chosen.astype(np.int32),
    )


def moving_digits(
    seed: int,
    num_videos: int,
    num_frames: int = MOVING_DIGITS_DEFAULTS["num_frames"],
    *,
    canvas: int = MOVING_DIGITS_DEFAULTS["canvas"],
    digits: int = MOVING_DIGITS_DEFAULTS["digits"],
    sprite_size: int = MOVING_DIGITS_DEFAULTS["sprite_size"],
    max_speed: int = MOVING_DIGITS_DEFAULTS["max_speed"],
    split: str = "train",
) -> MovingDigits:
    """`num_videos` videos of bouncing digits (see the module docstring), deterministic in seed.

    Args:
      seed: non-negative int; video i depends only on (split, seed, i).
      num_videos: N.
      num_frames: T, any positive number.
      canvas: H = W of the frames.
      digits: how many digits move in each video.
      sprite_size: side of a digit after upsampling the 8x8 image (<= canvas).
      max_speed: the largest |velocity| component in pixels per frame (components are
        nonzero integers).
      split: "train" or "test": which digit images are used (disjoint sets).

    Returns:
      A `MovingDigits` with videos (N, T, canvas, canvas, 1) in [0, 1].
    """
    _check_positive(num_videos=num_videos)
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}.")
    check_moving_digits(num_frames, canvas, digits, sprite_size, max_speed, split)
    parts = [
        moving_digits_video(split, seed, i, num_frames, canvas, digits, sprite_size, max_speed)
        for i in range(num_videos)
    ]
    return MovingDigits(*(np.stack(p) for p in zip(*parts, strict=True)))


class MovingDigitsReader:
    """The "moving_digits" record source: record i is video i of (split, seed 0), in [-1, 1]."""

    def __init__(
        self,
        split: str = "train",
        num_frames: int = MOVING_DIGITS_DEFAULTS["num_frames"],
        canvas: int = MOVING_DIGITS_DEFAULTS["canvas"],
        digits: int = MOVING_DIGITS_DEFAULTS["digits"],
        sprite_size: int = MOVING_DIGITS_DEFAULTS["sprite_size"],
        max_speed: int = MOVING_DIGITS_DEFAULTS["max_speed"],
    ):
        check_moving_digits(num_frames, canvas, digits, sprite_size, max_speed, split)
        self.split = split
        self.settings = (num_frames, canvas, digits, sprite_size, max_speed)

    def __len__(self) -> int:
        return MOVING_DIGITS_SIZES[self.split]

    @property
    def has_labels(self) -> bool:
        return False

    @property
    def event_shape(self) -> tuple[int, int, int, int]:
        num_frames, canvas = self.settings[:2]
        return (num_frames, canvas, canvas, 1)

    def read(self, indices: np.ndarray) -> Batch:
        videos = [moving_digits_video(self.split, 0, int(i), *self.settings)[0] for i in indices]
        x = np.stack(videos).reshape(-1, *self.event_shape)
        return {"x": x * np.float32(2.0) - np.float32(1.0)}


# --------------------------------------------------------------------------------------------
# Token files.


def _check_tokens(tokens: Any, codebook_size: Any, where: str, hint: str) -> tuple[np.ndarray, int]:
    tokens = np.asarray(tokens)
    if tokens.ndim != 4 or 0 in tokens.shape:
        raise ValueError(
            f"{where}: expected video tokens of shape (N, t, h, w), got {tokens.shape}{hint}."
        )
    if not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(f"{where}: video tokens must be integers, got dtype {tokens.dtype}{hint}.")
    size = np.asarray(codebook_size)
    if size.shape != () or not np.issubdtype(size.dtype, np.integer) or int(size) < 1:
        raise ValueError(
            f"{where}: codebook_size must be a positive int (codes lie in [0, codebook_size)), "
            f"got {codebook_size!r}{hint}."
        )
    lo, hi = int(tokens.min()), int(tokens.max())
    if lo < 0 or hi >= int(size):
        raise ValueError(
            f"{where}: tokens lie in [{lo}, {hi}], outside [0, {int(size) - 1}] for "
            f"codebook_size={int(size)}{hint}."
        )
    return tokens.astype(np.int32), int(size)


def write_video_tokens(path: str, tokens: np.ndarray, codebook_size: int) -> str:
    """Writes video tokens for `source="video_tokens"`.

    Args:
      path: the .npz file to write (parent directories are created).
      tokens: integer (N, t, h, w) codes in [0, codebook_size).
      codebook_size: the tokenizer's number of codes.

    Returns:
      `path`, holding "tokens" int32 (N, t, h, w) and "codebook_size" int64 ().

    Raises:
      ValueError: for a path not ending in .npz, a wrong rank or dtype, or codes out of range
        (nothing is written then).
    """
    path = os.fspath(path)
    if not path.endswith(".npz"):
        raise ValueError(f"write_video_tokens: path must end with .npz, got {path!r}.")
    tokens, size = _check_tokens(tokens, codebook_size, "write_video_tokens", "")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        np.savez(f, tokens=tokens, codebook_size=np.int64(size))
    return path


def read_video_tokens(path: str, codebook_size: int | None = None) -> tuple[np.ndarray, int]:
    """(tokens int32 (N, t, h, w), codebook_size) of a token file, checked.

    Args:
      path: a .npz written by `write_video_tokens`, or a .npy of integer tokens (N, t, h, w).
      codebook_size: required for a .npy (which does not store it); for a .npz it must be None
        or equal to the stored value.

    Raises:
      FileNotFoundError: when `path` does not exist.
      ValueError: for another suffix, a missing array, a wrong rank or dtype, codes out of
        range, or a missing / conflicting codebook_size.
    """
    path = os.fspath(path)
    if not (path.endswith(".npz") or path.endswith(".npy")):
        raise ValueError(
            f"data.path must be a .npz or .npy file of video tokens, got {path!r}{_TOKENS_HINT}."
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"data.path {path!r} does not exist; expected video tokens (N, t, h, w)"
            f"{_TOKENS_HINT}."
        )
    where = f"Video tokens file {path!r}"
    if path.endswith(".npy"):
        if codebook_size is None:
            raise ValueError(
                f"{where} is a .npy file, which does not store the codebook size: set "
                "data.codebook_size (the tokenizer's number of codes) or write a .npz"
                f"{_TOKENS_HINT}."
            )
        return _check_tokens(np.load(path, allow_pickle=False), codebook_size, where, _TOKENS_HINT)
    with np.load(path, allow_pickle=False) as data:
        missing = [k for k in ("tokens", "codebook_size") if k not in data.files]
        if missing:
            raise ValueError(f"{where} lacks {missing} (it has {data.files}){_TOKENS_HINT}.")
        tokens, stored = data["tokens"], data["codebook_size"]
    out = _check_tokens(tokens, stored, where, _TOKENS_HINT)
    if codebook_size is not None and int(codebook_size) != out[1]:
        raise ValueError(
            f"data.codebook_size={codebook_size} disagrees with the {out[1]} stored in {where}; "
            "leave data.codebook_size=None for a .npz."
        )
    return out


class VideoTokensReader:
    """The "video_tokens" record source: a token file, loaded and checked when built, pickled
    as its arguments and reloaded on first use in a worker."""

    def __init__(self, path: str, codebook_size: int | None = None):
        self.path, self.codebook_size_arg = path, codebook_size
        tokens, self.codebook_size = self._arrays
        self.grid = tuple(tokens.shape[1:])
        self._len = int(tokens.shape[0])

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_arrays"}

    @functools.cached_property
    def _arrays(self) -> tuple[np.ndarray, int]:
        return read_video_tokens(self.path, self.codebook_size_arg)

    def __len__(self) -> int:
        return self._len

    @property
    def has_labels(self) -> bool:
        return False

    def read(self, indices: np.ndarray) -> Batch:
        tokens = self._arrays[0][indices]
        return {"x": tokens, "tokens": tokens}


# --------------------------------------------------------------------------------------------
# Folders of real videos.


def _list_videos(path: str | None, split: str) -> list[str]:
    if not path:
        raise ValueError(f"data.path is required for source='video_folder': {VIDEO_FOLDER_LAYOUT}.")
    folder = os.path.join(os.path.expanduser(str(path)), split)
    if not os.path.isdir(folder):
        raise ValueError(
            f"{folder} is not a directory (data.path={str(path)!r}, split={split!r}); expected "
            f"{VIDEO_FOLDER_LAYOUT}."
        )
    videos = sorted(
        os.path.join(folder, name)
        for name in os.listdir(folder)
        if name.endswith(".npy") or os.path.isdir(os.path.join(folder, name))
    )
    if not videos:
        raise ValueError(f"{folder} holds no video; expected {VIDEO_FOLDER_LAYOUT}.")
    return videos


def _frame_files(video: str) -> list[str]:
    return sorted(
        os.path.join(video, f) for f in os.listdir(video) if f.lower().endswith(FRAME_EXTENSIONS)
    )


def _num_frames(video: str) -> int:
    if video.endswith(".npy"):
        shape = np.load(video, mmap_mode="r").shape
        if len(shape) not in (3, 4) or (len(shape) == 4 and shape[3] not in (1, 3)):
            raise ValueError(
                f"{video} holds an array of shape {shape}; expected uint8 (F, H, W) or "
                "(F, H, W, C) with C 1 or 3."
            )
        return int(shape[0])
    return len(_frame_files(video))


def resize_frame(frame: np.ndarray, resolution: int) -> np.ndarray:
    """uint8 (H, W) or (H, W, C) -> uint8 (resolution, resolution, 3): the shorter side
    resized to `resolution` (bilinear), then a centred square crop, as TATS prepares frames."""
    from PIL import Image

    frame = np.asarray(frame, np.uint8)
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[..., 0]
    image = Image.fromarray(frame).convert("RGB")
    w, h = image.size
    scale = resolution / min(h, w)
    new_w, new_h = max(resolution, round(w * scale)), max(resolution, round(h * scale))
    image = image.resize((new_w, new_h), Image.BILINEAR)
    left, top = (new_w - resolution) // 2, (new_h - resolution) // 2
    return np.asarray(image.crop((left, top, left + resolution, top + resolution)), np.uint8)


class VideoFolderReader:
    """The "video_folder" record source: clips of `num_frames` frames of local videos (layout
    and preprocessing in the module docstring); record i is the i-th clip."""

    def __init__(self, path: str, split: str = "train", num_frames: int = 16,
                 resolution: int = 128):
        _check_positive(num_frames=num_frames, resolution=resolution)
        self.path, self.split = path, split
        self.num_frames, self.resolution = int(num_frames), int(resolution)
        self.videos = _list_videos(path, split)
        clips = [(v, c) for v, video in enumerate(self.videos)
                 for c in range(_num_frames(video) // self.num_frames)]
        if not clips:
            raise ValueError(
                f"No video of {os.path.join(str(path), split)} has {self.num_frames} frames; "
                "lower data.num_frames or add longer videos."
            )
        self.clips = np.asarray(clips, np.int64)

    def __len__(self) -> int:
        return int(self.clips.shape[0])

    @property
    def has_labels(self) -> bool:
        return False

    @property
    def event_shape(self) -> tuple[int, int, int, int]:
        return (self.num_frames, self.resolution, self.resolution, 3)

    def clip(self, index: int) -> np.ndarray:
        """uint8 (T, resolution, resolution, 3): clip `index`."""
        from PIL import Image

        v, c = self.clips[index]
        video = self.videos[int(v)]
        frames = range(int(c) * self.num_frames, (int(c) + 1) * self.num_frames)
        if video.endswith(".npy"):
            data = np.load(video, mmap_mode="r")
            raw = [np.asarray(data[f]) for f in frames]
        else:
            files = _frame_files(video)
            raw = [np.asarray(Image.open(files[f])) for f in frames]
        return np.stack([resize_frame(f, self.resolution) for f in raw])

    def read(self, indices: np.ndarray) -> Batch:
        clips = np.stack([self.clip(int(i)) for i in indices])
        return {"x": clips.reshape(-1, *self.event_shape)}


__all__ = [
    "FRAME_EXTENSIONS",
    "MOVING_DIGITS_DEFAULTS",
    "MOVING_DIGITS_SIZES",
    "MovingDigits",
    "MovingDigitsReader",
    "VideoFolderReader",
    "VideoTokensReader",
    "bounce",
    "digit_sprites",
    "moving_digits",
    "moving_digits_video",
    "read_video_tokens",
    "resize_frame",
    "write_video_tokens",
]
