"""The device mesh, and where batches and state live on it: the layer below models, metrics and
the trainer, so that all of them place arrays the same way without importing one another.

One mesh with the axes ("data", "fsdp", "tensor") is built from `config.sharding.mesh_shape`.
The batch is split over ("data", "fsdp") and replicated over "tensor".

Logical axes. Models name the dimensions of their kernels and activations by what they are,
and `LOGICAL_AXES` (updated by the pairs of `config.sharding.logical_axes`) says which mesh axes
split each name:

  kernels      "embed" (a model's width: "fsdp", FSDP), "mlp" (an MLP's hidden units, the
               heads x head-dim of attention projections, a convolution's output channels:
               "tensor", Megatron-style tensor parallelism), "vocab" ("tensor");
  activations  "batch" (("data", "fsdp")), "length" (the token sequence: none by default;
               "tensor" is Megatron's sequence parallelism, Korthikanti et al., 2022: between
               the attention and MLP blocks the residual stream is split over the sequence
               on the tensor axis, all-gathered before them and reduce-scattered after, so the
               norms, dropout and residual adds hold L / tensor positions per device), "heads"
               and "hidden" (attention heads and MLP hidden units inside a block: "tensor"),
               "act_embed" (the residual stream's width: none).

Each leaf of the train state (parameters, their EMA, the optimiser moments) is placed by the
first matching rule of `config.sharding.rules` (a regex on the leaf's path and one logical or
mesh axis name, None, or a tuple of names per dimension); leaves that no rule matches are
FSDP-sharded when large (their largest dimension divisible by the "fsdp" size is split over
"fsdp") and replicated otherwise. Adam's moments and the EMA have the paths and shapes of the
parameters they follow, so they are sharded the same way. Activations are laid out by
`constrain(x, names)` in the networks, which applies inside `logical_sharding(mesh, config)`
(the trainer's step) and is the identity elsewhere (sampling, a unit test).

The mesh axes are `AxisType.Auto`: the jitted step fixes where its inputs and outputs live
(`in_shardings` / `out_shardings`) and XLA's partitioner propagates the layout through the
model between the activation constraints.

Multi-host: every process calls the same functions; `global_batch` assembles the global batch
from each process's local rows with `jax.make_array_from_process_local_data`.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import re
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")
LOGICAL_AXES: dict[str, str | tuple[str, ...] | None] = {
    "embed": "fsdp",
    "mlp": "tensor",
    "vocab": "tensor",
    "batch": BATCH_AXES,
    "length": None,
    "heads": "tensor",
    "hidden": "tensor",
    "act_embed": None,
}
"""The default mesh axes of each logical axis name (module docstring)."""


class ShardingError(ValueError):
    """A dimension the sharding asks to split does not divide over its mesh axes."""


def logical_axis_rules(sharding_config: ml_collections.ConfigDict) -> dict[str, Any]:
    """`LOGICAL_AXES` updated by the (name, mesh axes) pairs of `sharding.logical_axes`."""
    rules = dict(LOGICAL_AXES)
    for name, axes in sharding_config.get("logical_axes", ()):
        rules[name] = tuple(axes) if isinstance(axes, list) else axes
    return rules


def mesh_axes_of(name: Any, rules: dict[str, Any]) -> Any:
    """The mesh axes of one spec entry: a logical name, a mesh axis, None or a tuple of those
    (flattened)."""
    if name is None or name in MESH_AXES:
        return name
    if isinstance(name, (tuple, list)):
        axes = []
        for part in name:
            resolved = mesh_axes_of(part, rules)
            axes += [] if resolved is None else (
                list(resolved) if isinstance(resolved, tuple) else [resolved])
        return tuple(axes) or None
    if name not in rules:
        raise ShardingError(
            f"Unknown axis name {name!r}: expected a mesh axis {MESH_AXES} or a logical axis "
            f"{tuple(rules)} (add it with config.sharding.logical_axes)."
        )
    return rules[name]


def mesh_axis_sizes(mesh_shape: Sequence[int], device_count: int) -> dict[str, int]:
    """Sizes of the MESH_AXES, the one -1 (if any) resolved to the remaining devices."""
    shape = list(mesh_shape)
    known = math.prod(s for s in shape if s != -1)
    if -1 in shape:
        if device_count % known:
            raise ValueError(
                f"sharding.mesh_shape={tuple(mesh_shape)}: the fixed axes ({known} devices) do "
                f"not divide the {device_count} available devices."
            )
        shape[shape.index(-1)] = device_count // known
    if math.prod(shape) != device_count:
        raise ValueError(
            f"sharding.mesh_shape={tuple(mesh_shape)} needs {math.prod(shape)} devices, but "
            f"{device_count} are available; use -1 for one axis to take the remaining devices."
        )
    return dict(zip(MESH_AXES, shape, strict=True))


def data_parallel_size(mesh_shape: Sequence[int], device_count: int) -> int:
    """Devices the batch is split over: the product of the "data" and "fsdp" axis sizes."""
    sizes = mesh_axis_sizes(mesh_shape, device_count)
    return sizes["data"] * sizes["fsdp"]


def make_mesh(sharding_config: ml_collections.ConfigDict, devices: Sequence[Any] | None = None
              ) -> Mesh:
    """The ("data", "fsdp", "tensor") mesh over all devices of all processes, or over `devices`
    (e.g. those of a TPU topology a preflight compiles for)."""
    count = jax.device_count() if devices is None else len(devices)
    sizes = mesh_axis_sizes(sharding_config.mesh_shape, count)
    return jax.make_mesh(
        tuple(sizes[a] for a in MESH_AXES), MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES),
        devices=devices,
    )


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) dimension split over ("data", "fsdp")."""
    return NamedSharding(mesh, PartitionSpec(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def path_string(key_path: tuple) -> str:
    """A pytree key path as "params/hidden/0/kernel" (nnx's trailing "/value" dropped)."""
    return jax.tree_util.keystr(key_path, simple=True, separator="/").removesuffix("/value")


def state_shardings(
    abstract_state: Any, mesh: Mesh, sharding_config: ml_collections.ConfigDict
) -> Any:
    """A NamedSharding for every leaf of `abstract_state` (arrays or ShapeDtypeStructs)."""

    logical_axes = logical_axis_rules(sharding_config)

    def leaf_sharding(key_path, leaf):
        spec = leaf_partition_spec(
            path_string(key_path),
            leaf.shape,
            dict(mesh.shape),
            sharding_config.rules,
            sharding_config.fsdp_min_size,
            logical_axes,
        )
        return NamedSharding(mesh, spec)

    return jax.tree_util.tree_map_with_path(leaf_sharding, abstract_state)


def leaf_partition_spec(
    path: str,
    shape: tuple[int, ...],
    axis_sizes: dict[str, int],
    rules: Sequence[tuple[str, Sequence[Any]]],
    fsdp_min_size: int,
    logical_axes: dict[str, Any] = LOGICAL_AXES,
) -> PartitionSpec:
    """The PartitionSpec of one state leaf: the first matching rule (its logical names mapped
    by `logical_axes`), else FSDP or replicated."""
    for pattern, spec in rules:
        if re.search(pattern, path):
            mesh_spec = tuple(mesh_axes_of(name, logical_axes) for name in spec)
            return _checked_rule_spec(path, shape, axis_sizes, pattern, spec, mesh_spec)
    fsdp = axis_sizes["fsdp"]
    if fsdp == 1 or math.prod(shape) < fsdp_min_size:
        return PartitionSpec()
    divisible = [d for d in range(len(shape)) if shape[d] % fsdp == 0]
    if not divisible:
        return PartitionSpec()
    dim = max(divisible, key=lambda d: shape[d])
    return PartitionSpec(*("fsdp" if d == dim else None for d in range(len(shape))))


def _checked_rule_spec(path, shape, axis_sizes, pattern, spec, mesh_spec) -> PartitionSpec:
    if len(spec) > len(shape):
        raise ShardingError(
            f"Sharding rule {pattern!r} gives {tuple(spec)} ({len(spec)} dims) for {path!r} of "
            f"shape {shape} ({len(shape)} dims)."
        )
    indivisible = _first_indivisible(shape, mesh_spec, axis_sizes)
    if indivisible is not None:
        dim, axes, parts = indivisible
        raise ShardingError(
            f"Sharding rule {pattern!r} splits dimension {dim} of {path!r} (shape {shape}) "
            f"over {axes} ({parts} devices), which does not divide {shape[dim]}."
        )
    return PartitionSpec(*mesh_spec)


def _first_indivisible(
    shape: tuple[int, ...], mesh_spec: tuple[Any, ...], axis_sizes: dict[str, int]
) -> tuple[int, Any, int] | None:
    """(dimension, its mesh axes, their device count) of the first dimension of `shape` that
    `mesh_spec` splits over devices that do not divide it; None when every split divides."""
    for dim, axes in enumerate(mesh_spec):
        names = axes if isinstance(axes, tuple) else (axes,)
        parts = math.prod(axis_sizes[name] for name in names if name is not None)
        if shape[dim] % parts:
            return dim, axes, parts
    return None


_ACTIVATION_SHARDING: contextvars.ContextVar = contextvars.ContextVar(
    "activation_sharding", default=None
)


@contextlib.contextmanager
def logical_sharding(mesh: Mesh, sharding_config: ml_collections.ConfigDict) -> Iterator[None]:
    """Within this context (while a step is traced), `constrain` lays activations out on `mesh`
    by the run's logical axis rules."""
    token = _ACTIVATION_SHARDING.set((mesh, logical_axis_rules(sharding_config)))
    try:
        yield
    finally:
        _ACTIVATION_SHARDING.reset(token)


def constrain(x: jax.Array, names: Sequence[str | None]) -> jax.Array:
    """x laid out with one logical axis name (or None) per dimension, inside `logical_sharding`;
    x itself outside it. A dimension its mesh axes do not divide raises a ShardingError (at
    trace time, before anything is compiled)."""
    active = _ACTIVATION_SHARDING.get()
    if active is None:
        return x
    mesh, rules = active
    spec = tuple(mesh_axes_of(name, rules) for name in names)
    indivisible = _first_indivisible(x.shape, spec, dict(mesh.shape))
    if indivisible is not None:
        dim, axes, parts = indivisible
        raise ShardingError(
            f"The {names[dim]!r} axis (dimension {dim} of an activation of shape {x.shape}) is "
            f"split over {axes} ({parts} devices), which does not divide {x.shape[dim]}: "
            f"change config.sharding.logical_axes or the mesh."
        )
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, PartitionSpec(*spec)))


def global_batch(
    local_batch: dict[str, np.ndarray], sharding: NamedSharding
) -> dict[str, jax.Array]:
    """The global batch, sharded over the batch axes, from this process's rows of it."""
    return {
        name: jax.make_array_from_process_local_data(sharding, np.asarray(value))
        for name, value in local_batch.items()
    }


def from_host(x: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """`x`, the same host array on every process, as a global array laid out as `sharding` (each
    process fills its own devices' shards)."""
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def allgather_host(x: np.ndarray) -> np.ndarray:
    """(process_count, *x.shape): every process's host array `x`, bit for bit (float64 travels
    as raw bytes, so it is not cast to float32 without jax_enable_x64)."""
    x = np.ascontiguousarray(x)
    if jax.process_count() == 1:
        return x[None]
    from jax.experimental import multihost_utils

    raw = x.reshape(-1).view(np.uint8)
    gathered = np.asarray(multihost_utils.process_allgather(raw, tiled=False))
    return gathered.view(x.dtype).reshape(jax.process_count(), *x.shape)
