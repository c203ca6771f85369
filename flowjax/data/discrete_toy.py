"""Discrete toys: 2D toys quantised to a grid of bins, as int32 tokens (one per coordinate).

The discrete 2D example of the Flow Matching Guide and Code (Lipman et al., 2024, section 7; the
reference code's 2D discrete example trains on a 4 x 4 checkerboard over a 128 x 128 grid of
tokens). Here:

discrete_checkerboard
    `flowjax.data.toy`'s checkerboard on [-4, 4)^2 with each coordinate quantised to one of 128
    bins of width 1/16: token k = floor((x + 4) * 16), bin centre -4 + (k + 1/2) / 16. Every
    square of the board covers 32 x 32 cells and the continuous density is constant on each
    cell, so the quantised distribution is uniform on 8 * 32^2 = 8192 cells:
    log q = -log 8192 on the support (9.011 nats per point, 6.5 bits per token).

Sampling quantises the continuous toy's draws, so batch i of the stream with a seed is a pure
function of (seed, i), as for every toy (`flowjax.data.toy.toy_batch`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import Array


class DiscreteToy(NamedTuple):
    """A continuous toy `continuous` on [low, high)^2, quantised to `num_bins` bins per axis.

    `log_pmf_in_support` is log q of every cell of the support (exact when the continuous
    density is constant on each cell, as for the checkerboard).
    """

    continuous: str
    num_bins: int
    low: float
    high: float
    log_pmf_in_support: float

    @property
    def bin_width(self) -> float:
        return (self.high - self.low) / self.num_bins

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Points (n, 2) -> int32 tokens (n, 2) in [0, num_bins)."""
        tokens = np.floor((np.asarray(x) - self.low) / self.bin_width)
        return np.clip(tokens, 0, self.num_bins - 1).astype(np.int32)

    def centres(self, tokens: Array | np.ndarray) -> Array:
        """Tokens (..., 2) -> the centres of their bins, float32 points (..., 2)."""
        return self.low + (jnp.asarray(tokens, jnp.float32) + 0.5) * self.bin_width


DISCRETE_TOYS: dict[str, DiscreteToy] = {
    "discrete_checkerboard": DiscreteToy(
        continuous="checkerboard",
        num_bins=128,
        low=-4.0,
        high=4.0,
        log_pmf_in_support=-math.log(8 * 32**2),
    ),
}
"""The discrete toys by name (`source="toy"`, name=...): tokens in [0, num_bins)."""

DISCRETE_CHECKERBOARD_NLL: float = math.log(8 * 32**2)
"""The discrete checkerboard's entropy, log 8192 = 9.011 nats per point (6.5 bits per token)."""
