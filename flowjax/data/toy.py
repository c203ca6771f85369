"""Toy 2D target distributions for flow matching demos, with their exact supports and densities.

These are the 2D benchmarks used throughout the continuous-normalising-flow and flow-matching
literature (FFJORD, Grathwohl et al., 2019, section 5.1; Flow Matching for Generative Modeling,
Lipman et al., 2023; the 2D example of the Flow Matching Guide and Code, Lipman et al., 2024).
Each sampler here is defined below from scratch; the definitions are:

checkerboard
    A 4 x 4 board of squares of side 2 covering [-4, 4)^2. The support is the 8 squares
    whose board coordinates have an even sum, i.e. the set
    {(x, y) in [-4, 4)^2 : floor(x / 2) + floor(y / 2) is even}
    (the bottom-left square [-4, -2)^2 is in the support). Uniform on the support: the area
    is 8 * 4 = 32, so the density is 1/32 there, log p = -log 32 = -3.4657, and the true
    negative log-likelihood (the differential entropy) is log 32 = 3.466 nats. Each of the
    32 unit cells [i, i+1) x [j, j+1) inside the support carries mass 1/32.
    (The Flow Matching Guide's notebook draws the same pattern on [-2, 2)^2 and divides by
    0.45, which gives squares of side 2.22, an area of 39.5 and an entropy of 3.676 nats;
    this module uses the [-4, 4)^2 board above, whose numbers are exact.)
8gaussians
    An equal-weight mixture of 8 isotropic Gaussians with means 2*sqrt(2) * (cos(k pi/4),
    sin(k pi/4)), k = 0..7, and standard deviation sqrt(2)/4 per coordinate. Its log
    density is available in closed form (`log_density`).
moons
    Two interleaving half circles of radius 1: the upper (cos a, sin a) and the lower
    (1 - cos a, 1/2 - sin a) with a ~ U[0, pi), chosen with probability 1/2 each, plus
    N(0, 0.1^2) noise per coordinate, then centred and doubled:
    x -> 2 (x - (1/2, 1/4)). The result lies roughly in [-3, 3] x [-1.5, 1.5].
spirals
    Two arms, r(a) = a / 3 for a = 3 pi sqrt(u), u ~ U[0, 1): the point
    s * (a/3) * (-cos a, sin a) with arm sign s = +-1 with probability 1/2, plus N(0, 0.1^2)
    noise per coordinate. Radius up to pi.
mixture1d
    A 1-D Gaussian mixture (points of shape (n, 1)): weights MIXTURE_1D_WEIGHTS, means
    MIXTURE_1D_MEANS, standard deviations MIXTURE_1D_STDS (the generator-matching toy, whose
    CondOT posteriors are exact; `flowjax.paths.jump`).
rings
    Four concentric circles of radii 1, 2, 3, 4 (the point mass on each ring proportional to
    its radius, i.e. uniform per unit of arc length), plus N(0, 0.08^2) noise per coordinate.

The discrete toy discrete_checkerboard (`flowjax.data.discrete_toy`) is the checkerboard
quantised to 128 bins per coordinate: int32 tokens (n, 2), uniform on 8192 cells.

Two further toys live on manifolds (`flowjax.data.manifold_toy`): torus_gaussians, a
wrapped-Gaussian mixture on the flat torus T^2 (points (n, 2) in [0, 2 pi)^2), and sphere_vmf,
a von Mises-Fisher mixture on S^2 (points (n, 3)), both with closed-form densities.

Samplers are vectorised NumPy functions of a `numpy.random.Generator`, returning float32
arrays of shape (n, *toy_event_shape(name)). `in_support` and `log_density` are pure
`jax.numpy` functions (so they run on NumPy inputs, JAX arrays and inside `jax.jit`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.scipy.special import logsumexp

from flowjax._checks import check_count
from flowjax.data.discrete_toy import DISCRETE_TOYS
from flowjax.data.manifold_toy import MANIFOLD_TOYS
from flowjax.manifolds import Manifold

TOY_DISTRIBUTIONS: tuple[str, ...] = (
    "checkerboard",
    "8gaussians",
    "moons",
    "spirals",
    "rings",
    "mixture1d",
    *MANIFOLD_TOYS,
    *DISCRETE_TOYS,
)
"""Names accepted by `sample_toy` and by `build_dataset` with `source="toy"`."""

CHECKERBOARD_LOG_DENSITY: float = -math.log(32.0)
"""log p(x) of the checkerboard inside its support: -log 32 (the support has area 32)."""

CHECKERBOARD_NLL: float = math.log(32.0)
"""The checkerboard's true negative log-likelihood (its entropy), log 32 = 3.466 nats."""

_GAUSSIANS_RADIUS = 2.0 * math.sqrt(2.0)
_GAUSSIANS_STD = math.sqrt(2.0) / 4.0
_MOONS_NOISE = 0.1
_SPIRALS_NOISE = 0.1
_RINGS_RADII = (1.0, 2.0, 3.0, 4.0)
_RINGS_NOISE = 0.08
MIXTURE_1D_WEIGHTS = (0.3, 0.5, 0.2)
MIXTURE_1D_MEANS = (-2.5, 0.5, 3.0)
MIXTURE_1D_STDS = (0.5, 0.4, 0.6)


def check_toy_name(name: str) -> None:
    """Raises a ValueError naming the accepted toy distributions if `name` is not one."""
    if name not in TOY_DISTRIBUTIONS:
        raise ValueError(f"Unknown toy distribution {name!r}; expected one of {TOY_DISTRIBUTIONS}.")


def _checkerboard(rng: np.random.Generator, n: int) -> np.ndarray:
    # Board coordinates (col, row) in {0..3}^2 with col + row even: 8 equally likely squares.
    col = rng.integers(0, 4, size=n)
    row = 2 * rng.integers(0, 2, size=n) + (col % 2)
    offset = rng.random((n, 2))
    cell = np.stack([col, row], axis=1)
    return -4.0 + 2.0 * (cell + offset)


def _gaussians8(rng: np.random.Generator, n: int) -> np.ndarray:
    angle = rng.integers(0, 8, size=n) * (math.pi / 4.0)
    means = _GAUSSIANS_RADIUS * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return means + _GAUSSIANS_STD * rng.standard_normal((n, 2))


def _moons(rng: np.random.Generator, n: int) -> np.ndarray:
    a = math.pi * rng.random(n)
    lower = rng.random(n) < 0.5
    x = np.where(lower, 1.0 - np.cos(a), np.cos(a))
    y = np.where(lower, 0.5 - np.sin(a), np.sin(a))
    points = np.stack([x, y], axis=1) + _MOONS_NOISE * rng.standard_normal((n, 2))
    return 2.0 * (points - np.array([0.5, 0.25]))


def _spirals(rng: np.random.Generator, n: int) -> np.ndarray:
    a = 3.0 * math.pi * np.sqrt(rng.random(n))
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    points = (sign * a / 3.0)[:, None] * np.stack([-np.cos(a), np.sin(a)], axis=1)
    return points + _SPIRALS_NOISE * rng.standard_normal((n, 2))


def _rings(rng: np.random.Generator, n: int) -> np.ndarray:
    radii = np.asarray(_RINGS_RADII)
    ring = rng.choice(len(radii), size=n, p=radii / radii.sum())
    a = 2.0 * math.pi * rng.random(n)
    points = radii[ring][:, None] * np.stack([np.cos(a), np.sin(a)], axis=1)
    return points + _RINGS_NOISE * rng.standard_normal((n, 2))


def _mixture1d(rng: np.random.Generator, n: int) -> np.ndarray:
    comp = rng.choice(len(MIXTURE_1D_WEIGHTS), size=n, p=MIXTURE_1D_WEIGHTS)
    noise = rng.standard_normal(n)
    return (np.asarray(MIXTURE_1D_MEANS)[comp] + np.asarray(MIXTURE_1D_STDS)[comp] * noise)[:, None]


_SAMPLERS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "checkerboard": _checkerboard,
    "8gaussians": _gaussians8,
    "moons": _moons,
    "spirals": _spirals,
    "rings": _rings,
    "mixture1d": _mixture1d,
    **{name: toy.sample for name, toy in MANIFOLD_TOYS.items()},
}
_SAMPLERS.update(
    {
        name: lambda rng, n, toy=toy: toy.quantize(_SAMPLERS[toy.continuous](rng, n))
        for name, toy in DISCRETE_TOYS.items()
    }
)


def sample_toy(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Draws `n` points from the toy distribution `name`.

    Args:
      name: one of `TOY_DISTRIBUTIONS`.
      n: number of points.
      rng: the NumPy generator to draw from (consumed; the result is a function of its state).

    Returns:
      float32 array of shape (n, *toy_event_shape(name)); int32 tokens for the discrete toys.
    """
    check_toy_name(name)
    n = check_count(n, "n")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator (numpy.random.default_rng(seed)), got "
            f"{type(rng).__name__}."
        )
    return _SAMPLERS[name](rng, n).astype(np.int32 if name in DISCRETE_TOYS else np.float32)


def toy_event_shape(name: str) -> tuple[int, ...]:
    """The shape of one point of toy `name`: (2,), (3,) for the sphere, (1,) for mixture1d."""
    check_toy_name(name)
    if name == "mixture1d":
        return (1,)
    return (MANIFOLD_TOYS[name].manifold.ambient_dim,) if name in MANIFOLD_TOYS else (2,)


def toy_manifold(name: str) -> Manifold | None:
    """The manifold toy `name` lives on, or None for the toys in the plane R^2."""
    check_toy_name(name)
    return MANIFOLD_TOYS[name].manifold if name in MANIFOLD_TOYS else None


def toy_vocab_size(name: str) -> int | None:
    """The number of token values per coordinate of a discrete toy; None for the others."""
    check_toy_name(name)
    return DISCRETE_TOYS[name].num_bins if name in DISCRETE_TOYS else None


def toy_batch(name: str, batch_size: int, *, seed: int, index: int) -> np.ndarray:
    """Global batch number `index` of the toy stream with `seed`: a pure function of its args.

    Drawn from `numpy.random.default_rng([seed, index])`, so any batch can be regenerated
    without the ones before it (this is what makes the toy pipeline resumable and independent
    of how many processes share it).
    """
    seed, index = check_count(seed, "seed"), check_count(index, "index")
    return sample_toy(name, batch_size, np.random.default_rng([seed, index]))


def _as_points(x: Array | np.ndarray, size: int = 2) -> Array:
    x = jnp.asarray(x)
    if x.ndim < 1 or x.shape[-1] != size:
        raise ValueError(f"Expected points of shape (..., {size}), got shape {x.shape}.")
    return x


@jax.jit
def _checkerboard_support(x: Array) -> Array:
    inside = jnp.all((x >= -4.0) & (x < 4.0), axis=-1)
    cell = jnp.floor(x / 2.0).astype(jnp.int32)
    even = (cell[..., 0] + cell[..., 1]) % 2 == 0
    return inside & even


@jax.jit
def _checkerboard_log_density(x: Array) -> Array:
    inside = _checkerboard_support(x)
    return jnp.where(inside, CHECKERBOARD_LOG_DENSITY, -jnp.inf).astype(x.dtype)


@jax.jit
def _gaussians8_log_density(x: Array) -> Array:
    angle = jnp.arange(8) * (math.pi / 4.0)
    means = _GAUSSIANS_RADIUS * jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=1)
    sq = jnp.sum((x[..., None, :] - means) ** 2, axis=-1)
    var = _GAUSSIANS_STD**2
    log_comp = -sq / (2.0 * var) - math.log(2.0 * math.pi * var) - math.log(8.0)
    return logsumexp(log_comp, axis=-1).astype(x.dtype)


def in_support(name: str, x: Array | np.ndarray) -> Array:
    """Whether each point of `x` (shape (..., 2)) lies in the support of toy `name`.

    Only the checkerboard has a bounded support (see the module docstring for its exact
    definition); for the discrete checkerboard, a token pair is in the support when its cell is
    (tokens (..., 2)). Asking for another distribution raises a ValueError.

    Returns:
      bool array of shape x.shape[:-1].
    """
    check_toy_name(name)
    if name in DISCRETE_TOYS:
        toy = DISCRETE_TOYS[name]
        return in_support(toy.continuous, toy.centres(_as_points(x)))
    if name != "checkerboard":
        raise ValueError(
            f"in_support is defined for 'checkerboard' only; {name!r} has unbounded support."
        )
    return _checkerboard_support(_as_points(x))


def log_density(name: str, x: Array | np.ndarray) -> Array:
    """Exact log density of toy `name` at each point of `x` (shape (..., *toy_event_shape)).

    checkerboard: -log 32 inside the support, -inf outside. 8gaussians, torus_gaussians,
    sphere_vmf: the mixture's log density (on a manifold, w.r.t. its Riemannian volume). The
    other toys (noisy curves) have no closed form and raise a ValueError. For the discrete
    checkerboard, the log probability mass of tokens (..., 2): -log 8192 on the support.

    Returns:
      float array of shape x.shape[:-1].
    """
    if name in DISCRETE_TOYS:
        toy = DISCRETE_TOYS[name]
        inside = in_support(name, x)
        return jnp.where(inside, toy.log_pmf_in_support, -jnp.inf).astype(jnp.float32)
    x = _as_points(x, toy_event_shape(name)[-1])
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    if name in MANIFOLD_TOYS:
        return MANIFOLD_TOYS[name].log_density(x)
    if name == "checkerboard":
        return _checkerboard_log_density(x)
    if name == "8gaussians":
        return _gaussians8_log_density(x)
    raise ValueError(
        f"log_density has no closed form for {name!r}; available for 'checkerboard', "
        f"'8gaussians' and {tuple(MANIFOLD_TOYS)}."
    )
