"""Input checks shared by paths, losses and solvers.

Shapes are checked at trace time. Values (t in [0, 1]) can only be checked when they are
concrete, i.e. outside `jax.jit` or when passed as Python / NumPy constants; under `jit` a
traced `t` is accepted as is.
"""

from __future__ import annotations

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
