"""Inception-I3D, the Kinetics-400 video classifier whose logits are the features of FVD.

Carreira & Zisserman (2017), "Quo Vadis, Action Recognition? A New Model and the Kinetics
Dataset", section 2.4: Inception-v1 (Szegedy et al., 2015) with every 2D kernel inflated to 3D.
The Frechet Video Distance (Unterthiner et al., 2018, "Towards Accurate Generative Models of
Video: A New Metric & Challenges", eq. 1 applied to these features; `flowjax.metrics.fvd`) takes
the network's 400 Kinetics logits averaged over time: the reference code reads the TF-Hub module
`deepmind/i3d-kinetics-400` at `RGB/inception_i3d/Mean:0` ("the kinetics-i3d-400-logits
layer"), and the PyTorch ports that TATS / VideoGPT / MeBT use (`i3d_pretrained_400.pt`, the
TF-Hub weights in the key layout of piergiaj/pytorch-i3d, loaded by
`flowjax.models.convert_i3d`) return the same `logits.mean(time)`. StyleGAN-V's TorchScript
detector returns the same 400 pre-softmax values (`return_features=True`).

Layers (names of the PyTorch port, lower-cased here; channels-last NDHWC):

    Conv3d_1a_7x7     7x7x7 conv, stride 2, 64            (T, H, W) -> ceil(/2) each
    MaxPool3d_2a_3x3  1x3x3 max, stride (1, 2, 2)
    Conv3d_2b_1x1     1x1x1 conv, 64
    Conv3d_2c_3x3     3x3x3 conv, 192
    MaxPool3d_3a_3x3  1x3x3 max, stride (1, 2, 2)
    Mixed_3b, 3c      inception blocks -> 256, 480
    MaxPool3d_4a_3x3  3x3x3 max, stride 2
    Mixed_4b ... 4f   -> 512, 512, 512, 528, 832
    MaxPool3d_5a_2x2  2x2x2 max, stride 2
    Mixed_5b, 5c      -> 832, 1024                        (ceil(T/8), ceil(H/32), ceil(W/32))
    Logits            2x7x7 average pool (VALID, stride 1), 1x1x1 conv with bias to 400,
                      mean over the remaining positions

An inception block concatenates (b0) 1x1x1; (b1a, b1b) 1x1x1 then 3x3x3; (b2a, b2b) 1x1x1 then
3x3x3; (b3a, b3b) 3x3x3 max pool (stride 1) then 1x1x1. Every convolution but the logits' is
followed by batch norm in inference mode and ReLU; the batch norm is folded into the
convolution when the weights are loaded (kernel * gamma / sqrt(var + eps), bias beta - mean *
gamma / sqrt(var + eps)), so each unit here is a convolution with bias.

Padding is TensorFlow's SAME, as in the original and as the port recomputes it from the input
size: a total of max(k - s, 0) (size divisible by the stride s) or max(k - size mod s, 0),
split floor / ceil before / after; `nnx.Conv` / `nnx.max_pool` with padding "SAME" pad exactly
so. The port pads its max pools with zeros and XLA's with -inf: every max pool here reads ReLU
outputs (>= 0) and every window holds at least one real entry, so the maxima are the same.

Input (the FVD protocol of the reference code and of TATS): clips (B, T, 224, 224, 3) in
[-1, 1] (uint8 frames x map to 2 x / 255 - 1), frames resized bilinearly to 224 x 224
(`flowjax.metrics.fvd.preprocess_videos`). The logits need the final 2x7x7 pool to fit:
T >= 9 (ceil(T/8) >= 2) and H, W >= 193 (ceil(H/32) >= 7); at 224 px and 16 frames the pool
leaves one position, at 128 frames 15 positions in time, averaged. `features` (the map after
Mixed_5c) takes any size.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

NUM_CLASSES = 400
INPUT_SIZE = 224
MIN_FRAMES = 9
"""Fewest frames for which the 2x7x7 logits pool fits: ceil(T / 8) >= 2."""
MIN_SIZE = 193
"""Smallest height / width for which it fits: ceil(H / 32) >= 7."""
FEATURE_CHANNELS = 1024

# Inception blocks: (name, input channels, (b0, b1a, b1b, b2a, b2b, b3b) output channels).
BLOCKS: tuple[tuple[str, int, tuple[int, ...]], ...] = (
    ("mixed_3b", 192, (64, 96, 128, 16, 32, 32)),
    ("mixed_3c", 256, (128, 128, 192, 32, 96, 64)),
    ("mixed_4b", 480, (192, 96, 208, 16, 48, 64)),
    ("mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
    ("mixed_4d", 512, (128, 128, 256, 24, 64, 64)),
    ("mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
    ("mixed_4f", 528, (256, 160, 320, 32, 128, 128)),
    ("mixed_5b", 832, (256, 160, 320, 32, 128, 128)),
    ("mixed_5c", 832, (384, 192, 384, 48, 128, 128)),
)
# The strided max pools, placed before the block they precede: (window, strides).
POOL_BEFORE = {
    "mixed_3b": ((1, 3, 3), (1, 2, 2)),  # MaxPool3d_3a_3x3
    "mixed_4b": ((3, 3, 3), (2, 2, 2)),  # MaxPool3d_4a_3x3
    "mixed_5b": ((2, 2, 2), (2, 2, 2)),  # MaxPool3d_5a_2x2
}


def max_pool_same(x: jax.Array, window: Sequence[int], strides: Sequence[int]) -> jax.Array:
    """TensorFlow-SAME 3D max pool of x (B, T, H, W, C) -> (B, ceil(T/s_t), ceil(H/s_h), ...)."""
    return nnx.max_pool(x, tuple(window), strides=tuple(strides), padding="SAME")


class Unit3D(nnx.Module):
    """Conv3d (TensorFlow SAME padding, batch norm folded into kernel and bias), then ReLU when
    `relu`. x (B, T, H, W, cin) -> (B, ceil(T/s), ceil(H/s), ceil(W/s), cout)."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: Sequence[int] = (1, 1, 1),
        *,
        strides: Sequence[int] = (1, 1, 1),
        relu: bool = True,
        rngs: nnx.Rngs,
    ):
        self.relu = relu
        self.conv = nnx.Conv(
            cin, cout, tuple(kernel), strides=tuple(strides), padding="SAME", rngs=rngs
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.conv(x)
        return nnx.relu(x) if self.relu else x


class InceptionBlock(nnx.Module):
    """x (B, T, H, W, cin) -> (B, T, H, W, b0 + b1b + b2b + b3b)."""

    def __init__(self, cin: int, channels: Sequence[int], *, rngs: nnx.Rngs):
        c0, c1a, c1b, c2a, c2b, c3b = channels
        self.b0 = Unit3D(cin, c0, rngs=rngs)
        self.b1a = Unit3D(cin, c1a, rngs=rngs)
        self.b1b = Unit3D(c1a, c1b, (3, 3, 3), rngs=rngs)
        self.b2a = Unit3D(cin, c2a, rngs=rngs)
        self.b2b = Unit3D(c2a, c2b, (3, 3, 3), rngs=rngs)
        self.b3b = Unit3D(cin, c3b, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        pooled = max_pool_same(x, (3, 3, 3), (1, 1, 1))  # b3a
        return jnp.concatenate(
            [self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(pooled)],
            axis=-1,
        )


def check_clip_shape(shape: Sequence[int]) -> None:
    """ValueError unless `shape` is (B, T, H, W, 3) with T >= MIN_FRAMES and H, W >= MIN_SIZE."""
    if len(shape) != 5 or shape[-1] != 3:
        raise ValueError(
            f"I3D expects clips of shape (B, T, H, W, 3) (channels last), got {tuple(shape)}."
        )
    _, frames, height, width, _ = shape
    if frames < MIN_FRAMES or min(height, width) < MIN_SIZE:
        raise ValueError(
            f"I3D's logits need at least {MIN_FRAMES} frames and frames of at least "
            f"{MIN_SIZE}x{MIN_SIZE} (its last 2x7x7 pool must fit; FVD resizes to "
            f"{INPUT_SIZE}x{INPUT_SIZE}); got {frames} frames of {height}x{width}."
        )


class InceptionI3d(nnx.Module):
    """The Kinetics I3D. `__call__(x)`: clips x (B, T, H, W, 3) in [-1, 1] (T >= 9, H, W >= 193;
    224 for FVD) -> logits (B, num_classes) averaged over time (and space beyond 224 px).

    `features(x)`: the Mixed_5c map (B, ceil(T/8), ceil(H/32), ceil(W/32), 1024) of any clip;
    `head(map)`: that map (B, T', H', W', 1024) with T' >= 2, H', W' >= 7 -> the logits.
    Attribute names are the PyTorch port's module names in lower case (Conv3d_1a_7x7 ->
    conv3d_1a_7x7, Mixed_4b.b1a -> mixed_4b.b1a, logits), so that the converter maps by name."""

    def __init__(self, num_classes: int = NUM_CLASSES, *, rngs: nnx.Rngs):
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}.")
        self.conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), strides=(2, 2, 2), rngs=rngs)
        self.conv3d_2b_1x1 = Unit3D(64, 64, rngs=rngs)
        self.conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3), rngs=rngs)
        for name, cin, channels in BLOCKS:
            setattr(self, name, InceptionBlock(cin, channels, rngs=rngs))
        self.logits = Unit3D(FEATURE_CHANNELS, num_classes, relu=False, rngs=rngs)

    def features(self, x: jax.Array) -> jax.Array:
        """Clips (B, T, H, W, 3) -> the Mixed_5c map (B, ceil(T/8), ceil(H/32), ceil(W/32),
        1024)."""
        if x.ndim != 5 or x.shape[-1] != 3:
            raise ValueError(f"I3D expects clips (B, T, H, W, 3), got shape {x.shape}.")
        x = self.conv3d_1a_7x7(x)
        x = max_pool_same(x, (1, 3, 3), (1, 2, 2))  # MaxPool3d_2a_3x3
        x = self.conv3d_2c_3x3(self.conv3d_2b_1x1(x))
        for name, _, _ in BLOCKS:
            if name in POOL_BEFORE:
                x = max_pool_same(x, *POOL_BEFORE[name])
            x = getattr(self, name)(x)
        return x

    def head(self, features: jax.Array) -> jax.Array:
        """The Mixed_5c map (B, T', H', W', 1024), T' >= 2, H', W' >= 7 -> logits (B,
        num_classes): 2x7x7 average pool (VALID, stride 1), 1x1x1 convolution with bias, mean
        over the (T' - 1) x (H' - 6) x (W' - 6) positions."""
        if features.ndim != 5 or features.shape[1] < 2 or min(features.shape[2:4]) < 7:
            raise ValueError(
                f"The I3D head needs a (B, T', H', W', {FEATURE_CHANNELS}) map with T' >= 2 and "
                f"H', W' >= 7, got {features.shape}."
            )
        pooled = nnx.avg_pool(features, (2, 7, 7), strides=(1, 1, 1), padding="VALID")
        return jnp.mean(self.logits(pooled), axis=(1, 2, 3))

    def __call__(self, x: jax.Array) -> jax.Array:
        check_clip_shape(x.shape)
        return self.head(self.features(x))

