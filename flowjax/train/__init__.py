"""Training, sampling and evaluation driven by an ml-collections config.

Modules, one concept each: `config` (schema and validation), `objectives` (a package, one
module per objective: what is trained, sampled and evaluated), `registry` (models, schedulers
and paths by name), `recipes` (config builders shared by configs/), `setup` (mesh, objective,
model, optimiser of a run; the mesh and layouts are `flowjax.parallel`'s), `state` (the train
state), `optim` (optimiser, schedule, EMA), `step` (the compiled
update), `checkpoint` (Orbax checkpoints with the data position), `preemption` (SIGTERM /
SIGINT), `logs` (progress and metrics), `loop` (`train`), `inference` (`sample`, `evaluate`) and
`plots`.
"""

from flowjax.parallel import ShardingError
from flowjax.train.config import ConfigError, default_config, load_config_file, validate_config
from flowjax.train.inference import evaluate, sample
from flowjax.train.loop import NonFiniteLossError, train
from flowjax.train.objectives import OBJECTIVES, DataSpec, Objective, build_objective
from flowjax.train.registry import MODELS, SCHEDULERS, build_model, build_path
from flowjax.train.state import TrainState

__all__ = [
    "ShardingError",
    "ConfigError",
    "DataSpec",
    "MODELS",
    "OBJECTIVES",
    "Objective",
    "SCHEDULERS",
    "NonFiniteLossError",
    "TrainState",
    "build_model",
    "build_objective",
    "build_path",
    "default_config",
    "evaluate",
    "load_config_file",
    "sample",
    "train",
    "validate_config",
]
