"""Divergence of a batched vector field, exact or by Hutchinson's estimator.

Flow Matching Guide and Code (Lipman et al., 2024), section 3.6 (eq. 3.30 ff.): the change of
log-density along a flow is minus the divergence div u_t(x) = Tr(du_t/dx). For a field acting
on a batch x of shape (B, *event), whose samples do not interact, the divergence of sample b is
the trace of the (D x D) Jacobian of u(x)_b with respect to x_b, D = prod(event).

`exact_divergence` computes it with D Jacobian-vector products against one-hot tangents that
are the same for every sample, so it is right for any event shape (images, sequences, ...), not
only for (B, D). `hutchinson_divergence` estimates it as the mean over probes z of z . (J z)
(Hutchinson, 1989), with z Rademacher or Gaussian. Both use forward mode and return the
field's value as a by-product, so the likelihood solvers spend no extra evaluation on it.

`divergence_estimator` picks one of the two for a whole solve, drawing Hutchinson's probes once:
the likelihood solvers use the same probes at every step, and the Flow Divergence Sampler
(`flowjax.solvers.fds`) compares a state with its perturbations under the same probes.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from flowjax._checks import check_count, check_float_dtype, flat_batch

PROBES = ("rademacher", "gaussian")
EXACT_CHUNK_SIZE = 64
"""One-hot tangents that `exact_divergence` pushes through the field in one vectorised pass."""

Field = Callable[[jax.Array], jax.Array]
Divergence = Callable[[Field, jax.Array], tuple[jax.Array, jax.Array]]
"""(field, x) -> (field(x), div field(x) of shape (B,)), for x of shape (B, *event)."""


def _per_sample_sum(a: jax.Array) -> jax.Array:
    return flat_batch(a).sum(axis=1)


def exact_divergence(
    field: Callable[[jax.Array], jax.Array],
    x: Float[Array, "B *event"],
    *,
    chunk_size: int = EXACT_CHUNK_SIZE,
) -> tuple[Float[Array, "B *event"], Float[Array, "B"]]:
    """(field(x), div field(x)) with the divergence of shape (B,), for x of shape (B, *event).

    The D one-hot tangents are processed `chunk_size` at a time (vectorised within a chunk).
    """
    if x.ndim < 2:
        raise ValueError(f"exact_divergence needs x of shape (B, *event), got {x.shape}.")
    event_shape = x.shape[1:]
    dim = math.prod(event_shape)
    if dim == 0:  # no coordinates: the trace of an empty Jacobian
        return field(x), jnp.zeros(x.shape[:1], x.dtype)

    def value_and_entry(i):
        tangent = jnp.broadcast_to(
            jax.nn.one_hot(i, dim, dtype=x.dtype).reshape(event_shape), x.shape
        )
        out, jvp_out = jax.jvp(field, (x,), (tangent,))
        return out, jvp_out.reshape(x.shape[0], dim)[:, i]

    if dim <= chunk_size:
        # One vectorised pass; the primal does not depend on i, so it is computed once.
        outs, diag = jax.vmap(value_and_entry)(jnp.arange(dim))
        return outs[0], diag.sum(axis=0)
    diag = jax.lax.map(lambda i: value_and_entry(i)[1], jnp.arange(dim), batch_size=chunk_size)
    return field(x), diag.sum(axis=0)


def hutchinson_probes(
    key: jax.Array, shape: tuple[int, ...], num_probes: int, kind: str, dtype
) -> Float[Array, "K *shape"]:
    """Probe vectors z of shape (num_probes, *shape) with E[z z^T] = I."""
    if kind not in PROBES:
        raise ValueError(f"Unknown Hutchinson probe kind {kind!r}; expected one of {PROBES}.")
    num_probes = check_count(num_probes, "num_probes", minimum=1)
    dtype = check_float_dtype(dtype)
    full = (num_probes,) + tuple(shape)
    if kind == "rademacher":
        return jax.random.rademacher(key, full, dtype=dtype)
    return jax.random.normal(key, full, dtype=dtype)


def hutchinson_divergence(
    field: Callable[[jax.Array], jax.Array],
    x: Float[Array, "B *event"],
    probes: Float[Array, "K B *event"],
) -> tuple[Float[Array, "B *event"], Float[Array, "B"]]:
    """(field(x), estimate of div field(x) of shape (B,)) with probes of shape (K, *x.shape)."""
    if probes.shape[1:] != x.shape:
        raise ValueError(
            f"probes must have shape (num_probes, *x.shape) = (K, {x.shape}); got {probes.shape}."
        )

    def one_probe(z):
        out, jz = jax.jvp(field, (x,), (z,))
        return out, _per_sample_sum(z * jz)

    outs, estimates = jax.vmap(one_probe)(probes)
    return outs[0], estimates.mean(axis=0)


def divergence_estimator(
    shape: tuple[int, ...],
    dtype,
    *,
    exact: bool = True,
    key: jax.Array | None = None,
    num_probes: int = 1,
    probe: str = "rademacher",
) -> Divergence:
    """The divergence used throughout one solve over states of shape `shape` = (B, *event).

    Args:
      shape, dtype: of the states whose divergence will be taken.
      exact: `exact_divergence` (D forward-mode products, D = prod(event)); otherwise
        `hutchinson_divergence` with `num_probes` probes of kind `probe`, drawn here from `key`
        once and fixed for every later call.
      key: PRNG key of the probes (required when exact=False).
    """
    if exact:
        return exact_divergence
    if key is None:
        raise ValueError(
            "The Hutchinson divergence (exact_divergence=False) needs a `key` for its probes."
        )
    probes = hutchinson_probes(key, shape, num_probes, probe, dtype)
    return lambda field, x: hutchinson_divergence(field, x, probes)


def divergence_passes(event_size: int, *, exact: bool, num_probes: int = 1) -> tuple[int, int]:
    """(forward, jvp): passes through the field spent on one divergence of `divergence_estimator`.

    Exact: one JVP per dimension (D = event_size), and the forward pass once if
    D <= EXACT_CHUNK_SIZE (one vectorised pass), else once per chunk of tangents and once for
    the value. Hutchinson: one JVP per probe and the forward pass once.
    """
    if not exact:
        return 1, num_probes
    forward = 1 if event_size <= EXACT_CHUNK_SIZE else math.ceil(event_size / EXACT_CHUNK_SIZE) + 1
    return forward, event_size
