"""The preflight of a sharded run: how a config's train step splits over a mesh, what it costs
per device, and whether it fits, without allocating a parameter.

`plan(config, budget_gb=...)` validates the config, builds the run's abstract train state
(`flowjax.train.setup.setup_run`: ShapeDtypeStructs only) and its shardings on the mesh of
`config.sharding.mesh_shape` over the visible devices, lowers and compiles the real train step
(`flowjax.train.step.compile_train_step`) for an abstract global batch, and reads off:

- per array group (parameters, optimiser state, EMA, frozen model state) the bytes each device
  holds, from the shard shape of every leaf (`NamedSharding.shard_shape`), and the partition
  specs in use (how many leaves each);
- the compiled program's own memory analysis (XLA): its arguments, outputs and temporaries (the
  activations and workspace of the update) per device;
- FLOPs per step of the compiled per-device program (XLA's cost analysis; on the CPU it counts
  convolutions and matrix products alike) and the collectives in it (all-reduce, all-gather,
  reduce-scatter, all-to-all, collective-permute), counted in the optimised HLO.

With `topology` (e.g. "v5e:16x16") the step is compiled by libtpu for that TPU slice on a host
without TPUs (`jax.experimental.topologies`; the `libtpu` package must be installed, e.g. pip
install "jax[tpu]"): the memory analysis and FLOPs are then the TPU compiler's. Checked with
jax 0.10.2 and libtpu 0.0.42.1 on a CPU-only host.

A mesh that does not divide a dimension, a batch that does not split over it, and a budget the
peak does not fit raise a `PlanError` (a `ConfigError`: printed as plain lines by the command
line) before anything is allocated. The command line compiles for many devices on one host
with virtual CPU devices: `python -m flowjax.main --mode=plan --config=... --plan_devices=64
--config.sharding.mesh_shape="(8,8,1)" --plan_budget_gb=16` (see `flowjax.main`).

The estimate's peak per device is state (parameters, optimiser, EMA, model state) plus the
program's temporaries; on a CPU compile the temporaries are the CPU backend's, which tracks the
accelerators' for the same program but is not identical (fusion and layouts differ). Activation
rematerialisation (`model.remat`) shows reliably only in a TPU compile: the CPU backend's
schedule may run the recomputed blocks early and keep them all, so its temporaries can stay as
high as without remat (measured: at 32 images per device DiT-XL/2 stays at 38.8 -> 37.8 GiB on
the CPU where libtpu's compile for 8 v5e chips falls from 15.4 to 3.0 GiB; the 860M text model
at 64 sequences of 1,024 does not fall at all on the CPU, where the TPU compiler's estimate for 2
sequences per v5e chip falls from 6.7 to 1.5 GiB). A TPU compile
that exceeds its chip's memory is reported as a `PlanError` with the compiler's figure.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import re
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import NamedSharding

from flowjax.parallel import ShardingError, batch_sharding, path_string
from flowjax.train.checkpoint import abstract_with_shardings
from flowjax.train.config import ConfigError, validate_config
from flowjax.train.setup import setup_run
from flowjax.train.step import compile_train_step

GROUPS = ("params", "opt_state", "ema_params", "model_state")
"""The train state's array groups, in the plan's table."""
COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")
GIB = 1024**3
FIT_ADVICE = (
    "To fit: shard the state over more devices (a larger 'fsdp' axis), recompute activations "
    "(model.remat='full' or 'dots'), lower the batch per device or raise train.grad_accum_steps."
)


class PlanError(ConfigError):
    """The run does not fit or does not divide the mesh: the problems, one line each."""


@dataclasses.dataclass(frozen=True)
class GroupPlan:
    """One array group of the train state on the mesh."""

    name: str
    leaves: int
    total_bytes: int
    bytes_per_device: int
    specs: dict[str, int]  # partition spec -> number of leaves


@dataclasses.dataclass(frozen=True)
class Plan:
    """What `plan` found (bytes are per device unless named total)."""

    mesh: dict[str, int]
    devices: int
    platform: str
    global_batch_size: int
    num_params: int
    groups: list[GroupPlan]
    argument_bytes: int
    output_bytes: int
    temp_bytes: int
    flops_per_step: float
    collectives: dict[str, int]
    budget_bytes: int | None

    @property
    def state_bytes(self) -> int:
        return sum(g.bytes_per_device for g in self.groups)

    @property
    def peak_bytes(self) -> int:
        """State plus the update's temporaries (the donated state is rewritten in place)."""
        return self.state_bytes + self.temp_bytes

    def table(self) -> str:
        mesh = " x ".join(f"{k} {v}" for k, v in self.mesh.items())
        lines = [
            f"Mesh {mesh} ({self.devices} {self.platform} devices); global batch "
            f"{self.global_batch_size}; {self.num_params:,} parameters.",
            "",
            f"{'group':<12} {'leaves':>7} {'total GiB':>10} {'GiB / device':>13}  partition specs",
        ]
        for g in self.groups:
            specs = ", ".join(f"{s} x{n}" for s, n in sorted(g.specs.items(), key=lambda i: -i[1]))
            lines.append(f"{g.name:<12} {g.leaves:>7} {g.total_bytes / GIB:>10.3f} "
                         f"{g.bytes_per_device / GIB:>13.3f}  {specs}")
        lines += [
            f"{'activations':<12} {'':>7} {'':>10} {self.temp_bytes / GIB:>13.3f}  "
            "(the compiled update's temporaries)",
            f"{'peak':<12} {'':>7} {'':>10} {self.peak_bytes / GIB:>13.3f}"
            + (f"  of a {self.budget_bytes / GIB:g} GiB budget" if self.budget_bytes else ""),
            "",
            f"FLOPs per step per device: {self.flops_per_step:.4g} "
            f"(all devices: {self.flops_per_step * self.devices:.4g})",
            "Collectives in the compiled step: "
            + (", ".join(f"{k} x{v}" for k, v in self.collectives.items() if v) or "none"),
        ]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        record.update(state_bytes=self.state_bytes, peak_bytes=self.peak_bytes)
        return record


def abstract_batch(run, config: ml_collections.ConfigDict) -> dict[str, jax.ShapeDtypeStruct]:
    """A global batch of ShapeDtypeStructs as the data pipeline gives it (split over the batch
    axes): x (tokens int32, else float32), labels, control metadata, text embeddings and their
    lengths, regression targets."""
    b = config.train.global_batch_size
    sharding = batch_sharding(run.mesh)
    spec = run.objective.spec
    tokens = spec.vocab_size is not None
    batch = {"x": jax.ShapeDtypeStruct((b, *spec.event_shape),
                                       jnp.int32 if tokens else jnp.float32, sharding=sharding)}
    if spec.num_classes is not None:
        batch["label"] = jax.ShapeDtypeStruct((b,), jnp.int32, sharding=sharding)
    if spec.control_dim:
        batch["control"] = jax.ShapeDtypeStruct((b, spec.control_dim), jnp.float32,
                                                sharding=sharding)
    if spec.context_shape is not None:
        batch["context"] = jax.ShapeDtypeStruct((b, *spec.context_shape), jnp.float32,
                                                sharding=sharding)
        batch["context_length"] = jax.ShapeDtypeStruct((b,), jnp.int32, sharding=sharding)
    target_dim = getattr(run.objective, "target_dim", None)
    if target_dim:
        batch["target"] = jax.ShapeDtypeStruct((b, target_dim), jnp.float32, sharding=sharding)
    return batch


def _group(name: str, tree: Any, shardings: Any) -> GroupPlan:
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    shard_list = jax.tree.leaves(shardings, is_leaf=lambda x: isinstance(x, NamedSharding))
    total = per_device = 0
    specs: collections.Counter = collections.Counter()
    for (path, leaf), sharding in zip(leaves, shard_list, strict=True):
        itemsize = np.dtype(leaf.dtype).itemsize
        total += math.prod(leaf.shape) * itemsize
        per_device += math.prod(sharding.shard_shape(leaf.shape)) * itemsize
        specs[str(tuple(sharding.spec)) if tuple(sharding.spec) else "replicated"] += 1
        del path
    return GroupPlan(name, len(leaves), total, per_device, dict(specs))


def count_collectives(hlo_text: str) -> dict[str, int]:
    """How many of each collective the optimised HLO holds (async pairs counted once)."""
    counts = {}
    for op in COLLECTIVES:
        pattern = rf"= [^=\n]*\b{op}(-start)?\("
        counts[op] = len(re.findall(pattern, hlo_text))
    return counts


def _first(analysis):
    return analysis[0] if isinstance(analysis, list) else analysis


def topology_devices(name: str) -> list[Any]:
    """The devices of a TPU topology such as "v5e:16x16" or "v4:4x4x4", compiled for without
    the hardware (needs the `libtpu` package: pip install "jax[tpu]")."""
    from jax.experimental import topologies

    try:
        return list(topologies.get_topology_desc(name, "tpu").devices)
    except Exception as error:  # libtpu missing, or a topology it does not know
        raise PlanError([
            f"Cannot describe the TPU topology {name!r} ({type(error).__name__}: "
            f"{str(error).strip().splitlines()[-1][:200]}). Compiling for a TPU topology needs "
            "libtpu (pip install \"jax[tpu]\") and a name such as 'v5e:16x16' or 'v4:4x4x4'; "
            "or plan for virtual CPU devices (--plan_devices)."
        ]) from None


def plan(
    config: ml_collections.ConfigDict,
    *,
    budget_gb: float | None = None,
    topology: str | None = None,
) -> Plan:
    """The plan of `config`'s train step on its mesh over the visible devices, or over the
    devices of the TPU `topology` (module docstring). Raises PlanError for a mesh that does not
    divide the model or the batch, or a peak over `budget_gb` GiB per device."""
    devices = topology_devices(topology) if topology else None
    try:
        validate_config(config, device_count=None if devices is None else len(devices))
        run = setup_run(config, devices)
    except ConfigError as error:
        raise PlanError(error.problems) from None
    except ValueError as error:  # a sharding rule that does not divide a dimension
        raise PlanError([str(error)]) from None
    train_step = compile_train_step(
        run.shardings, graphdef=run.graphdef, objective=run.objective,
        optimizer=run.optimizer, schedule=run.schedule, config=config, mesh=run.mesh,
    )
    state = abstract_with_shardings(run.abstract_state, run.shardings)
    try:
        lowered = train_step.lower(state, abstract_batch(run, config))
    except ShardingError as error:  # an activation axis that does not divide the mesh
        raise PlanError([str(error)]) from None
    try:
        compiled = lowered.compile()
    except jax.errors.JaxRuntimeError as error:  # the TPU compiler checks its chip's memory
        if "RESOURCE_EXHAUSTED" not in str(error):
            raise
        raise PlanError([
            f"The step does not fit a device of {topology}: "
            + str(error).split("RESOURCE_EXHAUSTED: ")[-1].strip().splitlines()[0],
            FIT_ADVICE,
        ]) from None
    memory = compiled.memory_analysis()
    cost = _first(compiled.cost_analysis()) or {}
    groups = [
        _group(name, getattr(run.abstract_state, name), getattr(run.shardings, name))
        for name in GROUPS
    ]
    result = Plan(
        mesh=dict(run.mesh.shape),
        devices=run.mesh.size,
        platform=run.mesh.devices.flat[0].device_kind if topology else jax.devices()[0].platform,
        global_batch_size=config.train.global_batch_size,
        num_params=run.num_params,
        groups=groups,
        argument_bytes=int(memory.argument_size_in_bytes),
        output_bytes=int(memory.output_size_in_bytes),
        temp_bytes=int(memory.temp_size_in_bytes),
        flops_per_step=float(cost.get("flops", 0.0)),
        collectives=count_collectives(compiled.as_text()),
        budget_bytes=None if budget_gb is None else int(budget_gb * GIB),
    )
    if result.budget_bytes is not None and result.peak_bytes > result.budget_bytes:
        raise PlanError([
            f"The run needs {result.peak_bytes / GIB:.2f} GiB per device (state "
            f"{result.state_bytes / GIB:.2f} GiB + activations {result.temp_bytes / GIB:.2f} GiB) "
            f"on the mesh {result.mesh}, over the budget of {budget_gb:g} GiB.",
            FIT_ADVICE,
        ])
    return result


__all__ = ["COLLECTIVES", "GROUPS", "GroupPlan", "Plan", "PlanError", "abstract_batch",
           "count_collectives", "plan", "topology_devices"]
