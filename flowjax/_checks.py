"""Input checks shared by paths, losses and solvers (the input contract of ARCHITECTURE.md).

Shapes and dtypes are checked at trace time. Values (t in [0, 1], token ids, the times where a
function is singular) can only be checked when they are concrete, i.e. outside `jax.jit` or when
passed as Python / NumPy constants; under `jit` a traced value is accepted as is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np


def concrete_value(x: Any) -> np.ndarray | None:
    """`x` as a NumPy array if its value is known now, else None (a tracer)."""
    try:
        return np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def check_unit_interval(t: Any, name: str = "t") -> None:
    """Raises if a concrete `t` has values outside [0, 1]."""
    value = concrete_value(t)
    if value is None or value.size == 0:
        return
    if not np.all(np.isfinite(value)):
        raise ValueError(f"{name} must be finite, got {value!r}.")
    lo, hi = float(value.min()), float(value.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"{name} must lie in [0, 1] (t = 0 is the source, t = 1 the data); "
            f"got values in [{lo:.6g}, {hi:.6g}]."
        )


def check_same_shape(a: jax.Array, b: jax.Array, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape; got {name_a}.shape={a.shape} "
            f"and {name_b}.shape={b.shape}."
        )


def check_batch_time(t: jax.Array, x: jax.Array, x_name: str = "x") -> None:
    """`t` must be of shape (B,) with B the leading dimension of `x`."""
    if x.ndim == 0:
        raise ValueError(f"{x_name} needs a leading batch dimension, got a scalar.")
    if t.shape != (x.shape[0],):
        raise ValueError(
            f"t must have shape (batch,) = ({x.shape[0]},) to match {x_name}.shape={x.shape}; "
            f"got t.shape={t.shape}."
        )


def check_tokens(x: jax.Array, vocab_size: int | None, name: str = "x") -> None:
    """Token arrays must be integer; concrete ones must lie in [0, vocab_size)."""
    if not jax.numpy.issubdtype(x.dtype, jax.numpy.integer):
        raise TypeError(f"{name} must hold integer token ids, got dtype {x.dtype}.")
    value = concrete_value(x)
    if vocab_size is None or value is None or value.size == 0:
        return
    lo, hi = int(value.min()), int(value.max())
    if lo < 0 or hi >= vocab_size:
        raise ValueError(
            f"{name} holds token ids in [{lo}, {hi}], outside the vocabulary [0, {vocab_size}); "
            f"the path and the model have {vocab_size} tokens (with the mask token, if any)."
        )


def check_logits(
    logits: jax.Array, x: jax.Array, vocab_size: int | None, x_name: str = "x_t"
) -> None:
    """Logits must have shape x.shape + (vocab_size,) (any vocabulary when vocab_size is None)."""
    expected = "vocab_size" if vocab_size is None else vocab_size
    if logits.shape[:-1] != x.shape or (vocab_size is not None and logits.shape[-1] != vocab_size):
        raise ValueError(
            f"logits must have shape {x_name}.shape + (vocab,) = {x.shape} + ({expected},), "
            f"got {logits.shape}."
        )


def check_floating(x: jax.Array, name: str) -> None:
    """Raises a TypeError unless `x` holds floating-point values."""
    if not jax.numpy.issubdtype(x.dtype, jax.numpy.floating):
        raise TypeError(f"{name} must be floating point, got dtype {x.dtype}.")


def check_float_dtype(dtype: Any, name: str = "dtype") -> np.dtype:
    """`dtype` as a NumPy dtype; raises a TypeError unless it is a floating dtype."""
    try:
        value = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name} must be a floating dtype, got {dtype!r}.") from None
    if not jax.numpy.issubdtype(value, jax.numpy.floating):
        raise TypeError(f"{name} must be a floating dtype (e.g. jnp.float32), got {value}.")
    return value


def check_count(value: Any, name: str, minimum: int = 0) -> int:
    """`value` as an int; raises a ValueError unless it is an int >= minimum (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}.")
    return int(value)


def check_time(t: jax.Array, x: jax.Array, x_name: str = "x") -> None:
    """`t` must be a scalar, of shape (batch,) = x.shape[:1], or already broadcast against x
    (x.ndim axes, each 1 or that of x)."""
    t_shape, x_shape = tuple(np.shape(t)), tuple(x.shape)
    if len(t_shape) == 0 or (len(t_shape) == 1 and x_shape[:1] == t_shape):
        return
    if len(t_shape) == len(x_shape) and all(a in (1, b) for a, b in zip(t_shape, x_shape)):
        return
    raise ValueError(
        f"t must be a scalar, of shape (batch,) = {x_shape[:1]} or broadcastable to "
        f"{x_name}.shape={x_shape} with as many axes; got t.shape={t_shape}."
    )


def check_regular(
    t: Any,
    what: str,
    *,
    finite: Sequence[Any] = (),
    nonzero: Sequence[Any] = (),
) -> None:
    """Raises a ValueError naming the concrete times t at which `what` is singular: where an
    array of `finite` is not finite or an array of `nonzero` is 0 (arrays computed from t, of
    t's size or broadcast against it). Traced arrays are not checked: under `jax.jit` the result
    there is inf or NaN."""
    time = concrete_value(t)
    if time is None or time.size == 0:
        return
    singular: set[float] = set()
    checks = [(v, lambda a: ~np.isfinite(a)) for v in finite]
    checks += [(v, lambda a: a == 0) for v in nonzero]
    for values, is_singular in checks:
        value = concrete_value(values)
        if value is None:
            return
        bad = is_singular(value)
        if np.any(bad):
            times = time.reshape(value.shape)[bad] if time.size == value.size else time.ravel()
            singular.update(float(v) for v in np.ravel(times))
    if singular:
        shown = sorted(singular)
        raise ValueError(
            f"{what} is singular at t = {', '.join(f'{v:.6g}' for v in shown[:5])}"
            f"{' ...' if len(shown) > 5 else ''}: call it at times where it is finite "
            "(inside (0, 1)); under jax.jit such times give inf or NaN."
        )


def flat_batch(x: jax.Array) -> jax.Array:
    """x of shape (B, *event) as (B, prod(event)), also for B = 0 or an empty event."""
    return x.reshape(x.shape[0], math.prod(x.shape[1:]))


def check_output_shape(output: Any, x: jax.Array, name: str) -> None:
    """A model's output must have the shape of its input x (checked at trace time)."""
    if jax.numpy.shape(output) != x.shape:
        raise ValueError(
            f"{name} must return an array of the shape of its input x, {x.shape}; got "
            f"{jax.numpy.shape(output)}."
        )
