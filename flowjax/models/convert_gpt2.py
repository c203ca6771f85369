"""Loads a GPT-2 (Radford et al., 2019, "Language Models are Unsupervised Multitask Learners")
saved by Hugging Face `transformers` into `flowjax.models.gpt2.GPT2`.

A checkpoint is a local directory written by `GPT2LMHeadModel.save_pretrained`: `config.json`
and `model.safetensors` (or shards listed in `model.safetensors.index.json`), read with
`safetensors.numpy`; a directory with only `pytorch_model.bin` is read with torch when torch is
importable. Nothing is downloaded. On a machine with internet access:

    python -c "from transformers import GPT2LMHeadModel; \\
        GPT2LMHeadModel.from_pretrained('gpt2-large').save_pretrained('/path/gpt2-large')"

then copy the directory here and call `load_gpt2('/path/gpt2-large')`.

Name mapping (the "transformer." prefix of GPT2LMHeadModel is optional; `transformers`' Conv1D
stores its weight as (in, out), the layout of an `nnx.Linear` kernel, so no array is transposed):

    wte.weight (V, d)                 -> wte                 (also the tied LM head)
    wpe.weight (n_positions, d)       -> wpe
    h.{i}.ln_1.weight / .bias         -> blocks[i].ln_1.scale / .bias
    h.{i}.attn.c_attn.weight / .bias  -> blocks[i].attn_qkv.kernel (d, 3d) / .bias (3d,)
    h.{i}.attn.c_proj.weight / .bias  -> blocks[i].attn_proj.kernel (d, d) / .bias
    h.{i}.ln_2.weight / .bias         -> blocks[i].ln_2.scale / .bias
    h.{i}.mlp.c_fc.weight / .bias     -> blocks[i].mlp_fc.kernel (d, 4d) / .bias (4d,)
    h.{i}.mlp.c_proj.weight / .bias   -> blocks[i].mlp_proj.kernel (4d, d) / .bias
    ln_f.weight / .bias               -> ln_f.scale / .bias

Older checkpoints also hold each layer's causal-mask buffers (h.{i}.attn.bias,
h.{i}.attn.masked_bias), which are skipped, and may hold lm_head.weight, which must equal
wte.weight (the head is tied). Every shape is checked against the config; missing, unexpected and
misshapen names are reported together in one ValueError.
"""

from __future__ import annotations

import json
import os
import re

import jax.numpy as jnp
import numpy as np
from flax import nnx

from flowjax.models.gpt2 import GPT2, GPT2Config

_HOW_TO_GET = (
    "Save one on a machine with internet access: python -c \"from transformers import "
    "GPT2LMHeadModel; GPT2LMHeadModel.from_pretrained('gpt2-large')"
    ".save_pretrained('/path/gpt2-large')\", then copy the directory here."
)
_BUFFERS = re.compile(r"h\.\d+\.attn\.(masked_)?bias")
_LEAVES = {"weight": "scale", "bias": "bias"}
_LINEAR_LEAVES = {"weight": "kernel", "bias": "bias"}
_BLOCK_MODULES = {
    "ln_1": ("ln_1", _LEAVES),
    "ln_2": ("ln_2", _LEAVES),
    "attn.c_attn": ("attn_qkv", _LINEAR_LEAVES),
    "attn.c_proj": ("attn_proj", _LINEAR_LEAVES),
    "mlp.c_fc": ("mlp_fc", _LINEAR_LEAVES),
    "mlp.c_proj": ("mlp_proj", _LINEAR_LEAVES),
}


def hf_parameter_names(config: GPT2Config) -> dict[str, tuple[str | int, ...]]:
    """The Hugging Face name (without "transformer.") of every parameter of a GPT2 of this
    config, and its path in the module's state."""
    names: dict[str, tuple[str | int, ...]] = {
        "wte.weight": ("wte",),
        "wpe.weight": ("wpe",),
        "ln_f.weight": ("ln_f", "scale"),
        "ln_f.bias": ("ln_f", "bias"),
    }
    for i in range(config.n_layer):
        for hf_module, (module, leaves) in _BLOCK_MODULES.items():
            for hf_leaf, leaf in leaves.items():
                names[f"h.{i}.{hf_module}.{hf_leaf}"] = ("blocks", i, module, leaf)
    return names


def _read_safetensors(files: list[str]) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    arrays: dict[str, np.ndarray] = {}
    for file in files:
        arrays.update(load_file(file))
    return arrays


def _read_torch_bin(file: str) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError as error:
        raise FileNotFoundError(
            f"{os.path.dirname(file)!r} has pytorch_model.bin but no model.safetensors, and "
            f"reading the .bin needs torch, which is not installed. Install torch, or save the "
            f"model as safetensors: GPT2LMHeadModel.from_pretrained(...).save_pretrained(...) "
            f"(safetensors is its default)."
        ) from error
    state_dict = torch.load(file, map_location="cpu", weights_only=True)
    return {name: value.float().numpy() for name, value in state_dict.items()}


def read_checkpoint(path: str | os.PathLike) -> tuple[GPT2Config, dict[str, np.ndarray]]:
    """The config and the arrays (Hugging Face names, as stored) of a checkpoint directory."""
    path = os.path.expanduser(os.fspath(path))
    if not os.path.isdir(path):
        raise FileNotFoundError(f"No GPT-2 checkpoint directory at {path!r}. {_HOW_TO_GET}")
    config_file = os.path.join(path, "config.json")
    if not os.path.isfile(config_file):
        raise FileNotFoundError(
            f"No config.json in the GPT-2 checkpoint directory {path!r}. {_HOW_TO_GET}"
        )
    with open(config_file) as f:
        config = GPT2Config.from_hf_json(json.load(f))
    single = os.path.join(path, "model.safetensors")
    index = os.path.join(path, "model.safetensors.index.json")
    torch_bin = os.path.join(path, "pytorch_model.bin")
    if os.path.isfile(single):
        arrays = _read_safetensors([single])
    elif os.path.isfile(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        missing = [s for s in shards if not os.path.isfile(os.path.join(path, s))]
        if missing:
            raise FileNotFoundError(
                f"The GPT-2 checkpoint {path!r} lists shards that are not there: {missing}. "
                f"{_HOW_TO_GET}"
            )
        arrays = _read_safetensors([os.path.join(path, s) for s in shards])
    elif os.path.isfile(torch_bin):
        arrays = _read_torch_bin(torch_bin)
    else:
        raise FileNotFoundError(
            f"No weights in the GPT-2 checkpoint directory {path!r}: expected model.safetensors "
            f"(or model.safetensors.index.json and its shards, or pytorch_model.bin with torch "
            f"installed). {_HOW_TO_GET}"
        )
    return config, arrays


def _match_names(
    config: GPT2Config,
    arrays: dict[str, np.ndarray],
    shapes: dict[tuple[str | int, ...], tuple[int, ...]],
) -> dict[tuple[str | int, ...], np.ndarray]:
    """The arrays by state path, after checking that their names and shapes are those of the
    state paths and shapes of the config's network."""
    arrays = {name.removeprefix("transformer."): value for name, value in arrays.items()}
    expected = hf_parameter_names(config)
    head = arrays.pop("lm_head.weight", None)
    problems = []
    if head is not None and "wte.weight" in arrays and not np.array_equal(
        head, arrays["wte.weight"]
    ):
        problems.append("lm_head.weight differs from wte.weight, but GPT-2's head is tied")
    missing = sorted(set(expected) - set(arrays))
    unexpected = sorted(n for n in set(arrays) - set(expected) if not _BUFFERS.fullmatch(n))
    if missing:
        problems.append(f"missing {len(missing)}: {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)}: {', '.join(unexpected)}")
    misshapen = [
        f"{name} {arrays[name].shape} (expected {shapes[path]})"
        for name, path in expected.items()
        if name in arrays and arrays[name].shape != shapes[path]
    ]
    if misshapen:
        problems.append(f"wrong shapes: {', '.join(misshapen)}")
    if problems:
        raise ValueError(
            f"The GPT-2 weights do not match the network of its config.json ({config}): "
            + "; ".join(problems)
            + "."
        )
    return {path: arrays[name] for name, path in expected.items()}


def load_gpt2(path: str | os.PathLike, dtype=None) -> GPT2:
    """The `GPT2` of a Hugging Face checkpoint directory (see the module docstring), with float32
    parameters and `dtype` as its compute dtype (None: float32)."""
    config, arrays = read_checkpoint(path)
    abstract = nnx.eval_shape(lambda: GPT2(config, dtype=dtype, rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    flat = nnx.to_flat_state(state)
    by_path = _match_names(config, arrays, {path: leaf.shape for path, leaf in flat})
    for leaf_path, variable in flat:
        variable.set_value(jnp.asarray(by_path[leaf_path], jnp.float32))
    return nnx.merge(graphdef, nnx.from_flat_state(flat))
