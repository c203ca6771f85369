"""Parameter updates: the optax optimiser, its learning-rate schedule, and the parameter EMA.

Adam (Kingma & Ba, 2015), AdamW (decoupled weight decay, Loshchilov & Hutter, 2019) or SGD with
(Nesterov) momentum and coupled weight decay (the gradient of (weight_decay / 2) ||theta||^2
added before the momentum, as in the Wide ResNet recipes), after an optional clipping of the
gradient's global norm; the learning rate warms up linearly from 0 and then stays constant,
follows a cosine decay (Loshchilov & Hutter, 2017), or is multiplied by `decay_factor` at each
of the fractions `decay_boundaries` of the run (the step schedule of Zagoruyko & Komodakis,
2016: x0.2 at epochs 60, 120 and 160 of 200). The exponential
moving average of the parameters, used for sampling, has a warmed-up decay
min(decay, (1 + step) / (10 + step)), so early averages are not dominated by the initialisation
(the recipe of the Flow Matching Guide's image models, section 5).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax


def learning_rate_schedule(
    optim_config: ml_collections.ConfigDict, num_steps: int
) -> optax.Schedule:
    """step -> learning rate: linear warm-up to `learning_rate`, then constant, cosine or
    step-wise decay."""
    c = optim_config
    if c.schedule == "cosine":
        decay_steps = max(num_steps - c.warmup_steps, 1)
        main = optax.cosine_decay_schedule(c.learning_rate, decay_steps, alpha=c.final_lr_fraction)
    elif c.schedule == "step":  # boundaries are fractions of the whole run, warm-up included
        boundaries = [max(round(f * num_steps) - c.warmup_steps, 1) for f in c.decay_boundaries]
        main = optax.piecewise_constant_schedule(
            c.learning_rate, {b: c.decay_factor for b in boundaries})
    else:
        main = optax.constant_schedule(c.learning_rate)
    if c.warmup_steps == 0:
        return main
    warmup = optax.linear_schedule(0.0, c.learning_rate, c.warmup_steps)
    return optax.join_schedules([warmup, main], [c.warmup_steps])


def make_optimizer(
    optim_config: ml_collections.ConfigDict, schedule: optax.Schedule
) -> optax.GradientTransformation:
    """Adam / AdamW / SGD with the learning-rate `schedule`, after global-norm clipping if
    enabled."""
    c = optim_config
    if c.name == "adamw":
        optimizer = optax.adamw(schedule, b1=c.b1, b2=c.b2, eps=c.eps, weight_decay=c.weight_decay)
    elif c.name == "sgd":
        optimizer = optax.chain(
            optax.add_decayed_weights(c.weight_decay),
            optax.sgd(schedule, momentum=c.momentum or None, nesterov=c.nesterov),
        )
    else:
        optimizer = optax.adam(schedule, b1=c.b1, b2=c.b2, eps=c.eps)
    if c.grad_clip_norm > 0:
        optimizer = optax.chain(optax.clip_by_global_norm(c.grad_clip_norm), optimizer)
    return optimizer


def ema_decay(step: jax.Array, max_decay: float) -> jax.Array:
    """The EMA decay at update `step` (0-based): min(max_decay, (1 + step) / (10 + step))."""
    step = jnp.asarray(step, jnp.float32)
    return jnp.minimum(max_decay, (1.0 + step) / (10.0 + step))


def ema_update(ema_params: Any, params: Any, decay: jax.Array) -> Any:
    """decay * ema + (1 - decay) * params, leaf by leaf."""
    return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema_params, params)
