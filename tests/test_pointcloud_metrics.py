"""Point-cloud generation metrics (PointFlow / SetVAE protocol): Chamfer and Earth Mover's
distances against brute-force references, MMD / COV / 1-NNA on collections with known answers,
and the same distance matrices with and without a device mesh."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from jax.sharding import AxisType, Mesh
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from flowjax.metrics import pointcloud
from flowjax.parallel import MESH_AXES

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def brute_force_chamfer(x: np.ndarray, y: np.ndarray) -> float:
    """Squared Chamfer distance between two sets, one point at a time, in float64."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    x_to_y = [min(np.sum((p - q) ** 2) for q in y) for p in x]
    y_to_x = [min(np.sum((p - q) ** 2) for p in x) for q in y]
    return float(np.mean(x_to_y) + np.mean(y_to_x))


def scipy_emd(x: np.ndarray, y: np.ndarray) -> float:
    cost = cdist(np.asarray(x, np.float64), np.asarray(y, np.float64))
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


def spheres(rng: np.random.Generator, count: int, points: int, dim: int = 3) -> np.ndarray:
    """`count` sets of `points` uniform points on spheres of radius U(0.5, 1.5) about 0."""
    v = rng.normal(size=(count, points, dim))
    v /= np.linalg.norm(v, axis=-1, keepdims=True)
    return v * rng.uniform(0.5, 1.5, (count, 1, 1))


def one_device_mesh() -> Mesh:
    devices = np.asarray(jax.devices()[:1]).reshape(1, 1, 1)
    return Mesh(devices, MESH_AXES, axis_types=(AxisType.Auto,) * 3)


# ------------------------------------------------------------------------------ Chamfer


def test_chamfer_matches_brute_force():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(3, 16, 3)), rng.normal(size=(3, 24, 3))
    got = np.asarray(pointcloud.chamfer_distance(x, y))
    expected = [brute_force_chamfer(a, b) for a, b in zip(x, y, strict=True)]
    assert got.shape == (3,)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # Symmetric, bit for bit (the two means are added in the other order), and 0 on itself.
    np.testing.assert_array_equal(pointcloud.chamfer_distance(y, x), got)
    np.testing.assert_array_equal(pointcloud.chamfer_distance(x, x), np.zeros(3))


def test_chamfer_with_masks_equals_unpadded_sets():
    rng = np.random.default_rng(1)
    x_sizes, y_sizes = [16, 9, 3], [20, 24, 1]
    x = rng.normal(size=(3, 16, 3))
    y = rng.normal(size=(3, 24, 3))
    x_mask = np.arange(16)[None] < np.array(x_sizes)[:, None]
    y_mask = np.arange(24)[None] < np.array(y_sizes)[:, None]
    # Padding far away: counted, it would dominate both the minima and the means.
    x = np.where(x_mask[..., None], x, 100.0)
    y = np.where(y_mask[..., None], y, -100.0)
    expected = [brute_force_chamfer(x[b, :n], y[b, :m])
                for b, (n, m) in enumerate(zip(x_sizes, y_sizes, strict=True))]
    got = pointcloud.chamfer_distance(x, y, x_mask, y_mask)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    jitted = jax.jit(pointcloud.chamfer_distance)(x, y, x_mask, y_mask)
    np.testing.assert_allclose(jitted, expected, rtol=1e-5)
    # One mask alone: the other sets are whole.
    whole_x = rng.normal(size=(3, 16, 3))
    expected = [brute_force_chamfer(whole_x[b], y[b, :m]) for b, m in enumerate(y_sizes)]
    np.testing.assert_allclose(pointcloud.chamfer_distance(whole_x, y, y_mask=y_mask),
                               expected, rtol=1e-5)


# ------------------------------------------------------------------------------ EMD


def test_emd_matches_exhaustive_and_scipy_matching():
    rng = np.random.default_rng(2)
    # 5 points: every one of the 120 matchings, no assignment solver involved.
    x, y = rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 5, 3))
    exhaustive = [
        min(np.mean(np.linalg.norm(a - b[list(p)], axis=-1))
            for p in itertools.permutations(range(5)))
        for a, b in zip(x, y, strict=True)
    ]
    np.testing.assert_allclose(pointcloud.earth_movers_distance(x, y), exhaustive, rtol=1e-6)
    # 32 points against scipy on float64 costs from cdist.
    x, y = rng.normal(size=(3, 32, 2)), rng.uniform(-1, 1, size=(3, 32, 2))
    got = pointcloud.earth_movers_distance(x, y)
    assert got.shape == (3,) and got.dtype == np.float64
    np.testing.assert_allclose(got, [scipy_emd(a, b) for a, b in zip(x, y, strict=True)],
                               rtol=1e-6)


def test_emd_of_a_permuted_set_is_zero_and_bounds_hold():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 24, 3))
    permuted = np.stack([a[rng.permutation(24)] for a in x])
    np.testing.assert_array_equal(pointcloud.earth_movers_distance(x, permuted), np.zeros(4))
    y = rng.normal(size=(4, 24, 3)) + 0.5
    emd = pointcloud.earth_movers_distance(x, y)
    for b in range(4):
        distances = cdist(x[b], y[b])
        # Each point's partner is at least as far as its nearest neighbour in the other set.
        lower = max(distances.min(axis=1).mean(), distances.min(axis=0).mean())
        # The identity matching is one matching; |mean x - mean y| bounds every matching below.
        assert lower - 1e-6 <= emd[b] <= np.diag(distances).mean() + 1e-6
        assert emd[b] >= np.linalg.norm(x[b].mean(0) - y[b].mean(0)) - 1e-6
        assert emd[b] > 0.1


# ------------------------------------------------------------------------------ matrices


def test_pairwise_distances_match_pairwise_calls():
    """Blocks that do not divide the collections (5 samples, 7 references, blocks of 3 and 2)
    give the distances of the sets paired one by one."""
    rng = np.random.default_rng(4)
    samples, references = rng.normal(size=(5, 16, 3)), rng.normal(size=(7, 16, 3))
    s, r = np.repeat(samples, 7, axis=0), np.tile(references, (5, 1, 1))
    chamfer = pointcloud.pairwise_distances(samples, references, "chamfer", 3,
                                            reference_batch_size=2)
    assert chamfer.shape == (5, 7) and chamfer.dtype == np.float64
    np.testing.assert_allclose(chamfer.ravel(), pointcloud.chamfer_distance(s, r), rtol=1e-6)
    emd = pointcloud.pairwise_distances(samples, references, "emd", 3, reference_batch_size=2)
    np.testing.assert_allclose(emd.ravel(), pointcloud.earth_movers_distance(s, r), rtol=1e-6)
    # Chamfer between sets of different sizes.
    more_points = rng.normal(size=(7, 20, 3))
    got = pointcloud.pairwise_distances(samples, more_points, "chamfer", 4)
    np.testing.assert_allclose(
        got, [[brute_force_chamfer(a, b) for b in more_points] for a in samples], rtol=1e-5)


def test_mesh_gives_the_same_matrix_as_no_mesh():
    rng = np.random.default_rng(5)
    samples, references = rng.normal(size=(6, 16, 3)), rng.normal(size=(5, 16, 3))
    mesh = one_device_mesh()
    for distance in pointcloud.DISTANCES:
        plain = pointcloud.pairwise_distances(samples, references, distance, 4)
        sharded = pointcloud.pairwise_distances(samples, references, distance, 4, mesh=mesh)
        np.testing.assert_array_equal(sharded, plain, err_msg=distance)


def test_two_device_mesh_gives_the_same_matrix_as_no_mesh():
    """In a process with 2 virtual CPU devices, on a ("data", "fsdp", "tensor") = (2, 1, 1) and a
    (1, 2, 1) mesh: 5 samples in blocks of 3 (rounded up to 4, the last block padded)."""
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} "
                         "--xla_force_host_platform_device_count=2".strip())
    result = subprocess.run([sys.executable, __file__], check=False, env=env, cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "devices 2, identical" in result.stdout


def two_device_worker() -> None:
    assert jax.device_count() == 2, jax.devices()
    rng = np.random.default_rng(6)
    samples, references = rng.normal(size=(5, 16, 3)), rng.normal(size=(4, 16, 3))
    for shape in ((2, 1, 1), (1, 2, 1)):
        mesh = jax.make_mesh(shape, MESH_AXES, axis_types=(AxisType.Auto,) * 3)
        for distance in pointcloud.DISTANCES:
            plain = pointcloud.pairwise_distances(samples, references, distance, 3)
            sharded = pointcloud.pairwise_distances(samples, references, distance, 3, mesh=mesh)
            np.testing.assert_array_equal(sharded, plain, err_msg=f"{distance} {shape}")
    print(f"devices {jax.device_count()}, identical")


# ------------------------------------------------------------------------------ MMD, COV, 1-NNA


def reference_metrics(d_ss, d_sr, d_rr) -> dict[str, float]:
    """MMD, COV and 1-NNA set by set, from the definitions (PointFlow's `lgan_mmd_cov` and `knn`
    with k = 1; the union ordered references first, ties to the first in that order)."""
    num_samples, num_references = d_sr.shape
    mmd = np.mean([min(d_sr[i, j] for i in range(num_samples)) for j in range(num_references)])
    matched = {min(range(num_references), key=lambda j: (d_sr[i, j], j))
               for i in range(num_samples)}
    union = [("ref", j) for j in range(num_references)] + [("smp", i) for i in range(num_samples)]

    def distance(a, b):
        (ka, ia), (kb, ib) = a, b
        if ka == kb == "ref":
            return d_rr[ia, ib]
        if ka == kb == "smp":
            return d_ss[ia, ib]
        return d_sr[ia, ib] if ka == "smp" else d_sr[ib, ia]

    correct = 0
    for z in union:
        others = [w for w in union if w != z]
        nearest = min(others, key=lambda w: (distance(w, z), union.index(w)))
        correct += nearest[0] == z[0]
    return {"mmd": mmd, "cov": len(matched) / num_references, "1nna": correct / len(union)}


def test_metrics_equal_their_definitions_on_random_matrices():
    rng = np.random.default_rng(7)
    for num_samples, num_references in ((6, 6), (4, 7), (1, 1)):
        points = rng.normal(size=(num_samples + num_references, 2))
        d = cdist(points, points)
        d_ss = d[:num_samples, :num_samples]
        d_sr = d[:num_samples, num_samples:]
        d_rr = d[num_samples:, num_samples:]
        got = pointcloud.metrics_from_distances(d_ss, d_sr, d_rr)
        expected = reference_metrics(d_ss, d_sr, d_rr)
        assert got.keys() == expected.keys()
        for name in got:
            np.testing.assert_allclose(got[name], expected[name], rtol=1e-12, err_msg=name)


def test_ties_go_to_the_first_reference():
    # Sample 0 is equally far (1) from references 0 and 1 and from sample 1.
    d_sr = np.array([[1.0, 1.0], [3.0, 3.0]])
    d_ss = np.array([[0.0, 1.0], [1.0, 0.0]])
    d_rr = np.array([[0.0, 5.0], [5.0, 0.0]])
    assert pointcloud.coverage(d_sr) == 0.5  # both samples matched to reference 0
    # Neighbours: ref 0 -> sample 0 (1), ref 1 -> sample 0 (1), sample 0 -> ref 0 (tie with
    # ref 1 and sample 1), sample 1 -> sample 0 (1): only sample 1 is classified correctly.
    assert pointcloud.one_nn_accuracy(d_ss, d_sr, d_rr) == 0.25
    assert reference_metrics(d_ss, d_sr, d_rr)["1nna"] == 0.25


def test_identical_collections_score_mmd_0_cov_1_and_1nna_0():
    """Each set's nearest neighbour, itself left out, is its twin in the other collection, of
    the other class: the classifier is always wrong (PointFlow's knn gives 0, not 0.5)."""
    sets = spheres(np.random.default_rng(8), 12, 16)
    metrics = pointcloud.point_cloud_metrics(sets, sets, batch_size=8)
    assert metrics == {"mmd_cd": 0.0, "cov_cd": 1.0, "1nna_cd": 0.0,
                       "mmd_emd": 0.0, "cov_emd": 1.0, "1nna_emd": 0.0}


def test_two_draws_of_one_family_score_1nna_near_one_half():
    """32 + 32 sets of 32 points on spheres of random radii. Under equal distributions the
    expected 1-NNA is 31/63 ~ 0.49, with a standard deviation near 0.07 at this size (20 seeds
    ranged over 0.37..0.63 for both distances): the test allows 0.5 +- 0.2."""
    rng = np.random.default_rng(9)
    samples, references = spheres(rng, 32, 32), spheres(rng, 32, 32)
    metrics = pointcloud.point_cloud_metrics(samples, references, batch_size=16)
    for distance in ("cd", "emd"):
        assert abs(metrics[f"1nna_{distance}"] - 0.5) <= 0.2, metrics
        assert metrics[f"cov_{distance}"] >= 0.4, metrics
    # A reference's closest sample is a sphere of nearly its radius: the CD is then mostly the
    # sampling term, about 2 x r^2 / 8 for 32 random points on each sphere (mean squared
    # nearest-neighbour distance 1 / (pi x density) per direction).
    assert 0.1 < metrics["mmd_cd"] < 0.4


def test_circles_against_filled_squares_score_1nna_1():
    """2-D sets of 64 points: circles against filled squares (sizes U(0.8, 1.2)). Every set's
    nearest neighbour is of its own family, for both distances (20 seeds: always 1.0)."""
    rng = np.random.default_rng(10)
    angle = rng.uniform(0, 2 * np.pi, (32, 64))
    circles = np.stack([np.cos(angle), np.sin(angle)], -1) * rng.uniform(0.8, 1.2, (32, 1, 1))
    squares = rng.uniform(-1, 1, (32, 64, 2)) * rng.uniform(0.8, 1.2, (32, 1, 1))
    metrics = pointcloud.point_cloud_metrics(circles, squares, batch_size=16)
    assert metrics["1nna_cd"] == 1.0 and metrics["1nna_emd"] == 1.0, metrics
    chamfer_only = pointcloud.point_cloud_metrics(circles, squares, "chamfer", batch_size=16)
    assert chamfer_only == {k: v for k, v in metrics.items() if k.endswith("_cd")}


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: pointcloud.chamfer_distance(np.zeros((4, 3)), np.zeros((4, 3))),
         r"x \(B, N, D\) and y \(B, M, D\)"),
        (lambda: pointcloud.chamfer_distance(np.zeros((2, 4, 3)), np.zeros((2, 4, 2))),
         "same batch size B and point dimension D"),
        (lambda: pointcloud.chamfer_distance(np.zeros((2, 4, 3)), np.zeros((3, 4, 3))),
         "same batch size B"),
        (lambda: pointcloud.chamfer_distance(np.zeros((2, 4, 3)), np.zeros((2, 5, 3)),
                                             x_mask=np.ones((2, 5), bool)),
         r"x_mask must be a bool array of shape \(2, 4\)"),
        (lambda: pointcloud.chamfer_distance(np.zeros((2, 4, 3)), np.zeros((2, 4, 3)),
                                             y_mask=np.ones((2, 4))),
         "y_mask must be a bool array"),
        (lambda: pointcloud.chamfer_distance(np.zeros((2, 4, 3)), np.zeros((2, 4, 3)),
                                             y_mask=np.array([[True] * 4, [False] * 4])),
         r"no valid point in the sets \[1\]"),
        (lambda: pointcloud.chamfer_distance(np.zeros((2, 0, 3)), np.zeros((2, 4, 3))),
         "at least one point"),
        (lambda: pointcloud.earth_movers_distance(np.zeros((2, 4, 3)), np.zeros((2, 5, 3))),
         "same number of points, got 4 and 5"),
        (lambda: pointcloud.pairwise_distances(np.zeros((2, 4, 3)), np.zeros((2, 5, 3)),
                                               "emd", 2),
         "same number of points"),
        (lambda: pointcloud.pairwise_distances(np.zeros((2, 4, 3)), np.zeros((2, 4, 3)),
                                               "l2", 2),
         "distance must be one of"),
        (lambda: pointcloud.pairwise_distances(np.zeros((2, 4, 3)), np.zeros((2, 4, 3)),
                                               "chamfer", 0),
         "batch_size must be an integer >= 1"),
        (lambda: pointcloud.pairwise_distances(np.zeros((2, 4, 3)), np.zeros((2, 4, 3)),
                                               "chamfer", 2,
                                               mesh=jax.make_mesh((1,), ("batch",))),
         "the mesh needs the batch axes"),
        (lambda: pointcloud.point_cloud_metrics(np.zeros((2, 4, 3)), np.zeros((4, 3))),
         r"samples \(S, N, D\) and references \(R, M, D\)"),
        (lambda: pointcloud.point_cloud_metrics(np.zeros((2, 4, 3)), np.zeros((2, 4, 2))),
         "same point dimension D"),
        (lambda: pointcloud.point_cloud_metrics(np.zeros((0, 4, 3)), np.zeros((2, 4, 3))),
         "at least one sample set"),
        (lambda: pointcloud.point_cloud_metrics(np.zeros((2, 4, 3)), np.zeros((2, 6, 3))),
         "same number of points, got 4 and 6"),
        (lambda: pointcloud.point_cloud_metrics(np.full((2, 4, 3), np.nan), np.zeros((2, 4, 3))),
         "samples contain NaN or inf"),
        (lambda: pointcloud.point_cloud_metrics(np.zeros((2, 4, 3)), np.zeros((2, 4, 3)),
                                                distances=("chamfer", "hausdorff")),
         "distances must name one or more of"),
        (lambda: pointcloud.one_nn_accuracy(np.zeros((2, 2)), np.zeros((2, 3)), np.zeros((2, 2))),
         r"reference_reference must be shape \(3, 3\)"),
        (lambda: pointcloud.coverage(np.zeros(3)), "sample_reference must be a non-empty 2-D"),
        (lambda: pointcloud.minimum_matching_distance(np.array([[np.nan]])), "NaN distances"),
    ],
)
def test_bad_input_raises_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_different_set_sizes_are_fine_for_chamfer_metrics():
    rng = np.random.default_rng(11)
    metrics = pointcloud.point_cloud_metrics(
        spheres(rng, 4, 16), spheres(rng, 3, 24), distances="chamfer", batch_size=4)
    assert set(metrics) == {"mmd_cd", "cov_cd", "1nna_cd"}
    assert metrics["cov_cd"] in (1 / 3, 2 / 3, 1.0)


if __name__ == "__main__":
    two_device_worker()
