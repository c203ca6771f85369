"""Classifier-free guidance.

Ho & Salimans (2022), in the form of the Flow Matching Guide (Lipman et al., 2024), section
6.3, eq. 6.19: u_guided = (1 + w) u(x, t | y) - w u(x, t | null), with w = 0 giving the plain
conditional field. The same combination applies to velocities, x_1-predictions and
epsilon-predictions of affine paths, which are all affine in the score.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp


def classifier_free_guidance(
    conditional: jax.Array, unconditional: jax.Array, guidance_scale: float | jax.Array
) -> jax.Array:
    """(1 + w) * conditional - w * unconditional."""
    return (1.0 + guidance_scale) * conditional - guidance_scale * unconditional


def guided_velocity(
    velocity_fn: Callable[..., jax.Array],
    guidance_scale: float | jax.Array,
    *,
    null_label: int,
    label_name: str = "label",
) -> Callable[..., jax.Array]:
    """Wraps a class-conditional field into its classifier-free-guided version.

    The conditional and unconditional evaluations run as one call on a doubled batch. The
    returned function has the signature f(x, t, **model_kwargs) of `ode_sample`, with the labels
    passed as model_kwargs[label_name] of shape (B,); `null_label` is the label the model was
    trained with for "no condition" (label dropout).
    """

    def guided(x: jax.Array, t: jax.Array, **model_kwargs: Any) -> jax.Array:
        if label_name not in model_kwargs:
            raise ValueError(f"guided_velocity needs the labels as the keyword {label_name!r}.")
        labels = jnp.asarray(model_kwargs.pop(label_name))
        if labels.shape != x.shape[:1]:
            raise ValueError(
                f"{label_name} must have shape (batch,) = ({x.shape[0]},), got {labels.shape}."
            )
        t = jnp.asarray(t)
        both_t = jnp.concatenate([t, t]) if t.ndim == 1 else t
        both = velocity_fn(
            jnp.concatenate([x, x]),
            both_t,
            **{label_name: jnp.concatenate([labels, jnp.full_like(labels, null_label)])},
            **model_kwargs,
        )
        conditional, unconditional = jnp.split(both, 2)
        return classifier_free_guidance(conditional, unconditional, guidance_scale)

    return guided
