"""Strategies and helpers shared by the property tests.

The space of shapes is small on purpose: batch sizes 0, 1 and 3 and two event shapes, so that
the programs compiled for one example serve the next ones (every new shape or dtype compiles new
programs, and compilation dominates the run time). Arrays are drawn as NumPy float32 and cast to
the dtype under test (NumPy has no bfloat16).
"""

from __future__ import annotations

import contextlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

BATCH_SIZES = (0, 1, 3)
EVENT_SHAPES = ((2,), (1, 3))
FLOAT_DTYPES = (jnp.float16, jnp.bfloat16, jnp.float32)

batch_sizes = st.sampled_from(BATCH_SIZES)
nonempty_batch_sizes = st.sampled_from((1, 3))
event_shapes = st.sampled_from(EVENT_SHAPES)
float_dtypes = st.sampled_from(FLOAT_DTYPES)
seeds = st.integers(0, 2**31 - 1)


def float32s(low: float, high: float, **kwargs):
    """float32 values in [low, high] (the bounds rounded to float32 first)."""
    return st.floats(float(np.float32(low)), float(np.float32(high)), width=32, **kwargs)


unit_floats = float32s(0.0, 1.0)
below_one_floats = float32s(0.0, 1.0, exclude_max=True)
interior_floats = float32s(0.05, 0.95)
outside_unit_floats = st.one_of(float32s(-3.0, -1e-3), float32s(1.001, 3.0))


def fewer_examples(divisor: int = 3) -> settings:
    """Settings of a costly property: the active profile's examples divided by `divisor`."""
    return settings(max_examples=max(3, settings().max_examples // divisor))


def arrays(shape, low: float = -3.0, high: float = 3.0, elements=None):
    """float32 NumPy arrays of `shape` with finite entries in [low, high]."""
    elements = float32s(low, high) if elements is None else elements
    return hnp.arrays(np.float32, shape, elements=elements)


def times(batch: int, elements=unit_floats):
    """A (batch,) float32 vector of times."""
    return hnp.arrays(np.float32, (batch,), elements=elements)


def tokens(shape, vocab_size: int):
    """int32 token ids in [0, vocab_size)."""
    return hnp.arrays(np.int32, shape, elements=st.integers(0, vocab_size - 1))


@contextlib.contextmanager
def raises_naming(exception, *words: str):
    """Expects `exception` whose message mentions every one of `words`."""
    with pytest.raises(exception) as info:
        yield info
    message = str(info.value)
    missing = [w for w in words if not re.search(re.escape(w), message)]
    assert not missing, f"the message does not mention {missing}: {message!r}"


def assert_finite(*values) -> None:
    for value in jax.tree.leaves(values):
        array = np.asarray(jnp.asarray(value, jnp.float32))
        assert np.all(np.isfinite(array)), f"non-finite values: {array}"


def typed_key(seed: int) -> jax.Array:
    return jax.random.key(seed)


def raw_key(seed: int) -> jax.Array:
    return jax.random.PRNGKey(seed)


NOT_KEYS = {
    "float32 pair": lambda: jnp.zeros((2,), jnp.float32),
    "int32 pair": lambda: jnp.zeros((2,), jnp.int32),
    "uint32 triple": lambda: jnp.zeros((3,), jnp.uint32),
    "python int": lambda: 0,
    "batch of keys": lambda: jax.random.split(jax.random.key(0), 2),
}
"""Things that are not one PRNG key, by name."""
