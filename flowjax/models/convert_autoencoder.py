"""Loads a KL autoencoder saved by `diffusers` (`AutoencoderKL.save_pretrained`: config.json and
diffusion_pytorch_model.safetensors) into `flowjax.models.autoencoder.AutoencoderKL`.

Nothing is downloaded. On a machine with internet access, e.g. Stable Diffusion's VAE:

    python -c "from diffusers import AutoencoderKL; \\
        AutoencoderKL.from_pretrained('stabilityai/sd-vae-ft-ema').save_pretrained('/path/vae')"

then copy the directory here and call `load_autoencoder_kl('/path/vae')`.

Name mapping (E = encoder, D = decoder; l a level, j a block; convolution weights (O, I, kh,
kw) become kernels (kh, kw, I, O), linear weights (O, I) kernels (I, O), norm weights scales):

    {E,D}.conv_in / conv_out / conv_norm_out     -> {encoder,decoder}.conv_in / conv_out / norm_out
    E.down_blocks.l.resnets.j.*                  -> encoder.resnets[l][j].*
    E.down_blocks.l.downsamplers.0.conv          -> encoder.downsamplers[l]
    D.up_blocks.l.resnets.j.*                    -> decoder.resnets[l][j].*
    D.up_blocks.l.upsamplers.0.conv              -> decoder.upsamplers[l]
    {E,D}.mid_block.resnets.k.*                  -> {encoder,decoder}.mid.resnets[k].*
    {E,D}.mid_block.attentions.0.group_norm, to_q, to_k, to_v, to_out.0
                                                 -> {encoder,decoder}.mid.attention.*
    quant_conv, post_quant_conv                  -> the same names

`save_autoencoder_kl` writes the same layout back (an autoencoder trained here, for use by
`load_autoencoder_kl`, by the latent perceptual loss or by diffusers).

Older checkpoints name the attention maps query / key / value / proj_attn (as 1x1 convolutions
or linear maps); both are read. Missing, unexpected and misshapen names are reported together.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re

import jax.numpy as jnp
import numpy as np
from flax import nnx

from flowjax.models.autoencoder import AutoencoderConfig, AutoencoderKL

WEIGHTS = "diffusion_pytorch_model.safetensors"
_HOW_TO_GET = (
    "Nothing can be downloaded here: on a machine with internet run\n"
    "  python -c \"from diffusers import AutoencoderKL; AutoencoderKL.from_pretrained("
    "'stabilityai/sd-vae-ft-ema').save_pretrained('/path/vae')\"\n"
    "and copy the directory here."
)
_OLD_ATTENTION = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def _our_path(name: str) -> tuple[str | int, ...]:
    """Our state path of a diffusers parameter name (before the leaf renaming)."""
    name = re.sub(r"attentions\.0\.(query|key|value|proj_attn)\.",
                  lambda m: f"attentions.0.{_OLD_ATTENTION[m.group(1)]}.", name)
    rules = [
        (r"(encoder|decoder)\.(down|up)_blocks\.(\d+)\.resnets\.(\d+)\.(\w+)\.(\w+)",
         lambda m: (m[1], "resnets", int(m[3]), int(m[4]), m[5], m[6])),
        (r"(encoder|decoder)\.(down|up)_blocks\.(\d+)\.(down|up)samplers\.0\.conv\.(\w+)",
         lambda m: (m[1], f"{m[4]}samplers", int(m[3]), m[5])),
        (r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(\w+)\.(\w+)",
         lambda m: (m[1], "mid", "resnets", int(m[2]), m[3], m[4])),
        (r"(encoder|decoder)\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v)\.(\w+)",
         lambda m: (m[1], "mid", "attention", m[2], m[3])),
        (r"(encoder|decoder)\.mid_block\.attentions\.0\.to_out\.0\.(\w+)",
         lambda m: (m[1], "mid", "attention", "to_out", m[2])),
        (r"(encoder|decoder)\.conv_norm_out\.(\w+)", lambda m: (m[1], "norm_out", m[2])),
        (r"(encoder|decoder)\.(conv_in|conv_out)\.(\w+)", lambda m: (m[1], m[2], m[3])),
        (r"(quant_conv|post_quant_conv)\.(\w+)", lambda m: (m[1], m[2])),
    ]
    for pattern, path in rules:
        match = re.fullmatch(pattern, name)
        if match:
            return path(match)
    return ("unexpected", name)


def _leaf(path: tuple, value: np.ndarray, target_ndim: int) -> tuple[tuple, np.ndarray]:
    """The leaf name (weight -> kernel or scale) and the array in our layout."""
    *module, leaf = path
    if leaf == "bias":
        return tuple(path), value
    if target_ndim == 1:  # a norm
        return (*module, "scale"), value
    if value.ndim == 4 and target_ndim == 2:  # an attention map stored as a 1x1 convolution
        value = value[:, :, 0, 0]
    value = value.transpose(2, 3, 1, 0) if value.ndim == 4 else value.T
    return (*module, "kernel"), value


def _files(path: str | os.PathLike) -> tuple[str, str]:
    """config.json and the weights of a checkpoint directory; FileNotFoundError naming a missing
    one."""
    path = os.path.expanduser(os.fspath(path))
    config_file, weights = os.path.join(path, "config.json"), os.path.join(path, WEIGHTS)
    for file in (config_file, weights):
        if not os.path.isfile(file):
            raise FileNotFoundError(f"No {os.path.basename(file)} at {file!r}. {_HOW_TO_GET}")
    return config_file, weights


def read_config(path: str | os.PathLike) -> AutoencoderConfig:
    """The config of a checkpoint directory (its weights must be there too, not read)."""
    config_file, _ = _files(path)
    with open(config_file) as f:
        return AutoencoderConfig.from_diffusers_json(json.load(f))


def read_checkpoint(path: str | os.PathLike) -> tuple[AutoencoderConfig, dict[str, np.ndarray]]:
    """The config and the arrays (diffusers names) of a checkpoint directory."""
    from safetensors.numpy import load_file

    return read_config(path), load_file(_files(path)[1])


def load_autoencoder_kl(path: str | os.PathLike) -> AutoencoderKL:
    """The `AutoencoderKL` of a diffusers checkpoint directory, float32."""
    config, arrays = read_checkpoint(path)
    abstract = nnx.eval_shape(lambda: AutoencoderKL(config, rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    flat = nnx.to_flat_state(state)
    shapes = {p: leaf.shape for p, leaf in flat}
    found, problems = {}, []
    for name, value in arrays.items():
        ours = _our_path(name)
        target = shapes.get((*ours[:-1], "kernel"),
                            shapes.get((*ours[:-1], "scale"), shapes.get(ours)))
        if ours[0] == "unexpected" or target is None:
            problems.append(f"unexpected {name}")
            continue
        leaf_path, converted = _leaf(ours, np.asarray(value, np.float32), len(target))
        if converted.shape != shapes.get(leaf_path):
            problems.append(f"{name} {value.shape} (expected {shapes.get(leaf_path)})")
            continue
        found[leaf_path] = converted
    missing = sorted(str(p) for p in set(shapes) - set(found))
    if missing:
        problems.append(f"missing {len(missing)}: {', '.join(missing)}")
    if problems:
        raise ValueError(
            f"The weights at {os.fspath(path)!r} do not match the AutoencoderKL of its "
            f"config.json ({config}): " + "; ".join(problems) + "."
        )
    for leaf_path, variable in flat:
        variable.set_value(jnp.asarray(found[leaf_path]))
    return nnx.merge(graphdef, nnx.from_flat_state(flat))


def _diffusers_name(path: tuple[str | int, ...]) -> str:
    """The diffusers parameter name of one of our state paths (the inverse of `_our_path`)."""
    *module, leaf = path
    leaf = {"kernel": "weight", "scale": "weight"}.get(leaf, leaf)
    head = module[0]
    if head in ("encoder", "decoder"):
        blocks = "down_blocks" if head == "encoder" else "up_blocks"
        rest = module[1:]
        if rest[0] == "resnets":
            name = f"{head}.{blocks}.{rest[1]}.resnets.{rest[2]}.{'.'.join(rest[3:])}"
        elif rest[0] in ("downsamplers", "upsamplers"):
            name = f"{head}.{blocks}.{rest[1]}.{rest[0]}.0.conv"
        elif rest[:2] == ["mid", "resnets"]:
            name = f"{head}.mid_block.resnets.{rest[2]}.{'.'.join(rest[3:])}"
        elif rest[:2] == ["mid", "attention"]:
            part = "to_out.0" if rest[2] == "to_out" else rest[2]
            name = f"{head}.mid_block.attentions.0.{part}"
        elif rest[0] == "norm_out":
            name = f"{head}.conv_norm_out"
        else:
            name = f"{head}.{'.'.join(map(str, rest))}"
    else:
        name = ".".join(map(str, module))
    return f"{name}.{leaf}"


def save_autoencoder_kl(
    module: AutoencoderKL, path: str | os.PathLike, *, scaling_factor: float | None = None
) -> str:
    """Writes `module` as a diffusers checkpoint directory (config.json and
    diffusion_pytorch_model.safetensors) that `load_autoencoder_kl` and diffusers'
    `AutoencoderKL.from_pretrained` read; `scaling_factor` replaces the config's. Returns the
    directory. Frozen weights (`freeze`) are written like parameters."""
    from safetensors.numpy import save_file

    config = module.config
    if scaling_factor is not None:
        if not scaling_factor > 0:
            raise ValueError(f"scaling_factor must be > 0, got {scaling_factor!r}.")
        config = dataclasses.replace(config, scaling_factor=float(scaling_factor))
    arrays = {}
    for leaf_path, variable in nnx.to_flat_state(nnx.state(module)):
        value = np.asarray(variable[...], np.float32)
        if value.ndim == 4:  # (kh, kw, I, O) -> (O, I, kh, kw)
            value = value.transpose(3, 2, 0, 1)
        elif value.ndim == 2:  # (I, O) -> (O, I)
            value = value.T
        arrays[_diffusers_name(tuple(map(_plain, leaf_path)))] = np.ascontiguousarray(value)
    directory = os.path.expanduser(os.fspath(path))
    os.makedirs(directory, exist_ok=True)
    save_file(arrays, os.path.join(directory, WEIGHTS))
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config.to_diffusers_json(), f, indent=2)
    return directory


def _plain(part):
    """A state path entry as a str or int."""
    return part if isinstance(part, int) else str(part)


__all__ = [
    "WEIGHTS",
    "load_autoencoder_kl",
    "read_checkpoint",
    "read_config",
    "save_autoencoder_kl",
]
