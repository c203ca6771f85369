"""The interface of a Riemannian manifold embedded in R^n, and the checks of its points.

Flow Matching on General Geometries (Chen & Lipman, 2024), section 2 and Flow Matching Guide
and Code (Lipman et al., 2024), section 5.1: a manifold M with the metric induced by its
embedding, <u, v>_g = u . v for tangent vectors u, v in T_x M. Everything flow matching needs is

    expmap(x, u)   exp_x(u): the point reached at time 1 along the geodesic from x with velocity u
    logmap(x, y)   log_x(y): the velocity of the shortest geodesic from x to y (exp_x(log_x(y)) = y)
    dist(x, y)     the geodesic distance, = ||log_x(y)||_g
    projx(x)       a point of the ambient space moved onto M (a no-op on M); its differential at
                   x in M is the orthogonal projection onto T_x M (the Riemannian divergence of
                   `flowjax.solvers.riemannian` relies on this)
    proju(x, u)    u projected onto the tangent space T_x M

and a base distribution (`random_base`, `base_log_prob`, the density with respect to the
Riemannian volume) for the source of a flow.

Conventions: a point is an array whose LAST axis holds the `ambient_dim` coordinates of the
embedding; every leading axis is a batch axis, so all methods are elementwise over them and
jit-, vmap- and grad-safe. `dim` is the manifold's own (intrinsic) dimension.
"""

from __future__ import annotations

import abc

import jax
import jax.numpy as jnp
import numpy as np

from flowjax._checks import check_float_dtype, concrete_value

DEFAULT_ATOL = 1e-4
"""How far (in ambient units) a point may lie off the manifold before it is refused (at least
four ulps of the point's dtype: float16 and bfloat16 points are rounded that coarsely)."""


def norm(u: jax.Array, keepdims: bool = False) -> jax.Array:
    """The Euclidean norm over the last axis, with a zero (not NaN) gradient at u = 0."""
    squared = jnp.sum(u * u, axis=-1, keepdims=keepdims)
    positive = squared > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)


class Manifold(abc.ABC):
    """A Riemannian manifold with the metric of its embedding in R^ambient_dim."""

    dim: int

    @property
    @abc.abstractmethod
    def ambient_dim(self) -> int:
        """The number of coordinates of a point (the size of its last axis)."""

    @abc.abstractmethod
    def expmap(self, x: jax.Array, u: jax.Array) -> jax.Array:
        """exp_x(u) for a point x and a tangent vector u in T_x M, both (..., ambient_dim)."""

    @abc.abstractmethod
    def logmap(self, x: jax.Array, y: jax.Array) -> jax.Array:
        """log_x(y) in T_x M, the initial velocity of the shortest geodesic from x to y."""

    @abc.abstractmethod
    def projx(self, x: jax.Array) -> jax.Array:
        """The point of M that `x` (..., ambient_dim) represents."""

    @abc.abstractmethod
    def proju(self, x: jax.Array, u: jax.Array) -> jax.Array:
        """The orthogonal projection of u (..., ambient_dim) onto T_x M."""

    @abc.abstractmethod
    def dist(self, x: jax.Array, y: jax.Array) -> jax.Array:
        """The geodesic distance, shape (...)."""

    @abc.abstractmethod
    def distance_to_manifold(self, x: jax.Array) -> jax.Array:
        """How far each point x (..., ambient_dim) lies from M in the ambient space, shape (...)."""

    @abc.abstractmethod
    def random_base(self, key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        """Samples of the base distribution, of shape (*shape, ambient_dim)."""

    @abc.abstractmethod
    def base_log_prob(self, x: jax.Array) -> jax.Array:
        """log-density of the base distribution w.r.t. the Riemannian volume, shape (...)."""

    def check_coordinates(self, **arrays: jax.Array) -> None:
        """Raises a ValueError, naming the argument, unless every array holds `ambient_dim`
        coordinates on its last axis and their batch axes broadcast together (trace time)."""
        shapes = {name: tuple(jnp.shape(a)) for name, a in arrays.items()}
        for name, shape in shapes.items():
            if len(shape) == 0 or shape[-1] != self.ambient_dim:
                raise ValueError(
                    f"{name} must have shape (..., {self.ambient_dim}) for {self} (the last axis "
                    f"holds the {self.ambient_dim} ambient coordinates); got {name}.shape={shape}."
                )
        try:
            np.broadcast_shapes(*(shape[:-1] for shape in shapes.values()))
        except ValueError:
            raise ValueError(
                f"The batch axes of {' and '.join(shapes)} must broadcast together; got shapes "
                f"{shapes}."
            ) from None

    def base_args(self, shape: tuple[int, ...], dtype) -> tuple[tuple[int, ...], np.dtype]:
        """The batch `shape` and floating `dtype` of `random_base`, checked."""
        if not isinstance(shape, (tuple, list)) or not all(
            isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 0 for n in shape
        ):
            raise TypeError(f"shape must be a tuple of ints >= 0 (e.g. (batch,)), got {shape!r}.")
        return tuple(int(n) for n in shape), check_float_dtype(dtype)


def check_points(
    manifold: Manifold, x: jax.Array, name: str = "x", atol: float = DEFAULT_ATOL
) -> None:
    """Raises a ValueError if `x` is not an array of points of `manifold`.

    The last axis must hold `manifold.ambient_dim` coordinates (checked at trace time). Values
    are checked when they are concrete (outside `jax.jit`, or constants): every point must be
    finite and lie within `atol` (or four ulps of its dtype, if more) of the manifold. Under
    `jit` the values are not checked.
    """
    if x.ndim == 0 or x.shape[-1] != manifold.ambient_dim:
        raise ValueError(
            f"{name} must have shape (..., {manifold.ambient_dim}) for {manifold} (the last "
            f"axis holds the {manifold.ambient_dim} ambient coordinates); got {name}.shape="
            f"{x.shape}."
        )
    value = concrete_value(x)
    if value is None or value.size == 0:
        return
    finite = np.all(np.isfinite(value), axis=-1)
    if not np.all(finite):
        index = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise ValueError(f"{name} has non-finite coordinates at index {index}: {value[index]}.")
    off = np.asarray(manifold.distance_to_manifold(jnp.asarray(value)))
    # A low-precision point cannot lie closer than its own rounding: a few ulps of its dtype.
    if jnp.issubdtype(value.dtype, jnp.floating):
        atol = max(atol, 4.0 * float(jnp.finfo(value.dtype).eps))
    if np.max(off) > atol:
        index = np.unravel_index(int(np.argmax(off)), off.shape)
        raise ValueError(
            f"{name} has points off {manifold}: the point at index {tuple(map(int, index))}, "
            f"{value[index]}, lies {off[index]:.3g} from it (tolerance {atol:g}). Map points "
            f"onto the manifold first with `manifold.projx` (for the sphere: divide by the norm)."
        )


def check_dimension(manifold_name: str, dim: object) -> None:
    """Raises a ValueError unless `dim` (a manifold's intrinsic dimension) is an int >= 1."""
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"{manifold_name} needs an integer dimension dim >= 1, got {dim!r}.")
