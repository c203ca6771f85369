"""Guarantee regions for local explanations: the largest axis-aligned box around a point x in
which a local surrogate g agrees with the model f, with a statistical guarantee.

Havasi, Parbhoo & Doshi-Velez, 2024, "Guarantee Regions for Local Explanations". A box B
around x has purity rho when g agrees with f (|f - g| < eps, or the same class) on a fraction
>= rho of B under the uniform distribution. The procedure:

1. Purity test (their section 4.1). Draw n = ceil(ln(1 - c) / ln rho) uniform points in B
   (459 for c = rho = 0.99); B passes when g agrees with f at all of them. A box of purity
   < rho passes with probability < rho^n <= 1 - c.
2. Repeated tests. The i-th test of a run (i = 2, 3, ...) uses

       c_i = 1 - delta / (C i ln^2 i),   C = sum_{i >= 2} 1 / (i ln^2 i) = 2.1097428...,

   so that the chance that any of the tests passes an impure box is at most
   sum_i (1 - c_i) = delta: the returned box has purity >= rho with confidence 1 - delta.
   C is the sum of the series (partial sum to 10^7 plus its Euler-Maclaurin tail;
   `tests/test_guarantee_regions.py` recomputes it). The authors' code (dtak/anchor-box,
   `anchor_explanation.py`) divides by 1.9428735 instead, which is smaller than the sum, so
   its tests' failure probabilities add up to delta * 2.1097 / 1.9429 = 1.086 delta.
3. A failed test's disagreeing points become negatives. The next box is the largest box
   around x inside the starting region with no negative strictly inside it (the box expands
   again wherever no negative is known), and it is tested again, until a test passes.
4. High dimensions (their section 4.3): each dimension alone first (the others held at x),
   then groups merged pairwise, each merged search starting from the product of its parts'
   intervals, up to one search over all dimensions, whose passing test is the guarantee.

The largest box (step 3) is found by best-first branch and bound over log-volumes: a box that
holds a negative n branches into the boxes that cut it off, one per dimension j with
n_j != x_j (the lower side moved up to n_j when n_j < x_j, the upper side down to n_j
otherwise); a box's log-volume bounds those of all boxes below it, so the first box popped
with no negative inside is the largest. The authors' solver maximises the number of sampled
positive points inside the box and then expands it; the volume is the quantity their method
is meant to maximise, and here it is maximised exactly below `max_nodes` boxes. Past it (in
tens of dimensions, where the search rarely ends) the greedy box is kept: starting from the
box that just failed, the cut that removes the most negatives per unit of log-volume lost,
until none is inside. The box then shrinks after each failed test instead of re-expanding
into the unexplored corners, which in 64 dimensions is the difference between a search that
passes after a few hundred tests and one that does not end.

Model calls are batched: `surrogate_agreement` compiles f and g on fixed-size blocks of
points (padded), so repeated tests of any size reuse one compiled program on the accelerator.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

SERIES_CONSTANT = 2.1097428012368904
"""sum_{i >= 2} 1 / (i ln^2 i): the normaliser of the confidence schedule (module docstring)."""
_DEFAULT_MAX_TESTS = 1000


@dataclasses.dataclass(frozen=True)
class GuaranteeRegion:
    """A box [lower, upper] (d,) around x where the surrogate agrees with the model on a fraction
    >= rho with confidence 1 - delta (when `passed`); `tests` and `model_calls` count the purity
    tests and the points evaluated, over all searches."""

    lower: np.ndarray
    upper: np.ndarray
    passed: bool
    tests: int
    model_calls: int

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Whether each point (n, d) lies in the box."""
        return np.all((points >= self.lower) & (points <= self.upper), axis=-1)

    def log_volume(self) -> float:
        return float(np.sum(np.log(self.upper - self.lower)))


def test_size(rho: float, confidence: float) -> int:
    """n = ceil(ln(1 - confidence) / ln rho): the uniform points a purity test draws."""
    return math.ceil(math.log(1.0 - confidence) / math.log(rho))


def test_confidence(i: int, delta: float) -> float:
    """c_i = 1 - delta / (C i ln^2 i) of the i-th test (i >= 2) of a run."""
    return 1.0 - delta / (SERIES_CONSTANT * i * math.log(i) ** 2)


def surrogate_agreement(
    model: Callable,
    surrogate: Callable,
    *,
    tolerance: float | None = None,
    block: int = 512,
) -> Callable[[np.ndarray], np.ndarray]:
    """agree(points (n, d)) -> bool (n,): |f - g| < tolerance on every output (regression), or,
    with tolerance None, the same argmax class (classification). f and g each map (m, d) to
    (m,) or (m, K); they are compiled once on blocks of `block` points."""

    def outputs(fn, z):
        out = fn(z)
        return out[:, None] if out.ndim == 1 else out

    @jax.jit
    def agree_block(z):
        fz, gz = outputs(model, z), outputs(surrogate, z)
        if tolerance is None:
            return jnp.argmax(fz, axis=-1) == jnp.argmax(gz, axis=-1)
        return jnp.all(jnp.abs(fz - gz) < tolerance, axis=-1)

    if tolerance is not None and tolerance <= 0:
        raise ValueError(f"The agreement tolerance eps must be positive, got {tolerance}.")

    def agree(points: np.ndarray) -> np.ndarray:
        n = len(points)
        padded = np.zeros((-(-n // block) * block, points.shape[1]), np.float32)
        padded[:n] = points
        return np.concatenate([np.asarray(agree_block(padded[i:i + block]))
                               for i in range(0, len(padded), block)])[:n]

    return agree


def _greedy_box(x: np.ndarray, negatives: np.ndarray, l: np.ndarray,
                u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shrink [l, u] (containing x) until no negative is strictly inside: each step takes the
    cut, over dimensions, sides and the inside negatives' coordinates, that removes the most
    negatives per unit of log-volume lost."""
    l, u = l.copy(), u.copy()
    while len(points := negatives[np.all((negatives > l) & (negatives < u), axis=1)]):
        count = np.arange(1, len(points) + 1)[:, None]
        best_score, best_cut = -1.0, None
        for side in ("lower", "upper"):
            # Cutting the lower side up to v removes the inside negatives with n_j <= v < x_j
            # (the upper side: x_j < v <= n_j); sorted, the k-th candidate removes k of them.
            if side == "lower":
                cuts = np.sort(np.where(points < x, points, np.inf), axis=0)
                kept = (u - cuts) / (u - l)
            else:
                cuts = -np.sort(np.where(points > x, -points, np.inf), axis=0)
                kept = (cuts - l) / (u - l)
            with np.errstate(divide="ignore", invalid="ignore"):
                score = np.where(np.isfinite(cuts), count / -np.log(kept), -1.0)
            k, j = np.unravel_index(np.argmax(score), score.shape)
            if score[k, j] > best_score:
                best_score, best_cut = score[k, j], (side, j, cuts[k, j])
        side, j, value = best_cut
        (l if side == "lower" else u)[j] = value
    return l, u


def largest_empty_box(
    x: np.ndarray,
    negatives: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    *,
    max_nodes: int = 20_000,
    start: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The box [l, u] of largest volume with lower <= l <= x <= u <= upper and no negative
    (m, d) strictly inside (module docstring: branch and bound; past max_nodes the greedy box
    shrunk from `start`, a box inside [lower, upper] around x, by default [lower, upper])."""
    x, lower, upper = (np.asarray(a, np.float64) for a in (x, lower, upper))
    negatives = np.asarray(negatives, np.float64).reshape(-1, x.shape[0])
    if np.any(np.all(negatives == x, axis=1)):
        raise ValueError("The surrogate disagrees with the model at x itself: no box around x "
                         "can be pure.")

    def inside(l, u):
        return np.flatnonzero(np.all((negatives > l) & (negatives < u), axis=1))

    def children(l, u, n):
        for j in np.flatnonzero(n != x):
            cl, cu = l.copy(), u.copy()
            if n[j] < x[j]:
                cl[j] = n[j]
            else:
                cu[j] = n[j]
            yield cl, cu

    def log_volume(l, u):
        with np.errstate(divide="ignore"):
            return float(np.sum(np.log(u - l)))

    def blocker(l, u, hits):  # the negative that leaves the fewest / smallest cuts
        scale = np.maximum(u - l, 1e-300)
        closeness = np.max(np.abs(negatives[hits] - x) / scale, axis=1)
        return negatives[hits[np.argmin(closeness)]]

    start_l, start_u = (lower, upper) if start is None else (np.asarray(b, np.float64)
                                                             for b in start)
    best = _greedy_box(x, negatives, start_l, start_u)
    best_volume = log_volume(*best)
    queue = [(-log_volume(lower, upper), 0, lower, upper)]
    seen, counter = set(), 1
    while queue and counter < max_nodes:
        neg_volume, _, l, u = heapq.heappop(queue)
        if -neg_volume <= best_volume:
            break
        hits = inside(l, u)
        if not len(hits):
            return l, u
        for cl, cu in children(l, u, blocker(l, u, hits)):
            key = (cl.tobytes(), cu.tobytes())
            volume = log_volume(cl, cu)
            if key in seen or volume <= best_volume:
                continue
            seen.add(key)
            heapq.heappush(queue, (-volume, counter, cl, cu))
            counter += 1
    return best


def _uniform(key: jax.Array, l: np.ndarray, u: np.ndarray, n: int) -> np.ndarray:
    """n uniform points (n, d) in [l, u], drawn on the host from a generator seeded by key (one
    jax draw per test size and dimension would compile a program for each)."""
    seed = np.asarray(jax.random.key_data(key)).ravel()
    return np.random.default_rng(seed).uniform(l, u, (n, len(l)))


def _check_settings(x, lower, upper, rho, delta) -> None:
    if not 0.0 < rho < 1.0:
        raise ValueError(f"The purity rho must be in (0, 1), got {rho}.")
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta (1 - the confidence) must be in (0, 1), got {delta}.")
    if x.ndim != 1 or lower.shape != x.shape or upper.shape != x.shape:
        raise ValueError(
            f"x, lower and upper must be vectors (d,) of one size, got {x.shape}, {lower.shape} "
            f"and {upper.shape}: flatten the inputs and pass the domain's bounds per feature."
        )
    if np.any(lower >= upper) or np.any(x < lower) or np.any(x > upper):
        raise ValueError(
            "The starting box [lower, upper] must contain x and have positive width in every "
            "dimension: widen it (e.g. to the data's range) or explain a point inside it."
        )


def guarantee_region(
    agree: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    key: jax.Array,
    *,
    rho: float = 0.99,
    delta: float = 0.01,
    per_dimension: bool = True,
    max_tests: int = _DEFAULT_MAX_TESTS,
    max_nodes: int = 20_000,
) -> GuaranteeRegion:
    """The guarantee region of the surrogate at x inside [lower, upper] (module docstring).

    Args:
      agree: agree(points (n, d)) -> bool (n,), whether g agrees with f at each point (e.g.
        `surrogate_agreement(model, surrogate, tolerance=eps)`).
      x, lower, upper: the point and the starting box, flat (d,).
      key: the random key of the uniform test points.
      rho, delta: the purity and 1 - the confidence of the guarantee.
      per_dimension: search each dimension alone first, then merge (step 4); False searches
        all dimensions at once.
      max_tests: the tests allowed per search before giving up (`passed` False).
    """
    x = np.asarray(x, np.float64)
    lower, upper = np.asarray(lower, np.float64), np.asarray(upper, np.float64)
    _check_settings(x, lower, upper, rho, delta)
    if not bool(agree(x[None].astype(np.float32))[0]):
        raise ValueError("The surrogate disagrees with the model at x itself: no box around x "
                         "can be pure (check the surrogate, or the tolerance eps).")
    counts = {"tests": 0, "calls": 1, "search": 0}

    def search(dims: np.ndarray, lo: np.ndarray, hi: np.ndarray):
        """One run of tests over the dimensions `dims` (the others at x) from [lo, hi]."""
        search_key = jax.random.fold_in(key, counts["search"])
        counts["search"] += 1
        negatives = np.zeros((0, len(dims)))
        l, u = lo.copy(), hi.copy()
        for i in range(2, max_tests + 2):
            n = test_size(rho, test_confidence(i, delta))
            sub = _uniform(jax.random.fold_in(search_key, i), l, u, n)
            points = np.broadcast_to(x, (n, x.shape[0])).copy()
            points[:, dims] = sub
            ok = np.asarray(agree(points.astype(np.float32)), bool)
            counts["tests"] += 1
            counts["calls"] += n
            if ok.all():
                return l, u, True
            negatives = np.concatenate([negatives, sub[~ok]])
            l, u = largest_empty_box(x[dims], negatives, lo, hi, max_nodes=max_nodes,
                                     start=(l, u))
        return l, u, False

    d = x.shape[0]
    if per_dimension and d > 1:
        groups = []
        for j in range(d):
            l, u, _ = search(np.array([j]), lower[[j]], upper[[j]])
            groups.append((np.array([j]), l, u))
        while len(groups) > 1:
            merged = []
            for (d1, l1, u1), (d2, l2, u2) in zip(groups[0::2], groups[1::2]):
                dims = np.concatenate([d1, d2])
                l, u, passed = search(dims, np.concatenate([l1, l2]), np.concatenate([u1, u2]))
                merged.append((dims, l, u))
            if len(groups) % 2:
                merged.append(groups[-1])
            groups = merged
        dims, l, u = groups[0]
    else:
        dims = np.arange(d)
        l, u, passed = search(dims, lower, upper)
    box_l, box_u = np.empty(d), np.empty(d)
    box_l[dims], box_u[dims] = l, u
    return GuaranteeRegion(box_l, box_u, bool(passed), counts["tests"], counts["calls"])
