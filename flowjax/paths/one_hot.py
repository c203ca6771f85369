"""The Gaussian path over one-hot token vectors of flow language models, and its argmax time.

One-step Language Modeling via Continuous Denoising (Lee, Yoo, Agarwal, Shah, Huang,
Raghunathan, Hong, Boffi and Kim, 2026; arXiv:2602.16813), section 3. Every token x^i of a
sequence is the one-hot vector e_{x^i} in R^V and follows its own Euclidean flow from Gaussian
noise,

    x_g = (1 - g) eps + g e_{x_1},        eps ~ N(0, I_V),   g in [0, 1],

whose velocity given the data is e_{x_1} - eps = (e_{x_1} - x_g) / (1 - g); the marginal velocity
is (p_hat - x) / (1 - g) with p_hat = E[e_{x_1} | x_g = x], the vector of posterior token
probabilities, which a network predicts by cross-entropy ("x-prediction").

Time. Most of what happens to the argmax of x_g happens in a narrow band of g (for V = 50,257
the right token wins from g ~ 0.75 to 0.9), so the network and the sampler use the rescaled
probability that the argmax of x_g is the right token,

    alpha(g) = K / (K - 1) (q(g) - 1 / K),     q(g) = E_z[ Phi(z + g / (1 - g))^(K - 1) ],

K = V, z ~ N(0, 1) (the right coordinate is (1 - g) eps_c + g, every other one (1 - g) eps_j:
the right one wins when all K - 1 others are below it). alpha(0) = 0 (a uniform guess),
alpha(1) = 1, and alpha rises monotonically in between. q is computed by Gauss-Hermite
quadrature (100 nodes, as the authors), in float64 on the host.

`ArgmaxTime` tabulates alpha in both directions with monotone piecewise-cubic (Fritsch-Carlson)
interpolants: g -> alpha on 10,000 uniform values of g, alpha -> g on 10,000 uniform values of
alpha joined with the forward table's values (for a large vocabulary alpha stays below 1e-4 up
to g ~ 0.3, which a uniform alpha grid alone would put in its first interval), g found by
bisection (the authors fit cubic splines to the one table of uniform g and swap it for the
inverse; those can overshoot, and in float32 the inverse's knots near alpha = 1, 1e-14 apart,
collapse: ours merges knots float32 cannot tell apart). Near g = 1, alpha is 1 to
float64 precision (for K = 50,257 beyond g ~ 0.93), so g -> alpha -> g round-trips only where
alpha still moves; alpha -> g -> alpha round-trips everywhere.

The authors' training times are alpha ~ U[0, 1] (antithetic over the batch), mapped to
g = alpha^-1(alpha); the network reads alpha; the sampler's grid is uniform in alpha and its
Euler steps are taken in g.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from flowjax._checks import check_tokens
from flowjax.paths.affine import expand_time

QUADRATURE_NODES = 100
TABLE_POINTS = 10_000


def argmax_probability(
    g: Float[np.ndarray, "*shape"], vocab_size: int, nodes: int = QUADRATURE_NODES
) -> Float[np.ndarray, "*shape"]:
    """alpha(g) = K/(K-1) (E_z[Phi(z + g/(1-g))^(K-1)] - 1/K), float64, by Gauss-Hermite
    quadrature with `nodes` nodes; alpha(0) = 0 and alpha(1) = 1 exactly (module docstring)."""
    import scipy.special  # host-side; imported only when a table is built

    if not (isinstance(vocab_size, (int, np.integer)) and vocab_size >= 2):
        raise ValueError(f"vocab_size must be an int >= 2, got {vocab_size!r}.")
    g = np.asarray(g, np.float64)
    if np.any((g < 0) | (g > 1)):
        raise ValueError(f"g must lie in [0, 1], got values in [{g.min()}, {g.max()}].")
    x, w = np.polynomial.hermite.hermgauss(nodes)
    z, w = math.sqrt(2.0) * x, w / math.sqrt(math.pi)
    inner = g < 1.0
    margin = np.where(inner, g, 0.0) / np.where(inner, 1.0 - g, 1.0)
    log_cdf = scipy.special.log_ndtr(z[None, :] + margin.reshape(-1, 1))
    q = np.sum(w * np.exp((vocab_size - 1) * log_cdf), axis=-1).reshape(g.shape)
    alpha = vocab_size / (vocab_size - 1.0) * (q - 1.0 / vocab_size)
    # The ends exactly: q(0) = 1/K (a uniform guess), q(1) = 1.
    return np.where(g <= 0.0, 0.0, np.where(inner, np.clip(alpha, 0.0, 1.0), 1.0))


@dataclasses.dataclass(frozen=True)
class MonotoneTable:
    """The monotone piecewise-cubic Hermite interpolant (Fritsch-Carlson, scipy's PCHIP) y(x) of
    increasing knots x, evaluated in JAX (`__call__`, any shape) or in float64 on the host
    (`host`); values outside the knots are clamped to the ends."""

    x: np.ndarray  # (N,) increasing
    y: np.ndarray  # (N,) non-decreasing
    slopes: np.ndarray  # (N,) dy/dx at the knots

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray) -> MonotoneTable:
        import scipy.interpolate  # host-side; imported only when a table is built

        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        if np.any(np.diff(x) <= 0) or np.any(np.diff(y) < 0):
            raise ValueError("A monotone table needs increasing x and non-decreasing y.")
        return cls(x, y, scipy.interpolate.PchipInterpolator(x, y).derivative()(x))

    def host(self, value: np.ndarray) -> np.ndarray:
        """The interpolant in float64 on the host."""
        import scipy.interpolate  # host-side

        spline = scipy.interpolate.PchipInterpolator(self.x, self.y)
        return spline(np.clip(np.asarray(value, np.float64), self.x[0], self.x[-1]))

    def __call__(self, value: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        value = jnp.asarray(value)
        dtype = value.dtype if jnp.issubdtype(value.dtype, jnp.floating) else jnp.float32
        x, y, m = (jnp.asarray(a, dtype) for a in (self.x, self.y, self.slopes))
        v = jnp.clip(value.astype(dtype), x[0], x[-1])
        # compare_all: no loop (the default's while loop, nested in a sampler's scan, failed to
        # run on an H200 with jax 0.11.2); (*shape, N) comparisons, N up to about 20,000 knots.
        k = jnp.searchsorted(x, v, side="right", method="compare_all")
        k = jnp.clip(k - 1, 0, x.shape[0] - 2)
        h = x[k + 1] - x[k]
        s = (v - x[k]) / h
        h00, h10 = (1 + 2 * s) * (1 - s) ** 2, s * (1 - s) ** 2
        h01, h11 = s**2 * (3 - 2 * s), s**2 * (s - 1)
        out = h00 * y[k] + h10 * h * m[k] + h01 * y[k + 1] + h11 * h * m[k + 1]
        return jnp.clip(out, y[0], y[-1])


@functools.lru_cache(maxsize=8)
def _tables(vocab_size: int, points: int, nodes: int) -> tuple[MonotoneTable, MonotoneTable]:
    g = np.linspace(0.0, 1.0, points)
    forward = MonotoneTable.fit(g, argmax_probability(g, vocab_size, nodes))
    # The inverse on the knots alpha of a uniform grid and the values alpha(g) of the forward
    # table (so that both ends, where alpha or g crowds, are resolved), g by bisection of the
    # forward interpolant in float64; knots that float32 cannot tell apart are merged (keeping
    # the largest g, so that alpha = 1 maps to g = 1).
    alpha = np.union1d(np.linspace(0.0, 1.0, points), forward.y)
    lo, hi = np.zeros(alpha.shape), np.ones(alpha.shape)
    for _ in range(64):
        mid = 0.5 * (lo + hi)
        below = forward.host(mid) < alpha
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    inverse_g = np.maximum.accumulate(hi)
    inverse_g[0], inverse_g[-1] = 0.0, 1.0
    _, last = np.unique(alpha.astype(np.float32)[::-1], return_index=True)
    keep = np.sort(len(alpha) - 1 - last)
    inverse = MonotoneTable.fit(alpha[keep], inverse_g[keep])
    return forward, inverse


@dataclasses.dataclass(frozen=True)
class ArgmaxTime:
    """alpha(g) and its inverse for a vocabulary of `vocab_size` tokens (module docstring)."""

    vocab_size: int
    points: int = TABLE_POINTS
    nodes: int = QUADRATURE_NODES

    def __post_init__(self):
        if not (isinstance(self.vocab_size, (int, np.integer)) and self.vocab_size >= 2):
            raise ValueError(f"vocab_size must be an int >= 2, got {self.vocab_size!r}.")
        if self.points < 4 or self.nodes < 2:
            raise ValueError(
                f"ArgmaxTime needs >= 4 table points and >= 2 quadrature nodes, got "
                f"points={self.points}, nodes={self.nodes}."
            )

    @property
    def _tables(self) -> tuple[MonotoneTable, MonotoneTable]:
        return _tables(int(self.vocab_size), int(self.points), int(self.nodes))

    def g_to_alpha(self, g: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        """alpha(g), by the table of uniform g."""
        return self._tables[0](g)

    def alpha_to_g(self, alpha: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        """g = alpha^-1(alpha), by the table of uniform alpha."""
        return self._tables[1](alpha)

    def host_alpha_to_g(self, alpha: Float[np.ndarray, "N"]) -> Float[np.ndarray, "N"]:
        """g = alpha^-1(alpha) in float64 on the host (a sampler's static grid), with
        alpha^-1(0) = 0 and alpha^-1(1) = 1 exactly."""
        alpha = np.asarray(alpha, np.float64)
        g = self._tables[1].host(alpha)
        return np.where(alpha <= 0.0, 0.0, np.where(alpha >= 1.0, 1.0, g))


def one_hot_velocity(
    p_hat: Float[Array, "B L V"], x: Float[Array, "B L V"], g: Float[Array, "*B"]
) -> Float[Array, "B L V"]:
    """The marginal velocity (p_hat - x) / (1 - g) of posterior probabilities p_hat at x_g = x;
    g a scalar or one per sequence (B,)."""
    return (p_hat - x) / (1.0 - expand_time(jnp.asarray(g, x.dtype), x))


@dataclasses.dataclass(frozen=True)
class OneHotGaussianPath:
    """x_g = (1 - g) eps + g e_{x_1} per token, eps ~ N(0, I_V), timed by `ArgmaxTime`."""

    vocab_size: int
    time: ArgmaxTime

    @classmethod
    def build(
        cls, vocab_size: int, points: int = TABLE_POINTS, nodes: int = QUADRATURE_NODES
    ) -> OneHotGaussianPath:
        return cls(vocab_size, ArgmaxTime(vocab_size, points, nodes))

    def noise(self, key: jax.Array, shape: tuple[int, ...]) -> Float[Array, "*shape V"]:
        """eps of sequences of `shape` (e.g. (B, L)): (*shape, V) standard normal."""
        return jax.random.normal(key, (*shape, self.vocab_size))

    def sample(
        self, x_1: Int[Array, "B L"], g: Float[Array, "B"], eps: Float[Array, "B L V"]
    ) -> Float[Array, "B L V"]:
        """x_g = (1 - g) eps + g one_hot(x_1), one g per sequence."""
        check_tokens(x_1, self.vocab_size, "x_1")
        if eps.shape != (*x_1.shape, self.vocab_size):
            raise ValueError(
                f"eps must have shape {(*x_1.shape, self.vocab_size)} (the tokens' shape and the "
                f"vocabulary), got {eps.shape}."
            )
        g = expand_time(jnp.asarray(g, eps.dtype), eps)
        one_hot = jax.nn.one_hot(x_1, self.vocab_size, dtype=eps.dtype)
        return (1.0 - g) * eps + g * one_hot

    def velocity(
        self, p_hat: Float[Array, "B L V"], x: Float[Array, "B L V"], g: Float[Array, "*B"]
    ) -> Float[Array, "B L V"]:
        """The marginal velocity (p_hat - x) / (1 - g) of the posterior probabilities p_hat."""
        return one_hot_velocity(p_hat, x, g)
