"""A Flax NNX module's variables as a flat {path: array} dict, and the module rebuilt from one.

Used to store the weights of the evaluation networks of `flowjax.metrics` (the FID Inception of
Heusel et al., 2017, converted from pytorch-fid's file; the cached digits classifier) as plain
.npz files, names being the module paths ("mixed_5b/branch1x1/conv/kernel").
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from flowjax.parallel import path_string


def module_arrays(module: nnx.Module) -> dict[str, np.ndarray]:
    """{path: host array} of every variable of `module`."""
    leaves = jax.tree_util.tree_flatten_with_path(nnx.state(module))[0]
    return {path_string(key_path): np.asarray(leaf) for key_path, leaf in leaves}


def load_module(build: Callable[[], nnx.Module], path: str, hint: str) -> nnx.Module:
    """The module `build()` (never run: only its shapes are traced) with its variables read from
    the .npz at `path` (as written from `module_arrays`); a ValueError naming the file and
    `hint` if a name or a shape differs."""
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    graphdef, state = nnx.split(nnx.eval_shape(build))
    leaves, treedef = jax.tree_util.tree_flatten_with_path(state)
    names = [path_string(key_path) for key_path, _ in leaves]
    missing = sorted(set(names) - set(arrays))
    unexpected = sorted(set(arrays) - set(names))
    if missing or unexpected:
        raise ValueError(
            f"{path!r} does not hold the expected arrays: missing {missing[:5]} "
            f"({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)}). {hint}"
        )
    values = []
    for name, (_, leaf) in zip(names, leaves, strict=True):
        value = arrays[name]
        if value.shape != leaf.shape:
            raise ValueError(
                f"{path!r}: {name} has shape {value.shape}, the network expects {leaf.shape}. "
                f"{hint}"
            )
        values.append(jnp.asarray(value, leaf.dtype))
    return nnx.merge(graphdef, jax.tree_util.tree_unflatten(treedef, values))
