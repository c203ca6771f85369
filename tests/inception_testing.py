"""Random FID-Inception weights in the torch layout, shared by the tests and the torch reference.

The weights file of pytorch-fid cannot be downloaded here, so the tests use a state dict with
its tensor names and shapes (tests/data/inception_fid_layout.json) and random values drawn from
NumPy with a fixed seed: He-normal convolutions and batch-norm statistics near (but not at)
the identity, so that activations stay of order one through the 94 layers. This file imports
only NumPy at the top: `tests/reference/make_inception_reference.py` runs it in an environment
with torch and without JAX.

Run as a worker (`python tests/inception_testing.py WEIGHTS INPUTS OUT MESH`) it computes
Inception features in a process with 8 virtual CPU devices (XLA_FLAGS is set by the caller).
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYOUT_FILE = os.path.join(REPO, "tests", "data", "inception_fid_layout.json")
REFERENCE_FILE = os.path.join(REPO, "tests", "data", "inception_fid_torch_reference.npz")
SEED = 0
INPUT_SHAPE = (4, 40, 40, 3)
"""Reference inputs: 8-bit-exact images, resized to RESIZE_TO before the network."""
RESIZE_TO = 75


def torch_layout() -> list[tuple[str, tuple[int, ...]]]:
    """(torch name, torch shape) of every float tensor of the FID Inception state dict."""
    with open(LAYOUT_FILE) as f:
        return [(name, tuple(shape)) for name, shape in json.load(f)]


def random_torch_weights(seed: int = SEED) -> dict[str, np.ndarray]:
    """A random state dict with the FID Inception's names and shapes (float32, and an int64
    num_batches_tracked per batch norm, as torch writes it)."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in torch_layout():
        if name.endswith("conv.weight"):
            fan_in = int(np.prod(shape[1:]))
            value = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        elif name.endswith("bn.weight"):
            value = rng.uniform(0.8, 1.2, shape)
        elif name.endswith("bn.running_var"):
            value = rng.uniform(0.5, 2.0, shape)
        elif name == "fc.weight":
            value = rng.standard_normal(shape) / np.sqrt(shape[1])
        else:  # bn.bias, bn.running_mean, fc.bias
            value = 0.1 * rng.standard_normal(shape)
        weights[name] = value.astype(np.float32)
        if name.endswith("bn.running_var"):
            weights[name.replace("running_var", "num_batches_tracked")] = np.array(0, np.int64)
    return weights


def reference_inputs(seed: int = SEED) -> np.ndarray:
    """Images INPUT_SHAPE in [-1, 1] on the 8-bit grid k / 127.5 - 1 (so quantizing them
    changes nothing)."""
    levels = np.random.default_rng(seed + 1).integers(0, 256, INPUT_SHAPE)
    return (levels / 127.5 - 1.0).astype(np.float32)


def write_layout() -> None:
    """Writes LAYOUT_FILE from the Flax network (run once; names as in pytorch-fid)."""
    import jax
    from flax import nnx

    from flowjax.metrics.inception import InceptionV3
    from flowjax.parallel import path_string

    abstract = nnx.eval_shape(lambda: InceptionV3(rngs=nnx.Rngs(0)))
    leaves = jax.tree_util.tree_flatten_with_path(nnx.state(abstract))[0]
    names = {"kernel": "conv.weight", "scale": "bn.weight", "bias": "bn.bias"}
    names.update(mean="bn.running_mean", var="bn.running_var")
    layout = []
    for key_path, leaf in leaves:
        parts = path_string(key_path).split("/")
        if parts[0] == "fc":
            shape = leaf.shape[::-1] if parts[1] == "kernel" else leaf.shape
            layout.append(("fc." + ("weight" if parts[1] == "kernel" else "bias"), shape))
            continue
        module = parts[0].replace("mixed", "Mixed").replace("conv2d", "Conv2d")
        shape = leaf.shape
        if parts[-1] == "kernel":
            shape = (shape[3], shape[2], shape[0], shape[1])
        layout.append((".".join([module, *parts[1:-2], names[parts[-1]]]), shape))
    with open(LAYOUT_FILE, "w") as f:
        f.write("[\n" + ",\n".join(json.dumps(entry) for entry in sorted(layout)) + "\n]\n")


def worker(weights: str, inputs: str, out: str, mesh_shape: str) -> None:
    import jax
    from jax.sharding import AxisType

    from flowjax.metrics import inception
    from flowjax.parallel import MESH_AXES

    shape = tuple(int(s) for s in mesh_shape.split(","))
    mesh = jax.make_mesh(shape, MESH_AXES, axis_types=(AxisType.Auto,) * 3)
    model = inception.load_inception(weights)
    fn = inception.inception_feature_fn(model, mesh=mesh, resize_to=RESIZE_TO)
    pool, logits = fn(np.load(inputs))
    np.savez(out, pool=pool, logits=logits, device_count=jax.device_count())


if __name__ == "__main__":
    worker(*sys.argv[1:])
