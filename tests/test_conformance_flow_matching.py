"""Conformance with the PyTorch reference, facebookresearch/flow_matching 1.0.10.

`tests/data/flow_matching_1_0_10.npz` holds inputs and the reference's outputs; it is written by
`tests/reference/make_flow_matching_reference.py` (which needs torch and flow-matching; these
tests do not). Float64 comparisons run under `jax.enable_x64(True)`.

Where the two libraries legitimately differ, the comparison is restricted to the cases where
their definitions agree, or uses a tolerance justified by the method's order:

- torchdiffeq's "rk4" is the 3/8-rule variant, flowjax's "rk4" the classic one. Both are fourth
  order, so they differ by O(h^4): in float32 the difference for this field is below rounding;
  in float64 it is checked to be small and to shrink like h^4.
- With a step size, torchdiffeq steps on one lattice t_0 + k h over the whole time grid and
  interpolates the intermediate grid times linearly; flowjax restarts its steps at every grid
  time, so intermediates are solver states. The two agree to rounding when the grid's times lie
  on the lattice; off the lattice they differ by the interpolation error, O(h^2)
  (see `test_intermediates_off_the_step_lattice`).
- dopri5: diffrax and torchdiffeq choose different steps and error norms. At atol = rtol = 1e-7
  in float64 the reference's global error on this problem is 2.4e-6 (flowjax's 3e-8), both
  measured against a converged RK4 solution, so they are compared at 1e-5.
"""

from __future__ import annotations

import functools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import flowjax.solvers.divergence as divergence_lib
from flowjax.models import MLP
from flowjax.paths import (
    AffineProbPath,
    CondOTScheduler,
    CosineScheduler,
    LinearVPScheduler,
    PolynomialScheduler,
    ScheduleTransformedModel,
    VPScheduler,
)
from flowjax.solvers import ode_log_likelihood, ode_sample, standard_normal_log_density
from flowjax.solvers.integrate import static_time_grid, step_nodes

DATA_FILE = pathlib.Path(__file__).parent / "data" / "flow_matching_1_0_10.npz"

SCHEDULERS = {
    "condot": CondOTScheduler(),
    "poly2": PolynomialScheduler(n=2.0),
    "poly3": PolynomialScheduler(n=3.0),
    "vp": VPScheduler(),
    "linear_vp": LinearVPScheduler(),
    "cosine": CosineScheduler(),
}
CONVEX = ("condot", "poly2", "poly3")
CONVERSIONS = (
    "target_to_velocity",
    "epsilon_to_velocity",
    "velocity_to_target",
    "epsilon_to_target",
    "velocity_to_epsilon",
    "target_to_epsilon",
)
# torchdiffeq's method names -> flowjax's.
METHOD_NAMES = {"euler": "euler", "midpoint": "midpoint", "heun2": "heun", "rk4": "rk4"}
STEP_SIZES = (0.05, 0.03)

# Float64 closed forms: agreement to rounding.
F64 = dict(rtol=1e-10, atol=1e-12)
# Float32 MLP solves: a few ulps per step, accumulated over at most 40 steps.
F32 = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def ref():
    with np.load(DATA_FILE) as data:
        return {key: data[key] for key in data.files}


# ------------------------------------------------------------------------------------------------
# the MLP with the reference's weights


def _mlp_with_reference_weights(ref, param_dtype):
    # Built abstractly (no random initialisation to run), then filled with the torch weights.
    abstract = nnx.eval_shape(
        lambda: MLP(
            2,
            hidden_dim=64,
            num_layers=4,
            activation="swish",
            time_embedding="raw",
            param_dtype=param_dtype,
            rngs=nnx.Rngs(0),
        )
    )
    graphdef, state = nnx.split(abstract)
    params = nnx.to_pure_dict(state)
    layers = [params["hidden"][i] for i in range(4)] + [params["out"]]
    for i, layer in enumerate(layers):
        weight, bias = ref[f"mlp/{i}/weight"], ref[f"mlp/{i}/bias"]  # torch: (out, in)
        # nnx.Linear computes x @ kernel with kernel (in, out).
        assert layer["kernel"].shape == weight.T.shape and layer["bias"].shape == bias.shape
        assert layer["kernel"].dtype == param_dtype
        layer["kernel"] = jnp.asarray(weight.T, dtype=param_dtype)
        layer["bias"] = jnp.asarray(bias, dtype=param_dtype)
    params["hidden"] = {i: layers[i] for i in range(4)}
    params["out"] = layers[4]
    nnx.replace_by_pure_dict(state, params)
    return nnx.merge(graphdef, state)


@pytest.fixture(scope="module")
def mlp32(ref):
    return _mlp_with_reference_weights(ref, jnp.float32)


@pytest.fixture(scope="module")
def mlp64(ref):
    """The same network in float64; use it only inside `jax.enable_x64(True)`."""
    with jax.enable_x64(True):
        return _mlp_with_reference_weights(ref, jnp.float64)


def test_mlp_forward_matches_reference_network(ref, mlp32):
    out = mlp32(jnp.asarray(ref["mlp/x"]), jnp.asarray(ref["mlp/t"]))
    np.testing.assert_allclose(np.asarray(out), ref["mlp/out"], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# schedulers


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_scheduler_values_and_inverses(ref, name):
    scheduler = SCHEDULERS[name]
    with jax.enable_x64(True):
        out = scheduler(jnp.asarray(ref[f"sched/{name}/t"]))
        for field, key in (
            ("alpha_t", "alpha"),
            ("sigma_t", "sigma"),
            ("d_alpha_t", "d_alpha"),
            ("d_sigma_t", "d_sigma"),
        ):
            value = np.asarray(getattr(out, field))
            assert value.dtype == np.float64
            np.testing.assert_allclose(value, ref[f"sched/{name}/{key}"], **F64, err_msg=key)
        snr_inv = scheduler.snr_inverse(jnp.asarray(ref["sched/snr"]))
        np.testing.assert_allclose(np.asarray(snr_inv), ref[f"sched/{name}/snr_inverse"], **F64)
        if name in CONVEX:
            kappa_inv = scheduler.kappa_inverse(jnp.asarray(ref["sched/kappa"]))
            np.testing.assert_allclose(
                np.asarray(kappa_inv), ref[f"sched/{name}/kappa_inverse"], **F64
            )


# ------------------------------------------------------------------------------------------------
# affine paths and conversions on an event shape (3, 4)


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_affine_path_sample_and_conversions(ref, name):
    path = AffineProbPath(SCHEDULERS[name])
    with jax.enable_x64(True):
        sample = path.sample(
            jnp.asarray(ref["path/x_0"]),
            jnp.asarray(ref["path/x_1"]),
            jnp.asarray(ref[f"path/{name}/t_sample"]),
        )
        np.testing.assert_allclose(np.asarray(sample.x_t), ref[f"path/{name}/x_t"], **F64)
        np.testing.assert_allclose(np.asarray(sample.dx_t), ref[f"path/{name}/dx_t"], **F64)

        x_t, pred = jnp.asarray(ref["path/x_t_in"]), jnp.asarray(ref["path/pred_in"])
        t = jnp.asarray(ref["path/t_conv"])
        for conversion in CONVERSIONS:
            expected = ref[f"path/{name}/{conversion}"]
            # flowjax takes t of shape (B,) or already broadcastable; the reference only the latter.
            for t_arg in (t, t.reshape(-1, 1, 1)):
                out = getattr(path, conversion)(pred, x_t, t_arg)
                assert out.dtype == jnp.float64
                np.testing.assert_allclose(np.asarray(out), expected, **F64, err_msg=conversion)


# ------------------------------------------------------------------------------------------------
# schedule change


def test_schedule_transformed_velocity(ref, mlp64):
    with jax.enable_x64(True):
        model = mlp64
        x = jnp.asarray(ref["st/x"])
        for key, (orig, new) in {
            "condot_to_cosine": (CondOTScheduler(), CosineScheduler()),
            "vp_to_condot": (VPScheduler(), CondOTScheduler()),
        }.items():
            transformed = ScheduleTransformedModel(model, orig, new)
            # One scalar r per call, as the reference requires; vmapped over the r values.
            velocities = jax.jit(jax.vmap(lambda r: transformed(x, r)))(jnp.asarray(ref["st/r"]))
            np.testing.assert_allclose(
                np.asarray(velocities), ref[f"st/{key}/velocity"], **F64, err_msg=key
            )
        transformed = ScheduleTransformedModel(model, CondOTScheduler(), CosineScheduler())
        out = ode_sample(transformed, x, method="midpoint", step_size=0.05)
        np.testing.assert_allclose(
            np.asarray(out), ref["st/condot_to_cosine/midpoint_sample"], **F64
        )


# ------------------------------------------------------------------------------------------------
# ODE sampling with the reference's 2D network


@functools.lru_cache(maxsize=None)
def _sampler(method, step_size, time_grid, return_intermediates):
    """A jitted sampler per configuration, taking the model's state as an argument."""

    @jax.jit
    def run(graphdef_and_state, x):
        model = nnx.merge(*graphdef_and_state)
        return ode_sample(
            model,
            x,
            method=method,
            step_size=step_size,
            time_grid=time_grid,
            return_intermediates=return_intermediates,
        )

    return run


def _sample(model, x, method, step_size=None, time_grid=(0.0, 1.0), return_intermediates=False):
    run = _sampler(method, step_size, tuple(time_grid), return_intermediates)
    return np.asarray(run(nnx.split(model), jnp.asarray(x)))


@pytest.mark.parametrize("step_size", STEP_SIZES)
@pytest.mark.parametrize("method", ["euler", "midpoint", "heun2"])
def test_fixed_step_sampling(ref, mlp32, method, step_size):
    # step 0.03 does not divide 1: both libraries take 33 full steps and a last one of 0.01.
    out = _sample(mlp32, ref["ode/x_init"], METHOD_NAMES[method], step_size)
    np.testing.assert_allclose(out, ref[f"ode/{method}/{step_size}"], **F32)


@pytest.mark.parametrize("step_size", STEP_SIZES)
def test_euler_step_times_match_reference(ref, step_size):
    # The times at which the reference evaluated the field are the left ends of its steps.
    nodes, _ = step_nodes(static_time_grid((0.0, 1.0)), step_size)
    np.testing.assert_allclose(nodes[:-1], ref[f"ode/euler/{step_size}/eval_times"], atol=1e-6)


@pytest.mark.parametrize("step_size", STEP_SIZES)
def test_rk4_against_the_three_eighths_rule(ref, mlp32, step_size):
    # float32: the O(h^4) difference between the classic rule and torchdiffeq's 3/8 rule is
    # below float32 rounding for this field.
    out = _sample(mlp32, ref["ode/x_init"], "rk4", step_size)
    np.testing.assert_allclose(out, ref[f"ode/rk4/{step_size}"], **F32)


def test_rk4_float64_differs_from_three_eighths_rule_at_fourth_order(ref, mlp64):
    # In float64 the two fourth-order rules differ by C h^4 (C depends on the field's
    # derivatives, not on h). Check that the difference is small, not at rounding level
    # for the larger step (so the rules really differ), and shrinks like h^4.
    with jax.enable_x64(True):
        model = mlp64
        x = jnp.asarray(ref["ode/x_init"], dtype=jnp.float64)
        diffs = {}
        for h in STEP_SIZES:
            out = np.asarray(ode_sample(model, x, method="rk4", step_size=h))
            diffs[h] = np.max(np.abs(out - ref[f"ode/rk4_f64/{h}"]))
    # Measured: 1.2e-12 at h = 0.05 (rounding is ~1e-14 here), 1.5e-13 at h = 0.03.
    assert 1e-13 < diffs[0.05] < 1e-10, diffs
    # h^4 ratio (0.05 / 0.03)^4 = 7.7 (measured 7.8), with room for the shortened last step.
    ratio = diffs[0.05] / diffs[0.03]
    assert 4.0 < ratio < 15.0, diffs


@pytest.mark.parametrize("method", ["euler", "midpoint"])
def test_intermediates_on_the_step_lattice(ref, mlp32, method):
    grid = tuple(float(t) for t in ref["ode/intermediates/grid"])
    out = _sample(mlp32, ref["ode/x_init"], method, 0.05, grid, True)
    assert out.shape == (len(grid),) + ref["ode/x_init"].shape
    np.testing.assert_allclose(out, ref[f"ode/intermediates/{method}"], **F32)


def test_intermediates_off_the_step_lattice(ref, mlp32):
    # Grid [0, 0.33, 0.71, 1] with h = 0.05: the reference interpolates linearly between its
    # lattice states, flowjax lands on the grid times with a shortened step and restarts there.
    # The interpolation error is at most h^2/8 max|x''|, and max|x''| = 0.0058 along these
    # trajectories (x'' = du/dt + (du/dx) u, measured in float64), i.e. 1.8e-6; the difference
    # of the two midpoint solutions themselves is of the same O(h^2) order and smaller
    # (measured in float64: 1.5e-6 overall). So: the float32 tolerance plus h^2/8 * 0.01.
    grid = tuple(float(t) for t in ref["ode/off_lattice/grid"])
    out = _sample(mlp32, ref["ode/x_init"], "midpoint", 0.05, grid, True)
    expected = ref["ode/off_lattice/midpoint"]
    np.testing.assert_array_equal(out[0], expected[0])
    atol = F32["atol"] + 0.05**2 / 8 * 0.01
    np.testing.assert_allclose(out, expected, rtol=F32["rtol"], atol=atol)


@pytest.mark.parametrize("method", ["euler", "heun2"])
def test_explicit_time_grid_without_step_size(ref, mlp32, method):
    grid = tuple(float(t) for t in ref["ode/explicit/grid"])
    out = _sample(mlp32, ref["ode/x_init"], METHOD_NAMES[method], None, grid, True)
    np.testing.assert_allclose(out, ref[f"ode/explicit/{method}"], **F32)


@pytest.mark.parametrize(("method", "step_size"), [("euler", 0.03), ("midpoint", 0.05)])
def test_reversed_time(ref, mlp32, method, step_size):
    out = _sample(mlp32, ref["ode/x_init"], method, step_size, (1.0, 0.0))
    np.testing.assert_allclose(out, ref[f"ode/reverse/{method}/{step_size}"], **F32)
    nodes, _ = step_nodes(static_time_grid((1.0, 0.0)), step_size)
    t0, h = nodes[:-1], np.diff(nodes)
    expected_times = t0 if method == "euler" else np.stack([t0, t0 + 0.5 * h], 1).ravel()
    np.testing.assert_allclose(
        expected_times, ref[f"ode/reverse/{method}/{step_size}/eval_times"], atol=1e-6
    )


def test_dopri5_float64(ref, mlp64):
    with jax.enable_x64(True):
        model = mlp64
        x = jnp.asarray(ref["ode/x_init"], dtype=jnp.float64)
        out = ode_sample(
            model,
            x,
            method="dopri5",
            atol=1e-7,
            rtol=1e-7,
            time_grid=(0.0, 0.5, 1.0),
            return_intermediates=True,
        )
        np.testing.assert_allclose(np.asarray(out), ref["ode/dopri5_f64"], rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------------------
# likelihoods (log p0 = standard normal)


def test_likelihood_exact_divergence_midpoint(ref, mlp32):
    x_0, log_p1 = ode_log_likelihood(
        mlp32,
        jnp.asarray(ref["lik/x_1"]),
        standard_normal_log_density,
        method="midpoint",
        step_size=0.05,
        exact_divergence=True,
    )
    np.testing.assert_allclose(np.asarray(x_0), ref["lik/exact_midpoint/x_0"], **F32)
    np.testing.assert_allclose(np.asarray(log_p1), ref["lik/exact_midpoint/log_p1"], **F32)


def test_likelihood_exact_divergence_dopri5_float64(ref, mlp64):
    with jax.enable_x64(True):
        model = mlp64
        x_0, log_p1 = ode_log_likelihood(
            model,
            jnp.asarray(ref["lik/x_1"], dtype=jnp.float64),
            standard_normal_log_density,
            method="dopri5",
            atol=1e-7,
            rtol=1e-7,
            exact_divergence=True,
        )
        # The reference's errors here: 1.6e-6 (x_0) and 4.7e-6 (log p); flowjax's: 2e-9.
        np.testing.assert_allclose(
            np.asarray(x_0), ref["lik/exact_dopri5_f64/x_0"], rtol=0, atol=1e-5
        )
        np.testing.assert_allclose(
            np.asarray(log_p1), ref["lik/exact_dopri5_f64/log_p1"], rtol=0, atol=1e-5
        )


def test_likelihood_hutchinson_with_the_reference_probe(ref, mlp32, monkeypatch):
    # The reference draws one Rademacher probe z per solve from torch's RNG; the generator
    # stored it. Give flowjax the same probe (K = 1) in place of its own draw.
    probe = jnp.asarray(ref["lik/hutchinson_midpoint/probe"])[None]

    def fixed_probes(key, shape, num_probes, kind, dtype):
        assert (tuple(shape), num_probes, kind) == (probe.shape[1:], 1, "rademacher")
        return probe.astype(dtype)

    monkeypatch.setattr(divergence_lib, "hutchinson_probes", fixed_probes)
    x_0, log_p1 = ode_log_likelihood(
        mlp32,
        jnp.asarray(ref["lik/x_1"]),
        standard_normal_log_density,
        method="midpoint",
        step_size=0.05,
        exact_divergence=False,
        key=jax.random.key(0),
    )
    np.testing.assert_allclose(np.asarray(x_0), ref["lik/hutchinson_midpoint/x_0"], **F32)
    np.testing.assert_allclose(
        np.asarray(log_p1), ref["lik/hutchinson_midpoint/log_p1"], **F32
    )
    # The estimate differs from the exact divergence, so the probe really was used.
    gap = ref["lik/hutchinson_midpoint/log_p1"] - ref["lik/exact_midpoint/log_p1"]
    assert np.max(np.abs(gap)) > 1e-3
