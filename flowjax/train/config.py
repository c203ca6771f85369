"""The training config: its schema (every key, with its default and type) and its validation.

Every experiment config starts from `default_config(objective)` and changes values, so that the
keys a run accepts are exactly those listed here, plus those of its objective (the `path` and
`loss` sections and the objective's keys of `sample` and `evaluate`, see
`flowjax.train.objectives`), the settings of the chosen model (`flowjax.train.registry.MODELS`)
and of the chosen data source (which `flowjax.data` checks).
`validate_config` is the one place a config is checked: it runs before anything is compiled,
asks each part (schema, objective, data source, model, solver settings, mesh) for its rules and
raises one `ConfigError` (a ValueError) listing every problem, each saying what was expected: an
unknown or missing key (with the closest valid one), a value of the wrong type or out of range,
a choice that does not exist, a global batch that the data-parallel devices cannot split evenly,
a dataset that does not exist, a bad model or scheduler setting, or a work directory that
cannot be written.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import tempfile
from typing import Any

import jax
import ml_collections
from flax import nnx

from flowjax import data
from flowjax.train import objectives, registry
from flowjax.train.init_from import check_init_from, model_constructor
from flowjax.parallel import (
    MESH_AXES,
    ShardingError,
    data_parallel_size,
    logical_axis_rules,
    mesh_axes_of,
)

OPTIMIZERS = ("adam", "adamw", "sgd")
LR_SCHEDULES = ("constant", "cosine", "step")


def load_config_file(
    path: str | os.PathLike, variant: str | None = None
) -> ml_collections.ConfigDict:
    """The config of an experiment file such as configs/fm_guide/cifar10.py: its
    `get_config(variant)`, as `--config=path:variant` gives it to the command line (no variant:
    `get_config()`)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Config file {path!r} does not exist.")
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(f"flowjax_config_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config() if variant is None else module.get_config(variant)


def default_config(objective: str = "flow_matching") -> ml_collections.ConfigDict:
    """The schema of a training config for `objective`, with the default of every key.

    Args:
      objective: a name in `flowjax.train.objectives.OBJECTIVES` ("flow_matching",
        "discrete_flow_matching", ...); it chooses the `path` and `loss` sections, the
        objective's keys of `sample` and `evaluate`, and the default model.
    """
    kind = objectives.objective_class(objective)
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.objective = objective

    config.model = registry.model_defaults(kind.default_model)
    # Owned by `flowjax.data` (source, dataset name and its settings).
    config.data = ml_collections.ConfigDict()

    config.path = dict(kind.path_defaults)
    config.loss = dict(kind.loss_defaults)
    config.optim = dict(
        name="adam",  # or "adamw", or "sgd" (with momentum, nesterov and coupled weight decay)
        learning_rate=1e-3,  # peak learning rate
        b1=0.9,
        b2=0.999,
        eps=1e-8,
        weight_decay=0.0,  # decoupled weight decay of "adamw"; L2 gradient of "sgd"
        momentum=0.9,  # "sgd" only; 0: plain SGD
        nesterov=False,  # "sgd" only
        schedule="constant",  # or "cosine" (decay to final_lr_fraction * learning_rate), or
        # "step": times decay_factor at each fraction decay_boundaries of train.num_steps
        decay_boundaries=(0.3, 0.6, 0.8),
        decay_factor=0.2,
        warmup_steps=0,  # linear warm-up from 0 to learning_rate
        final_lr_fraction=0.0,
        grad_clip_norm=0.0,  # clip gradients to this global norm; 0 disables clipping
        ema_decay=0.9999,  # EMA decay, warmed up as min(ema_decay, (1 + step) / (10 + step))
    )
    config.train = dict(
        num_steps=1000,  # optimiser updates
        global_batch_size=256,  # examples per update, over all devices and processes
        grad_accum_steps=1,  # micro-batches per update (scanned inside the step)
        log_every=100,  # steps between metric lines (and the non-finite check)
        # The work directory of a trained run whose EMA weights initialise this run's shared
        # parameters when it starts (flowjax.train.init_from); "": the model's initialisation.
        init_from="",
    )
    config.checkpoint = dict(
        every_steps=1000,  # also saved on SIGTERM / SIGINT and at the end
        max_to_keep=3,
        async_save=True,  # write files in the background while training goes on
    )
    config.sharding = dict(
        mesh_shape=(-1, 1, 1),  # sizes of the MESH_AXES; one -1 takes the remaining devices
        # (regex, spec) pairs: a state leaf whose path ("params/hidden/0/kernel",
        # "opt_state/0/mu/hidden/0/kernel", ...) matches `regex` is sharded as `spec`, a
        # tuple with one logical or mesh axis name (or None, or a tuple of names) per dimension.
        rules=(),
        # (logical name, mesh axes) pairs overriding flowjax.parallel.LOGICAL_AXES, e.g.
        # (("length", "tensor"),) for sequence parallelism, (("embed", None),) for no FSDP.
        logical_axes=(),
        # Leaves no rule matches with at least this many elements are FSDP-sharded: their
        # largest dimension divisible by the "fsdp" axis size is split over "fsdp".
        fsdp_min_size=2**16,
    )
    config.distributed = dict(
        initialize=False,  # call jax.distributed.initialize() (multi-host runs)
        coordinator_address="",  # "" lets JAX detect the cluster (TPU pods, SLURM, ...)
        num_processes=0,  # 0: detected
        process_id=-1,  # -1: detected
    )
    config.sample = dict(
        num_samples=10_000,
        batch_size=10_000,  # samples per compiled solve
        num_trajectories=1_000,  # points whose paths are plotted and stored
        seed=1,
        **kind.sample_defaults,
    )
    config.evaluate = dict(
        num_points=4_096,  # held-out points for the NLL (or its bound)
        num_samples=10_000,  # samples for the fraction inside a toy's support
        batch_size=4_096,
        seed=2,
        after_training=True,  # a finished training run samples and evaluates
        # Data settings layered over config.data for the held-out set (e.g. a test split).
        data=ml_collections.ConfigDict(),
        **kind.evaluate_defaults,
    )
    return config


# Keys whose value must be one of a fixed set (the objective adds its own).
_CHOICES: dict[str, tuple[str, ...]] = {
    "model.name": tuple(registry.MODELS),
    "model.dtype": tuple(registry.COMPUTE_DTYPES),
    "optim.name": OPTIMIZERS,
    "optim.schedule": LR_SCHEDULES,
}
# Keys whose value must be > 0, or >= 0, or lie in [0, 1] (the objective adds its own).
_POSITIVE = (
    "optim.learning_rate",
    "optim.eps",
    "train.num_steps",
    "train.global_batch_size",
    "train.grad_accum_steps",
    "train.log_every",
    "checkpoint.every_steps",
    "checkpoint.max_to_keep",
    "sample.num_samples",
    "sample.batch_size",
    "evaluate.num_points",
    "evaluate.num_samples",
    "evaluate.batch_size",
)
_NON_NEGATIVE = (
    "optim.weight_decay",
    "optim.warmup_steps",
    "optim.grad_clip_norm",
    "sample.num_trajectories",
    "sharding.fsdp_min_size",
)
_UNIT_INTERVAL = (
    "optim.momentum",
    "optim.decay_factor",
    "optim.b1",
    "optim.b2",
    "optim.ema_decay",
    "optim.final_lr_fraction",
)


class ConfigError(ValueError):
    """A config that cannot run, with every problem found in it (`problems`, one line each)."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            message = f"The config has {len(self.problems)} problems:\n{lines}"
        super().__init__(message)


def schema_for(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The defaults against which `config` is checked (those of its objective and its model)."""
    schema = default_config(config.get("objective", "flow_matching"))
    model_name = config.get("model", {}).get("name", schema.model.name)
    schema.model = registry.model_defaults(model_name)
    return schema


def schema_problems(config: ml_collections.ConfigDict) -> list[str]:
    """Unknown, missing and mistyped keys against the schema; needs no devices."""
    objective = config.get("objective", "flow_matching")
    if objective not in objectives.OBJECTIVES:
        return [
            f"Config key 'objective' must be one of {sorted(objectives.OBJECTIVES)}, got "
            f"{objective!r}."
        ]
    model_name = config.get("model", {}).get("name")
    if model_name not in registry.MODELS:
        return [
            f"Config key 'model.name' must be one of {list(registry.MODELS)}, got {model_name!r}."
        ]
    return list(_key_and_type_problems(config, schema_for(config), prefix=""))


def check_schema(config: ml_collections.ConfigDict) -> None:
    """Raises a `ConfigError` listing every unknown, missing or mistyped key (runs before JAX
    starts, e.g. before `jax.distributed.initialize`)."""
    problems = schema_problems(config)
    if problems:
        raise ConfigError(problems)


def validate_config(
    config: ml_collections.ConfigDict, workdir: str | None = None, device_count: int | None = None
) -> None:
    """Checks everything that can be checked before compiling, in one pass.

    The config's keys and types are checked against the schema, then every value against the
    rules of the shared sections and of the objective (choices, ranges), then each part is
    asked for its own rules: the data source (`flowjax.data.parse_config` and the dataset's
    metadata), the objective (its path, solver settings and combinations of settings, by
    building it), the model (by building it abstractly), the mesh and the batch sizes, and the
    work directory. Every problem found is reported in one `ConfigError` (a ValueError), one
    line each; a part whose keys are already wrong is not built.

    Args:
      config: a training config.
      workdir: the run's work directory, created if needed; checked to be writable.
      device_count: the devices the mesh spans (default: JAX's; a preflight for a TPU topology
        passes the topology's).
    """
    problems = schema_problems(config)
    if problems:
        raise ConfigError(problems)
    kind = objectives.objective_class(config.objective)
    for key, allowed in {**_CHOICES, **kind.choices}.items():
        problems += _problem(config, key, lambda v, a=allowed: v in a, f"one of {list(allowed)}")
    for key in _POSITIVE + kind.positive:
        problems += _problem(config, key, lambda v: v > 0, "> 0")
    for key in _NON_NEGATIVE + kind.non_negative:
        problems += _problem(config, key, lambda v: v >= 0, ">= 0")
    for key in _UNIT_INTERVAL + kind.unit_interval:
        problems += _problem(config, key, lambda v: 0 <= v <= 1, "in [0, 1]")
    problems += _problem(config, "optim.ema_decay", lambda v: v < 1, "< 1")
    problems += _problem(
        config, "optim.decay_boundaries",
        lambda v: isinstance(v, (tuple, list)) and all(
            isinstance(f, (int, float)) and 0 < f < 1 for f in v) and list(v) == sorted(set(v)),
        "increasing fractions of the run in (0, 1), e.g. (0.3, 0.6, 0.8)")
    if config.optim.name == "adam" and config.optim.weight_decay > 0:
        problems.append(
            "optim.weight_decay > 0 needs optim.name='adamw' (decoupled weight decay) or 'sgd' "
            "(L2 gradient); "
            "plain Adam takes no weight decay."
        )
    problems += _collect(_check_sharding_config, config.sharding)
    if not problems:  # the parts read their values: build them only from valid ones
        problems += _collect(_check_components, config)
        problems += _collect(_check_batch_divisibility, config, device_count)
    if workdir is not None:
        problems += _collect(check_writable, workdir)
    if problems:
        raise ConfigError(problems)


def heldout_data_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """config.data with the settings of config.evaluate.data layered over it."""
    return ml_collections.ConfigDict({**config.data.to_dict(), **config.evaluate.data.to_dict()})


def check_writable(workdir: str) -> None:
    """Creates `workdir` if needed and checks that a file can be written there."""
    try:
        os.makedirs(workdir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=workdir, prefix=".write_test_"):
            pass
    except OSError as error:
        raise ValueError(
            f"The work directory {workdir!r} is not writable ({error}); pass a --workdir the "
            "run can create and write (checkpoints, metrics and plots go there)."
        ) from error


def _key_and_type_problems(config: Any, schema: ml_collections.ConfigDict, prefix: str):
    missing = sorted(set(schema.keys()) - set(config.keys()))
    if missing:
        yield (
            f"Config keys {[prefix + k for k in missing]} are missing; start the config from "
            "flowjax.train.default_config(), which has every key with its default."
        )
    for key in config.keys():
        name = prefix + key
        if name in ("data", "evaluate.data"):
            continue  # checked by flowjax.data
        if key not in schema:
            close = difflib.get_close_matches(key, list(schema.keys()), n=1)
            hint = f" Did you mean {prefix + close[0]!r}?" if close else ""
            yield f"Unknown config key {name!r}.{hint} Valid keys here: {sorted(schema.keys())}."
            continue
        value, default = config[key], schema[key]
        if isinstance(default, ml_collections.ConfigDict):
            if not isinstance(value, (ml_collections.ConfigDict, dict)):
                yield f"Config key {name!r} must be a section (ConfigDict), got {value!r}."
            else:
                yield from _key_and_type_problems(value, default, prefix=name + ".")
        elif not _same_type(value, default):
            yield (
                f"Config key {name!r} must be of type {type(default).__name__} "
                f"(like its default {default!r}), got {value!r} of type {type(value).__name__}."
            )


def _same_type(value: Any, default: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, (tuple, list)):
        return isinstance(value, (tuple, list))
    return isinstance(value, type(default))


def _problem(config, key: str, predicate, expected: str) -> list[str]:
    section, name = key.split(".")
    value = config[section][name]
    return [] if predicate(value) else [f"Config key {key!r} must be {expected}, got {value!r}."]


def _collect(check, *args) -> list[str]:
    """The problems a part's check raises: its ConfigError's list, or its ValueError."""
    try:
        check(*args)
    except ConfigError as error:
        return error.problems
    except (ValueError, FileNotFoundError) as error:
        return [str(error)]
    return []


def _check_sharding_config(sharding: ml_collections.ConfigDict) -> None:
    shape = tuple(sharding.mesh_shape)
    if len(shape) != len(MESH_AXES) or not all(isinstance(s, int) for s in shape):
        raise ValueError(
            f"sharding.mesh_shape must give an int size for each of the axes {MESH_AXES} "
            f"(one of them may be -1), got {shape!r}."
        )
    if any(s == 0 or s < -1 for s in shape) or shape.count(-1) > 1:
        raise ValueError(
            f"sharding.mesh_shape sizes must be positive, with at most one -1, got {shape!r}."
        )
    for pair in sharding.logical_axes:
        axes = pair[1] if len(pair) == 2 else None
        names = axes if isinstance(axes, (tuple, list)) else (axes,)
        if (len(pair) != 2 or not isinstance(pair[0], str)
                or any(name is not None and name not in MESH_AXES for name in names)):
            raise ValueError(
                f"Each sharding.logical_axes entry must be a (logical name, mesh axes) pair "
                f"with mesh axes from {MESH_AXES} (a name, a tuple of names or None), got "
                f"{pair!r}; for example ('length', 'tensor')."
            )
    rules = logical_axis_rules(sharding)
    for rule in sharding.rules:
        if len(rule) != 2 or not isinstance(rule[0], str):
            raise ValueError(
                f"Each sharding rule must be a (regex, spec) pair, got {rule!r}; for example "
                "(r'params/.*kernel', ('embed', 'mlp'))."
            )
        for axis in rule[1]:
            try:
                mesh_axes_of(axis, rules)
            except ShardingError as error:
                raise ValueError(f"Sharding rule {rule!r}: {error}") from None


def _check_components(config: ml_collections.ConfigDict) -> None:
    """Asks each part for its rules by building it: the data (training and held-out settings:
    an unknown dataset or data key), then the objective (data of the wrong kind, a bad path or
    solver setting) and an abstract model (a bad model setting). Later parts need the earlier
    ones, so the first part that fails ends the check."""
    problems = _collect(data.parse_config, heldout_data_config(config))
    try:
        spec = objectives.DataSpec.from_config(config.data)
        objective = objectives.build_objective(config, spec)
        nnx.eval_shape(lambda: model_constructor(config, objective)(nnx.Rngs(0)))
        check_init_from(config)
    except (ValueError, FileNotFoundError) as error:
        problems.append(str(error))
    if problems:
        raise ConfigError(problems)


def _check_batch_divisibility(
    config: ml_collections.ConfigDict, device_count: int | None = None
) -> None:
    parallel = data_parallel_size(config.sharding.mesh_shape, device_count or jax.device_count())
    batch, accum = config.train.global_batch_size, config.train.grad_accum_steps
    if batch % (parallel * accum):
        raise ValueError(
            f"train.global_batch_size={batch} must be divisible by the data-parallel mesh size "
            f"(data x fsdp = {parallel}) times train.grad_accum_steps={accum}, i.e. by "
            f"{parallel * accum}, so that every device gets the same number of examples in "
            "every micro-batch."
        )
    for section in ("sample", "evaluate"):
        size = config[section].batch_size
        if size % parallel:
            raise ValueError(
                f"{section}.batch_size={size} must be divisible by the data-parallel mesh size "
                f"(data x fsdp = {parallel})."
            )
