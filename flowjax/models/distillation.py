"""A student network and a frozen teacher of the same architecture, trained as one module.

Self-distillation through time (SDTT, Deschenaux & Gulcehre, 2024) trains a student to match
its teacher's two sampling steps with one, and after every round the student becomes the
teacher. `TeacherStudent` holds both: the student's weights are `nnx.Param` (trained, averaged
by the EMA), the teacher's are `Frozen` variables, which the trainer keeps in the train state's
non-trainable part (`model_state`): they are sharded like the student's (the same path suffixes
match the same sharding rules), checkpointed with the run (so a resumed run has the teacher of
its round) and never receive a gradient. `round` counts the rounds; the objective's
`begin_step` copies the student into the teacher when a round starts.

Calling the module calls the student, so sampling and evaluation of a distilled run read the
student's (EMA) weights. A second frozen network of the same architecture (`map_weights`,
`map_teacher()`, with `second_teacher=True`) serves distillations with two teachers (FMLM's second
stage: the flow model and its stage-one flow map).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx


class Frozen(nnx.Variable):
    """Weights that training does not update (the teacher's); kept in the train state's
    `model_state`."""


def _is_frozen(x: Any) -> bool:
    return isinstance(x, Frozen)


class TeacherStudent(nnx.Module):
    """`student` (trained) and a frozen copy of it, `teacher()`, as one module."""

    def __init__(
        self,
        build: Callable[[nnx.Rngs], nnx.Module],
        rngs: nnx.Rngs,
        *,
        second_teacher: bool = False,
    ):
        self.student = build(rngs)
        weights = nnx.to_pure_dict(nnx.state(self.student, nnx.Param))
        frozen = lambda: nnx.data(jax.tree.map(lambda w: Frozen(jnp.copy(w)), weights))  # noqa: E731
        self.teacher_weights = frozen()
        self.map_weights = frozen() if second_teacher else None
        self.round = Frozen(jnp.zeros((), jnp.int32))

    def _frozen_network(self, frozen_weights: Any) -> nnx.Module:
        """The student's architecture with `frozen_weights` (no gradient)."""
        graphdef, params, rest = nnx.split(self.student, nnx.Param, ...)
        weights = jax.tree.map(
            lambda v: jax.lax.stop_gradient(v[...]), frozen_weights, is_leaf=_is_frozen
        )
        nnx.replace_by_pure_dict(params, weights)
        return nnx.merge(graphdef, params, rest)

    def teacher(self) -> nnx.Module:
        """The teacher: the student's architecture with the frozen weights (no gradient)."""
        return self._frozen_network(self.teacher_weights)

    def map_teacher(self) -> nnx.Module:
        """The second frozen network (built with `second_teacher=True`)."""
        if self.map_weights is None:
            raise ValueError("This TeacherStudent has one teacher; build it with second_teacher=True.")
        return self._frozen_network(self.map_weights)

    def __call__(self, *args, **kwargs):
        return self.student(*args, **kwargs)

    def __getattr__(self, name: str):
        # The student's methods and attributes (e.g. `draw_noise`, `vocab_size`) read through.
        if name.startswith("_") or name in ("student", "teacher_weights", "map_weights", "round"):
            raise AttributeError(name)
        return getattr(self.student, name)
