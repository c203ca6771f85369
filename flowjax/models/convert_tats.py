"""Loads the published TATS 3D-VQGAN video tokenizer (Ge et al., ECCV 2022, "Long Video
Generation with Time-Agnostic VQGAN and Time-Sensitive Transformer"; songweige/TATS), the
tokenizer MeBT (Yoo et al., CVPR 2023) trains on, into `flowjax.models.VQVAE3D`.

Nothing is downloaded. A TATS checkpoint is a PyTorch Lightning file (`*.ckpt`, the model's
weights under "state_dict"); it is read with torch when torch is installed, or from a .npz of
the same state dict (one array per key) written where torch is, e.g.

    python -c "import torch, numpy as np; sd = torch.load('vqgan.ckpt', map_location='cpu')\\
        ['state_dict']; np.savez('vqgan.npz', **{k: v.numpy() for k, v in sd.items()})"

Name mapping (i a level; TATS's convolutions are channels first: conv weights (O, I, kt, kh, kw)
become kernels (kt, kh, kw, I, O), transposed-conv weights (I, O, kt, kh, kw) kernels (kt, kh,
kw, I, O); norm weight / bias / running_mean / running_var become scale / bias / mean / var):

    encoder.conv_first.conv                      -> encoder.conv_first
    encoder.conv_blocks.i.down.conv              -> encoder.down[i]
    encoder.conv_blocks.i.res.{norm,conv}{1,2}   -> encoder.res[i].*  (convs: *.conv)
    encoder.final_block.0                        -> encoder.norm_out
    decoder.final_block.0                        -> decoder.norm_in
    decoder.conv_blocks.i.up.convt               -> decoder.up[i]
    decoder.conv_blocks.i.res{1,2}.*             -> decoder.res{1,2}[i].*
    decoder.conv_last.conv                       -> decoder.conv_last
    pre_vq_conv.conv, post_vq_conv.conv          -> pre_vq_conv, post_vq_conv
    codebook.embeddings                          -> codebook

Not read: the discriminators and LPIPS (image_discriminator.*, video_discriminator.*,
perceptual_model.*), the codebook's EMA state (codebook.N, codebook.z_avg) and the batch norms'
num_batches_tracked. Missing, unexpected and misshapen names are reported together.

The published 128 px tokenizers (`TATS_SETTINGS`) use synchronised batch norm; the converted
model holds its running statistics (norm="batch", evaluation mode) and encodes / decodes
videos of (T, 128, 128, 3) in [-1, 1], T a multiple of 4, into (T / 4, 16, 16) tokens.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from flowjax.models.vqvae3d import VQVAE3D

TATS_SETTINGS = dict(
    hidden_channels=32,
    downsample=(4, 8, 8),
    codebook_size=16_384,
    embedding_dim=256,
    norm="batch",
    norm_groups=32,
    normalize_codes=False,  # TATS looks codes up by plain l2 distance
)
"""The published TATS tokenizer at 128 px (--n_hiddens 32 --downsample 4 8 8 --n_codes 16384
--embedding_dim 256 --norm_type batch)."""
TATS_EVENT_SHAPE = (16, 128, 128, 3)

_IGNORED = re.compile(
    r"^(image_discriminator|video_discriminator|perceptual_model)\.|^codebook\.(N|z_avg)$"
    r"|\.num_batches_tracked$"
)
_NORM_NAMES = {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"}
_RULES: list[tuple[re.Pattern, Any]] = [
    (re.compile(r"^encoder\.conv_first\.conv\.(weight|bias)$"),
     lambda m: (("encoder", "conv_first"), m[1], "conv")),
    (re.compile(r"^encoder\.conv_blocks\.(\d+)\.down\.conv\.(weight|bias)$"),
     lambda m: (("encoder", "down", int(m[1])), m[2], "conv")),
    (re.compile(r"^encoder\.conv_blocks\.(\d+)\.res\.(conv[12])\.conv\.(weight|bias)$"),
     lambda m: (("encoder", "res", int(m[1]), m[2]), m[3], "conv")),
    (re.compile(r"^encoder\.conv_blocks\.(\d+)\.res\.(norm[12])\.(\w+)$"),
     lambda m: (("encoder", "res", int(m[1]), m[2]), m[3], "norm")),
    (re.compile(r"^encoder\.final_block\.0\.(\w+)$"),
     lambda m: (("encoder", "norm_out"), m[1], "norm")),
    (re.compile(r"^decoder\.final_block\.0\.(\w+)$"),
     lambda m: (("decoder", "norm_in"), m[1], "norm")),
    (re.compile(r"^decoder\.conv_blocks\.(\d+)\.up\.convt\.(weight|bias)$"),
     lambda m: (("decoder", "up", int(m[1])), m[2], "convt")),
    (re.compile(r"^decoder\.conv_blocks\.(\d+)\.(res[12])\.(conv[12])\.conv\.(weight|bias)$"),
     lambda m: (("decoder", m[2], int(m[1]), m[3]), m[4], "conv")),
    (re.compile(r"^decoder\.conv_blocks\.(\d+)\.(res[12])\.(norm[12])\.(\w+)$"),
     lambda m: (("decoder", m[2], int(m[1]), m[3]), m[4], "norm")),
    (re.compile(r"^decoder\.conv_last\.conv\.(weight|bias)$"),
     lambda m: (("decoder", "conv_last"), m[1], "conv")),
    (re.compile(r"^(pre_vq_conv|post_vq_conv)\.conv\.(weight|bias)$"),
     lambda m: ((m[1],), m[2], "conv")),
]


def tats_target(key: str) -> tuple[tuple[Any, ...], str] | None:
    """(path of the VQVAE3D variable, layout kind "conv" / "convt" / "norm" / "codebook") of a
    TATS state-dict key; None for a key that is not read; KeyError for an unknown key."""
    if _IGNORED.search(key):
        return None
    if key == "codebook.embeddings":
        return ("codebook",), "codebook"
    for pattern, target in _RULES:
        m = pattern.match(key)
        if m:
            module, name, kind = target(m)
            if kind == "norm":
                if name not in _NORM_NAMES:
                    raise KeyError(key)
                return (*module, _NORM_NAMES[name]), kind
            return (*module, "kernel" if name == "weight" else "bias"), kind
    raise KeyError(key)


def _to_flax(value: np.ndarray, kind: str, leaf: str) -> np.ndarray:
    if leaf == "kernel" and kind == "conv":
        return value.transpose(2, 3, 4, 1, 0)
    if leaf == "kernel" and kind == "convt":
        return value.transpose(2, 3, 4, 0, 1)
    return value


def load_tats_state_dict(model: VQVAE3D, state_dict: Mapping[str, Any]) -> VQVAE3D:
    """Copies a TATS VQGAN state dict (arrays in TATS's layout) into `model`, in place.

    Raises:
      ValueError: listing every unknown key, every variable of `model` left without a weight
        and every weight whose shape does not fit (nothing is changed then).
    """
    graphdef, state = nnx.split(model)
    flat = dict(nnx.to_flat_state(state))
    updates, unknown, misshapen = {}, [], []
    for key, value in state_dict.items():
        try:
            target = tats_target(key)
        except KeyError:
            unknown.append(key)
            continue
        if target is None:
            continue
        path, kind = target
        value = _to_flax(np.asarray(value, np.float32), kind, path[-1])
        if path not in flat:
            unknown.append(key)
        elif tuple(value.shape) != tuple(flat[path].shape):
            misshapen.append(f"{key}: {tuple(value.shape)} in the flax layout, the model has "
                             f"{tuple(flat[path].shape)}")
        else:
            updates[path] = value
    missing = [".".join(map(str, p)) for p in flat if p not in updates]
    if unknown or missing or misshapen:
        raise ValueError(
            "The state dict does not fit this VQVAE3D (built with TATS's settings? see "
            "flowjax.models.convert_tats.TATS_SETTINGS):"
            + (f"\n  unknown keys: {unknown}" if unknown else "")
            + (f"\n  variables without a weight: {missing}" if missing else "")
            + (f"\n  shapes: {misshapen}" if misshapen else "")
        )
    for path, value in updates.items():
        flat[path].set_value(jnp.asarray(value))
    nnx.update(model, nnx.from_flat_state(flat))
    return model


def read_state_dict(path: str) -> dict[str, np.ndarray]:
    """The arrays of a TATS checkpoint: a .npz of the state dict, or a Lightning .ckpt / .pt
    (read with torch; the weights under "state_dict" when present)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"TATS checkpoint {path!r} does not exist. Nothing can be downloaded here: get the "
            "VQGAN checkpoint of songweige/TATS (e.g. its UCF-101 128 px tokenizer) where there "
            "is network access and copy the .ckpt (or a .npz of its state dict; see "
            "flowjax.models.convert_tats) here."
        )
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    try:
        import torch
    except ImportError as e:
        raise ValueError(
            f"Reading the PyTorch checkpoint {path!r} needs torch, which is not installed; "
            "install it, or write a .npz of its state dict where torch is (see "
            "flowjax.models.convert_tats) and load that."
        ) from e
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    state_dict = checkpoint.get("state_dict", checkpoint)
    return {k: v.detach().float().numpy() for k, v in state_dict.items() if hasattr(v, "numpy")}


def load_tats_vqgan(
    path: str,
    event_shape: Sequence[int] = TATS_EVENT_SHAPE,
    **settings: Any,
) -> VQVAE3D:
    """The TATS tokenizer of checkpoint `path` as a `VQVAE3D` (TATS_SETTINGS, overridden by
    `settings`, e.g. downsample=(4, 4, 4) for a checkpoint trained so); event_shape (T, H, W,
    C) fixes only the checks of `VQVAE3D.check_video_shape` (convolutions take any size)."""
    state_dict = read_state_dict(path)
    model = VQVAE3D(event_shape, **{**TATS_SETTINGS, **settings}, rngs=nnx.Rngs(0))
    return load_tats_state_dict(model, state_dict)


__all__ = [
    "TATS_EVENT_SHAPE",
    "TATS_SETTINGS",
    "load_tats_state_dict",
    "load_tats_vqgan",
    "read_state_dict",
    "tats_target",
]
