"""Starting a run from the weights of another run (`train.init_from`).

Distillation and fine-tuning start from a trained model: an IMDM from a masked diffusion model
(its infinite-mask MLP starts at zero, so the two agree at step 0), an SDTT student and its
teacher from the model they distil, a ReDi student from its teacher. `train.init_from` names the
work directory of that run; a fresh run (no checkpoint of its own yet) takes the EMA weights of
that run's newest checkpoint for every parameter whose path it shares, and keeps its own
initialisation for the rest. Paths are compared without the "student" / "teacher_weights" /
"map_weights" prefixes of `flowjax.models.TeacherStudent`, so a distilled student loads into a
plain model and back, and the frozen teacher gets the same weights as the student. An objective
may map its parameters to other ones of the source (`Objective.init_from_source`): the source's
frozen teachers are offered under their full paths ("teacher_weights/..."), and a parameter mapped
to None keeps its initialisation (FMLM's stage-one student starts its output layer at zero; its
stage two loads the flow model into the student and the first teacher, the stage-one map into the
second).

Checked before anything compiles (`check_init_from`, part of the config validation): the
directory holds a checkpoint with its config, every shared parameter has the same shape (a
different vocabulary, width or D_eps is named with both shapes), and the two models share at
least one parameter (so that a run of another kind of model is not loaded by accident).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from flowjax.parallel import replicated
from flowjax.train import objectives, optim, registry
from flowjax.train.checkpoint import Checkpointer
from flowjax.train.state import TrainState, abstract_train_state

log = logging.getLogger(__name__)
_PREFIXES = ("student/", "teacher_weights/", "map_weights/")
_FROZEN_PREFIXES = ("teacher_weights/", "map_weights/")


def _flat(tree: Any) -> dict[str, Any]:
    """{"a/b/c": leaf} of a nested pure dict."""
    out = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        out["/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)] = leaf
    return out


def _strip(path: str) -> str:
    for prefix in _PREFIXES:
        if path.startswith(prefix):
            return path[len(prefix) :]
    return path


def model_constructor(config: ml_collections.ConfigDict, objective: objectives.Objective):
    """rngs -> the model of `config` as its objective builds it (a `TeacherStudent` for SDTT)."""
    spec = objective.spec

    def build(rngs: nnx.Rngs) -> nnx.Module:
        return registry.build_model(
            config.model, spec.event_shape, spec.num_classes, rngs, **objective.model_kwargs()
        )

    return objective.model_fn(build)


def _source_config(workdir: str) -> ml_collections.ConfigDict:
    if not os.path.isdir(workdir):
        raise FileNotFoundError(
            f"train.init_from={workdir!r} is not a directory: give the --workdir of the trained "
            "run whose weights this run starts from."
        )
    with Checkpointer(workdir) as checkpointer:
        source = checkpointer.restore_config()
    if source is None:
        raise FileNotFoundError(
            f"train.init_from={workdir!r} holds no checkpoint: train that run first."
        )
    return source


def _offered(params: Any, model_state: Any) -> dict[str, Any]:
    """The weights a run offers to another: its parameters by stripped path, its frozen teachers
    by full path (module docstring)."""
    weights = {_strip(k): v for k, v in _flat(nnx.to_pure_dict(params)).items()}
    frozen = _flat(nnx.to_pure_dict(model_state))
    weights.update({k: v for k, v in frozen.items() if k.startswith(_FROZEN_PREFIXES)})
    return weights


def _targets(
    objective: objectives.Objective, params: Any, model_state: Any
) -> dict[str, str | None]:
    """{path of a parameter or frozen weight of this model: the source key it loads from}."""
    paths = list(_flat(nnx.to_pure_dict(params))) + [
        k for k in _flat(nnx.to_pure_dict(model_state)) if k.startswith(_FROZEN_PREFIXES)
    ]
    return {path: objective.init_from_source(path, _strip(path)) for path in paths}


def _abstract_model(config: ml_collections.ConfigDict) -> tuple[objectives.Objective, Any, Any]:
    objective = objectives.build_objective(config)
    model = nnx.eval_shape(lambda: model_constructor(config, objective)(nnx.Rngs(0)))
    return objective, nnx.state(model, nnx.Param), nnx.state(model, nnx.Not(nnx.Param))


def check_init_from(config: ml_collections.ConfigDict) -> None:
    """Raises a ValueError / FileNotFoundError when `train.init_from` cannot initialise the model
    of `config` (module docstring); does nothing when it is empty."""
    workdir = config.train.init_from
    if not workdir:
        return
    source = _source_config(workdir)
    objective, params, model_state = _abstract_model(config)
    theirs = _offered(*_abstract_model(source)[1:])
    ours = {**_flat(nnx.to_pure_dict(params)), **_flat(nnx.to_pure_dict(model_state))}
    wanted = _targets(objective, params, model_state)
    missing = sorted({k for k in wanted.values() if k and k.startswith(_FROZEN_PREFIXES)} - set(theirs))
    if missing:
        raise ValueError(
            f"train.init_from={workdir!r} has no frozen teacher weights such as {missing[0]!r}, "
            f"which this model loads (its objective {source.objective!r}, loss.distill="
            f"{source.loss.get('distill', 'none')!r}): start from the run of the previous stage."
        )
    targets = {p: k for p, k in wanted.items() if k in theirs}
    mismatched = [
        f"{key}: {tuple(theirs[key].shape)} in the checkpoint, {tuple(ours[path].shape)} here"
        for path, key in targets.items()
        if theirs[key].shape != ours[path].shape
    ]
    if mismatched:
        raise ValueError(
            f"train.init_from={workdir!r} has weights of other shapes (another vocabulary, width, "
            f"depth or D_eps: model {source.model.to_dict()}): " + "; ".join(mismatched) + "."
        )
    if not targets:
        raise ValueError(
            f"train.init_from={workdir!r} shares no parameter with this model (its model is "
            f"{source.model.name!r}, this one {config.model.name!r})."
        )


def load_init_weights(
    config: ml_collections.ConfigDict, state: TrainState, mesh: jax.sharding.Mesh
) -> TrainState:
    """`state` (fresh) with every shared parameter, its EMA and a `TeacherStudent`'s frozen
    teacher set to the EMA weights of the newest checkpoint of `train.init_from`."""
    workdir = config.train.init_from
    source = _source_config(workdir)
    objective = objectives.build_objective(source)
    optimizer = optim.make_optimizer(
        source.optim, optim.learning_rate_schedule(source.optim, source.train.num_steps)
    )
    _, abstract = abstract_train_state(
        model_constructor(source, objective), optimizer, source.seed
    )
    on_host = replicated(mesh)
    abstract = jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=on_host), abstract
    )
    with Checkpointer(workdir) as checkpointer:
        restored = checkpointer.restore_latest(abstract)
    weights = _offered(restored.state.ema_params, restored.state.model_state)
    targets = {
        path: key
        for path, key in _targets(
            objectives.build_objective(config), state.params, state.model_state
        ).items()
        if key in weights
    }
    shared = [k for k in _flat(nnx.to_pure_dict(state.params)) if k in targets]
    log.info(
        "Initialised %d of the model's %d parameter arrays from step %d of %s.",
        len(shared),
        len(_flat(nnx.to_pure_dict(state.params))),
        restored.step,
        workdir,
    )

    def load(tree: nnx.State) -> nnx.State:
        pure = nnx.to_pure_dict(tree)
        flat = _flat(pure)
        loaded = {
            path: weights[targets[path]] if path in targets else leaf for path, leaf in flat.items()
        }
        leaves = [jnp.array(loaded[path], flat[path].dtype, copy=True) for path in flat]
        new = jax.tree.unflatten(jax.tree.structure(pure), leaves)
        out = jax.tree.map(lambda x: x, tree)
        nnx.replace_by_pure_dict(out, new)
        return out

    return state.replace(
        params=load(state.params),
        ema_params=load(state.ema_params),
        model_state=load(state.model_state),
        opt_state=state.opt_state,
    )
