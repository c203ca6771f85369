"""Self-distillation through time (SDTT) of masked diffusion models.

Beyond Autoregression: Fast LLMs via Self-Distillation Through Time (Deschenaux & Gulcehre, 2024,
section 3) and its use for the Infinite Mask Diffusion Model (IM-SDTT). The student learns to
take in one step of size k dt what the teacher takes in k ancestral steps of size dt (k = 2):
from x_t the teacher runs its sampler (`flowjax.solvers.masked_diffusion_sample`'s transition:
a masked position is revealed from t to s with probability (kappa_s - kappa_t) / (1 - kappa_t))
for k steps, and the target distribution of each position masked in x_t is the teacher's
posterior of the step that revealed it (of the last step for a position still masked). The
student's posterior at (x_t, t) is pulled to it by the reverse ("backward") KL,

    L = E_{positions masked in x_t} [ KL(p_student || p_target) ],

averaged over the masked positions of the batch (the authors' `_bwd_kl`). Sampling the
teacher's intermediate states is what carries the dependence between positions that a single
factorized step cannot express into the student's marginals. For IMDM the teacher and the
student read the same labels eps, held fixed through the teacher's steps (`sdtt_fix_eps`).

In flowjax time (t = 0 all masked, t = 1 data) the teacher's steps go from t to t + dt, ...;
a step reaching t = 1 reveals every masked position.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from flowjax.categorical import sample_categorical
from flowjax.paths.discrete import MaskSource, MixtureDiscreteProbPath


def sdtt_loss(
    keys: jax.Array,
    student_fn: Callable[..., Array],
    teacher_fn: Callable[..., Array],
    path: MixtureDiscreteProbPath,
    x_t: Int[Array, "B L"],
    t: Float[Array, "B"],
    dt: float | Float[Array, ""],
    *,
    teacher_steps: int = 2,
    **model_kwargs: Any,
) -> Float[Array, ""]:
    """The SDTT loss of a batch (module docstring).

    Args:
      keys: one PRNG key per example (B,), for the teacher's draws (per example, so that a
        batch split into micro-batches draws what the whole batch draws).
      student_fn, teacher_fn: (x, t, **model_kwargs) -> posterior logits (B, L, V) with t
        (B,); the mask token's logit -inf (`path.posterior_logits` of a network's logits).
      path: the mask path (a `MixtureDiscreteProbPath` with a `MaskSource`).
      x_t: tokens at t, masked positions hold the mask token.
      t: times (B,) in [0, 1).
      dt: the teacher's step; the student steps teacher_steps * dt.
      teacher_steps: the teacher's steps per student step (SDTT: 2).
      **model_kwargs: passed to both networks (e.g. eps, labels).

    Returns:
      the mean over masked positions of KL(student || target); 0 when nothing is masked.
    """
    source = getattr(path, "source", None)
    if not isinstance(source, MaskSource):
        raise ValueError(f"sdtt_loss needs a mask path, got a path with source {source!r}.")
    if not (isinstance(teacher_steps, int) and teacher_steps >= 1):
        raise ValueError(f"teacher_steps must be an int >= 1, got {teacher_steps!r}.")
    keys = jnp.asarray(keys)
    if keys.shape != x_t.shape[:1]:
        raise ValueError(f"keys must hold one PRNG key per example, {x_t.shape[:1]}, got {keys.shape}.")
    mask = source.mask_token
    masked_t = x_t == mask
    x, s = x_t, t
    target = None
    for k in range(teacher_steps):
        step_keys = jax.vmap(lambda key: jax.random.fold_in(key, k))(keys)
        logits = jax.lax.stop_gradient(teacher_fn(x, s, **model_kwargs)).astype(jnp.float32)
        log_p = jax.nn.log_softmax(logits, axis=-1)
        s_next = jnp.minimum(s + dt, 1.0)
        kappa_s, kappa_n = path.scheduler(s).alpha_t, path.scheduler(s_next).alpha_t
        reveal = jnp.where(s_next >= 1.0, 1.0, (kappa_n - kappa_s) / (1.0 - kappa_s))
        u = jax.vmap(lambda key: jax.random.uniform(jax.random.fold_in(key, 0), x.shape[1:]))(
            step_keys
        )
        tokens = jax.vmap(
            lambda key, p: sample_categorical(jax.random.fold_in(key, 1), p)
        )(step_keys, jnp.exp(log_p))
        revealed = (x == mask) & (u < reveal[:, None])
        # A position revealed now keeps this step's posterior; the others take later ones.
        target = log_p if target is None else jnp.where((x == mask)[..., None], log_p, target)
        x = jnp.where(revealed, tokens, x)
        s = s_next
    student = jax.nn.log_softmax(student_fn(x_t, t, **model_kwargs).astype(jnp.float32), -1)
    p_student = jnp.exp(student)
    support = p_student > 0  # the mask token has probability 0 under both: no 0 * inf terms
    log_ratio = jnp.where(support, student, 0.0) - jnp.where(support, target, 0.0)
    terms = jnp.where(support, p_student * log_ratio, 0.0)
    kl = jnp.where(masked_t, terms.sum(-1), 0.0)
    return kl.sum() / jnp.maximum(masked_t.sum(), 1)
