"""Classifier-free guidance.

Ho & Salimans (2022), in the form of the Flow Matching Guide (Lipman et al., 2024), section
6.3, eq. 6.19: u_guided = (1 + w) u(x, t | y) - w u(x, t | null), with w = 0 giving the plain
conditional field. The same combination applies to velocities, x_1-predictions and
epsilon-predictions of affine paths, which are all affine in the score.

Two conditions, semantic y (a class, a text) and control metadata c (crop, flip, size), have a
guidance scale each (Berrada et al., 2024, "On Improved Conditioning Mechanisms and Pre-training
Strategies for Diffusion Models"; the composition of Brooks et al., 2023, InstructPix2Pix,
eq. 3): u = u(null, null) + s_y (u(y, null) - u(null, null)) + s_c (u(y, c) - u(y, null))
(`two_scale_guidance`); s_y = s_c = 1 gives the fully conditional u(y, c), s_c = 0 ignores the
control metadata. `two_scale_guided_velocity` wraps a model taking `label` and `control`
(NaN rows: no metadata, `flowjax.models.conditioning`) into this combination, evaluated as one
call on a tripled batch. A caption's text embeddings (`context`) are a semantic condition like
the label: its null is the null caption, zeros (`flowjax.models.conditioning.NULL_CONTEXT`).

For discrete models (posterior logits, section 7 of the Guide) the same combination of logits,
(1 + w) l(. | x_t, y) - w l(. | x_t), is the guided posterior
p_w(x_1 | x_t, y) proportional to p(x_1 | x_t, y)^(1 + w) p(x_1 | x_t)^(-w) (`guided_logits`).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp


def classifier_free_guidance(
    conditional: jax.Array, unconditional: jax.Array, guidance_scale: float | jax.Array
) -> jax.Array:
    """(1 + w) * conditional - w * unconditional."""
    if jnp.shape(conditional) != jnp.shape(unconditional):
        raise ValueError(
            "conditional and unconditional must have the same shape; got "
            f"{jnp.shape(conditional)} and {jnp.shape(unconditional)}."
        )
    return (1.0 + guidance_scale) * conditional - guidance_scale * unconditional


def guided_velocity(
    velocity_fn: Callable[..., jax.Array],
    guidance_scale: float | jax.Array,
    *,
    null_label: int | None,
    label_name: str = "label",
) -> Callable[..., jax.Array]:
    """Wraps a conditional field into its classifier-free-guided version.

    The conditional and unconditional evaluations run as one call on a doubled batch. The
    returned function has the signature f(x, t, **model_kwargs) of `ode_sample`, with the labels
    passed as model_kwargs[label_name] of shape (B,) and / or text embeddings as
    model_kwargs["context"] (B, M, D); the unconditional half reads `null_label` (the label the
    model was trained with for "no condition", label dropout; None for a model without labels)
    and the null caption (`flowjax.models.conditioning.null_context`, context dropout).
    """

    def guided(x: jax.Array, t: jax.Array, **model_kwargs: Any) -> jax.Array:
        if jnp.ndim(x) == 0:
            raise ValueError(f"x must have a leading batch axis (B, ...), got a scalar {x!r}.")
        conditions = {}
        if null_label is not None:
            if label_name not in model_kwargs:
                raise ValueError(f"guided_velocity needs the labels as the keyword {label_name!r}.")
            labels = jnp.asarray(model_kwargs.pop(label_name))
            if labels.shape != x.shape[:1]:
                raise ValueError(
                    f"{label_name} must have shape (batch,) = ({x.shape[0]},), got {labels.shape}."
                )
            conditions[label_name] = jnp.concatenate([labels, jnp.full_like(labels, null_label)])
        if "context" in model_kwargs:
            context = jnp.asarray(model_kwargs.pop("context"))
            if context.ndim != 3 or context.shape[0] != x.shape[0]:
                raise ValueError(
                    f"context must have shape ({x.shape[0]}, M, D), got {tuple(context.shape)}."
                )
            conditions["context"] = jnp.concatenate([context, jnp.zeros_like(context)])
        if not conditions:
            raise ValueError(
                "guided_velocity needs a condition to guide on: labels (with null_label) or text "
                "embeddings as `context`."
            )
        t = jnp.asarray(t)
        both_t = jnp.concatenate([t, t]) if t.ndim == 1 else t
        both = velocity_fn(jnp.concatenate([x, x]), both_t, **conditions, **model_kwargs)
        if jnp.shape(both)[:1] != (2 * x.shape[0],):
            raise ValueError(
                f"velocity_fn must return one output per input of the doubled batch, leading axis "
                f"{2 * x.shape[0]}; got shape {jnp.shape(both)}."
            )
        conditional, unconditional = jnp.split(both, 2)
        return classifier_free_guidance(conditional, unconditional, guidance_scale)

    return guided


def guided_logits(
    logits_fn: Callable[..., jax.Array],
    guidance_scale: float | jax.Array,
    *,
    null_label: int,
    label_name: str = "label",
) -> Callable[..., jax.Array]:
    """Classifier-free guidance of a discrete posterior model, for `discrete_sample`.

    The returned f(x, t, **model_kwargs) gives the logits (1 + w) l_cond - w l_uncond of
    p(x_1 | x_t, y)^(1 + w) p(x_1 | x_t)^(-w) (up to normalisation, which the softmax restores);
    one call of `logits_fn` on a doubled batch, as in `guided_velocity`.
    """
    return guided_velocity(logits_fn, guidance_scale, null_label=null_label, label_name=label_name)


def two_scale_guidance(
    unconditional: jax.Array,
    semantic: jax.Array,
    full: jax.Array,
    semantic_scale: float | jax.Array,
    control_scale: float | jax.Array,
) -> jax.Array:
    """u(null, null) + s_y (u(y, null) - u(null, null)) + s_c (u(y, c) - u(y, null)) from the
    model's outputs without conditions, with the semantic condition only, and with both."""
    shapes = {jnp.shape(unconditional), jnp.shape(semantic), jnp.shape(full)}
    if len(shapes) != 1:
        raise ValueError(f"The three outputs must have one shape; got {sorted(shapes)}.")
    return (
        unconditional
        + semantic_scale * (semantic - unconditional)
        + control_scale * (full - semantic)
    )


def two_scale_guided_velocity(
    velocity_fn: Callable[..., jax.Array],
    semantic_scale: float | jax.Array,
    control_scale: float | jax.Array,
    *,
    null_label: int | None,
) -> Callable[..., jax.Array]:
    """f(x, t, label=None, control, **kwargs) -> `two_scale_guidance` of the three evaluations
    u(null, null), u(y, null), u(y, c), run as one call of `velocity_fn` on a (3B, ...) batch.

    `control` (B, K) is required; the null control is a row of NaN. `null_label` is the model's
    "no label" token, or None for a model without labels; text embeddings `context` (B, M, D),
    when given, are part of the semantic condition y (the null caption in u(null, null)).
    Without labels and text, u(y, null) = u(null, null) and only the control scale matters.
    """

    def guided(x: jax.Array, t: jax.Array, **model_kwargs: Any) -> jax.Array:
        if "control" not in model_kwargs:
            raise ValueError("two_scale_guided_velocity needs the control metadata as `control`.")
        control = jnp.asarray(model_kwargs.pop("control"), jnp.float32)
        if control.ndim != 2 or control.shape[0] != x.shape[0]:
            raise ValueError(
                f"control must have shape ({x.shape[0]}, K), got {tuple(control.shape)}."
            )
        none = jnp.full_like(control, jnp.nan)
        kwargs = dict(model_kwargs, control=jnp.concatenate([none, none, control]))
        if null_label is not None:
            if "label" not in model_kwargs:
                raise ValueError("A class-conditional model needs its labels as `label`.")
            labels = jnp.asarray(model_kwargs["label"])
            kwargs["label"] = jnp.concatenate([jnp.full_like(labels, null_label), labels, labels])
        if "context" in model_kwargs:
            context = jnp.asarray(model_kwargs["context"])
            kwargs["context"] = jnp.concatenate([jnp.zeros_like(context), context, context])
        t = jnp.asarray(t)
        outputs = velocity_fn(
            jnp.concatenate([x, x, x]), jnp.concatenate([t, t, t]) if t.ndim == 1 else t, **kwargs
        )
        unconditional, semantic, full = jnp.split(outputs, 3)
        return two_scale_guidance(unconditional, semantic, full, semantic_scale, control_scale)

    return guided
