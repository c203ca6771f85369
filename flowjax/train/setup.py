"""What a run builds from its config before any array exists: processes, mesh, objective, model,
optimiser.

Training, sampling and evaluation share this: the same model structure (`graphdef`), the same
abstract train state and the same shardings, so that any of them can read the checkpoints of
the others.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import jax
import ml_collections
import optax
from flax import nnx
from jax.sharding import Mesh

from flowjax.train import optim
from flowjax.train.config import check_schema
from flowjax.train.init_from import model_constructor
from flowjax.train.objectives import DataSpec, Objective, build_objective
from flowjax.parallel import make_mesh, state_shardings
from flowjax.train.state import ModelFn, TrainState, abstract_train_state

log = logging.getLogger(__name__)


def initialize_distributed(config: ml_collections.ConfigDict) -> None:
    """Calls `jax.distributed.initialize` if `config.distributed.initialize` (multi-host runs).

    Must run before anything touches the devices. Empty / default fields let JAX detect the
    cluster (TPU pods, SLURM, ...); explicit ones (coordinator "host:port", process count and
    id) are for clusters it cannot detect, e.g. several processes on one machine.
    """
    check_schema(config)
    dist = config.distributed
    if not dist.initialize or jax.distributed.is_initialized():
        return
    jax.distributed.initialize(
        coordinator_address=dist.coordinator_address or None,
        num_processes=dist.num_processes or None,
        process_id=None if dist.process_id < 0 else dist.process_id,
    )
    log.info("Process %d of %d started.", jax.process_index(), jax.process_count())


@dataclasses.dataclass(frozen=True)
class RunSetup:
    """The static parts of a run.

    Attributes:
      mesh: the ("data", "fsdp", "tensor") device mesh.
      event_shape: shape of one example x.
      num_classes: number of class labels, or None for unconditional data.
      model_fn: rngs -> the NNX model.
      objective: what the run trains, samples and evaluates (`flowjax.train.objectives`).
      schedule, optimizer: the learning-rate schedule and the optax optimiser.
      graphdef: the model's static structure.
      abstract_state: ShapeDtypeStructs of the TrainState.
      shardings: a NamedSharding per TrainState leaf.
    """

    mesh: Mesh
    event_shape: tuple[int, ...]
    num_classes: int | None
    model_fn: ModelFn
    objective: Objective
    schedule: optax.Schedule
    optimizer: optax.GradientTransformation
    graphdef: nnx.GraphDef
    abstract_state: TrainState
    shardings: Any

    @property
    def num_params(self) -> int:
        return sum(x.size for x in jax.tree.leaves(self.abstract_state.params))


def setup_run(config: ml_collections.ConfigDict, devices=None) -> RunSetup:
    """Builds the mesh (over all devices, or `devices`), objective, model and optimiser of
    `config` (a validated config)."""
    mesh = make_mesh(config.sharding, devices)
    spec = DataSpec.from_config(config.data)
    objective = build_objective(config, spec)
    model_fn = model_constructor(config, objective)
    schedule = optim.learning_rate_schedule(config.optim, config.train.num_steps)
    optimizer = optim.make_optimizer(config.optim, schedule)
    graphdef, abstract_state = abstract_train_state(model_fn, optimizer, config.seed)
    return RunSetup(
        mesh=mesh,
        event_shape=spec.event_shape,
        num_classes=spec.num_classes,
        model_fn=model_fn,
        objective=objective,
        schedule=schedule,
        optimizer=optimizer,
        graphdef=graphdef,
        abstract_state=abstract_state,
        shardings=state_shardings(abstract_state, mesh, config.sharding),
    )
