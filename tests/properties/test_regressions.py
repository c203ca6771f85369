"""One regression test per defect the property suite found, each with the input Hypothesis
reported (shrunk), written out literally. Before the fix each of these crashed, returned inf or
NaN, or raised an error that did not name the argument; the property that found it is named in
the docstring."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax import data
from flowjax.categorical import sample_categorical
from flowjax.guidance import classifier_free_guidance, guided_velocity
from flowjax.losses import (
    cfm_loss,
    cfm_loss_per_sample,
    discrete_elbo,
    discrete_loss,
    generator_matching_loss,
    sample_time,
)
from flowjax.manifolds import Euclidean, Sphere, check_points, parse_manifold
from flowjax.metrics import (
    energy_distance,
    fraction_in_support,
    fraction_near_components,
    frechet_distance,
    bits_per_byte,
    generative_perplexity,
    inception_score_from_probs,
    negative_log_likelihood,
)
from flowjax.paths import (
    AffineProbPath,
    CondOTProbPath,
    GaussianMixture,
    MaskSource,
    MetricInducedProbPath,
    MixtureDiscreteProbPath,
    MixtureJumpGenerator,
    PolynomialScheduler,
    analytic,
    jump,
    kinetic_optimal_rates,
)
from flowjax.solvers import (
    FlowDivergenceSampler,
    Generator,
    SolverSettings,
    autoregressive_sample,
    edm_time_grid,
    exact_divergence,
    hutchinson_divergence,
    hutchinson_probes,
    ode_log_likelihood,
    ode_sample,
    riemannian_log_likelihood,
    riemannian_sample,
    standard_normal_log_density,
    superpose,
)

KEY = jax.random.key(0)
MASK_PATH = MixtureDiscreteProbPath(PolynomialScheduler(2.0), MaskSource(4))


def _logits_model(x, t):
    t = jnp.reshape(t, jnp.shape(t) + (1,) * (x.ndim + 1 - jnp.ndim(t)))
    return jnp.sin(x[..., None] * jnp.arange(1.0, 5.0) + 3.0 * t)


# Paths -------------------------------------------------------------------------------------


def test_affine_sample_refuses_a_time_where_the_scheduler_is_singular():
    """test_affine_sample_is_finite_or_refuses_a_singular_time: name='poly_half', t=[0, 0, 0]
    gave dx_t = -inf (d kappa / dt = 0.5 t^-0.5 is infinite at t = 0)."""
    path = AffineProbPath(PolynomialScheduler(0.5))
    x_0, x_1 = np.ones((3, 2), np.float32), np.full((3, 2), -0.5, np.float32)
    with pytest.raises(ValueError, match="singular at t = 0"):
        path.sample(x_0, x_1, np.array([0.0, 0.0, 0.0], np.float32))


def test_affine_sample_refuses_integer_data():
    """test_affine_sample_rejects_bad_input: defect='integer x_0', batch=1 was accepted."""
    x, t = np.zeros((1, 2), np.float32), np.full((1,), 0.5, np.float32)
    with pytest.raises(TypeError, match="x_0 must be floating point"):
        CondOTProbPath().sample(np.zeros((1, 2), np.int32), x, t)


def test_conversion_refuses_the_time_where_it_divides_by_zero():
    """test_conversions_are_finite_or_refuse_a_singular_time: name='condot',
    conversion='target_to_velocity', t=[1, 1, 1] returned -inf (it divides by sigma_1 = 0)."""
    x = np.linspace(-1.0, 1.0, 6, dtype=np.float32).reshape(3, 2)
    with pytest.raises(ValueError, match=r"target_to_velocity \(which divides by sigma_t\).*t = 1"):
        CondOTProbPath().target_to_velocity(x, x[::-1], np.array([1.0, 1.0, 1.0], np.float32))


def test_gaussian_mixture_refuses_weights_that_do_not_sum_to_one():
    """test_mixture_rejects_bad_input: defect='weights sum' (weights [0.5, 0.7]) was accepted."""
    with pytest.raises(ValueError, match="weights must be >= 0 and sum to 1"):
        GaussianMixture(jnp.array([0.5, 0.7]), jnp.zeros((2, 2)), jnp.stack([jnp.eye(2)] * 2))


def test_mixture_marginals_refuse_points_of_another_dimension():
    """test_mixture_rejects_bad_input: defect='x dimension' (x of shape (3, 3) for D = 2)
    raised "sub got incompatible shapes for broadcasting: (3, 1, 3), (3, 2, 2)"."""
    mixture = GaussianMixture(jnp.array([0.5, 0.5]), jnp.zeros((2, 2)), jnp.stack([jnp.eye(2)] * 2))
    with pytest.raises(
        ValueError, match=r"x must be a batch of points \(B, D\) with the mixture's D = 2"
    ):
        analytic.marginal_velocity(CondOTProbPath(), mixture, np.zeros((3, 3), np.float32), 0.5)


def test_mixture_marginals_refuse_a_time_vector_of_another_length():
    """test_mixture_rejects_bad_input: defect='t length' (t of shape (4,) for 3 points)."""
    mixture = GaussianMixture(jnp.array([0.5, 0.5]), jnp.zeros((2, 2)), jnp.stack([jnp.eye(2)] * 2))
    with pytest.raises(ValueError, match=r"t must be a scalar or of shape \(B,\)"):
        analytic.marginal_velocity(
            CondOTProbPath(), mixture, np.zeros((3, 2), np.float32), np.full(4, 0.5)
        )


GENERATOR = MixtureJumpGenerator(GaussianMixture.isotropic([0.4, 0.6], [[-1.0], [2.0]], 0.5))


def test_marginal_jump_generator_refuses_t_one():
    """test_mixture_jump_generator_is_finite_or_refuses_t_one: batch=0, t=1.0 ran (and gives
    NaN for any batch: the rates are singular at t = 1)."""
    with pytest.raises(ValueError, match="singular at t = 1"):
        GENERATOR.scaled_rate(np.zeros((0, 1), np.float32), 1.0)


def test_marginal_jump_generator_refuses_points_of_another_dimension():
    """test_mixture_jump_generator_rejects_points_of_another_dimension: dim=2 was broadcast
    against the one-dimensional mixture silently."""
    with pytest.raises(ValueError, match="D = 1"):
        GENERATOR.scaled_rate(np.zeros((3, 2), np.float32), 0.5)


# Discrete paths, categorical draws, discrete losses ---------------------------------------------


def test_mixture_conditional_velocity_refuses_t_one():
    """test_discrete_path_methods_are_finite_or_refuse_a_singular_time: name='mask',
    method='conditional_velocity', t=[1.] returned [-inf, inf, nan, nan]."""
    with pytest.raises(ValueError, match="singular at t = 1"):
        MASK_PATH.conditional_velocity(
            np.array([[0, 1, 3]]), np.array([[1, 1, 2]]), np.array([1.0])
        )


def test_discrete_probabilities_refuse_token_ids_outside_the_vocabulary():
    """test_discrete_path_methods_check_their_input: name='mask', method='probs',
    defect='token too large' returned probabilities for the id 4 of a vocabulary of 4."""
    with pytest.raises(ValueError, match="x_1 holds token ids"):
        MASK_PATH.probs(np.array([[0, 1, 4], [2, 1, 0]]), np.array([0.3, 0.6], np.float32))


def test_discrete_probabilities_refuse_a_time_vector_of_another_length():
    """test_discrete_path_methods_check_their_input: defect='t length' (t of shape (3,) for a
    batch of 2) was broadcast along the sequence axis silently."""
    with pytest.raises(ValueError, match=r"t must be a scalar, of shape \(batch,\)"):
        MASK_PATH.probs(np.array([[0, 1, 2], [2, 1, 0]]), np.full(3, 0.3, np.float32))


def test_metric_path_refuses_floating_tokens_naming_them():
    """test_discrete_path_methods_check_their_input: name='metric',
    method='conditional_velocity', defect='float tokens' raised "take_along_axis indices must
    be of integer type, got float32"."""
    x = np.array([[0, 1, 2], [2, 1, 0]])
    with pytest.raises(TypeError, match="x_t must hold integer token ids"):
        MetricInducedProbPath(4).conditional_velocity(x.astype(np.float32), x, np.array([0.3, 0.6]))


def test_kinetic_optimal_rates_refuse_zero_weights():
    """test_kinetic_optimal_rates_check_their_input: defect='zero weights' returned NaN rates."""
    with pytest.raises(ValueError, match=r"weights \(tau_t\) must be > 0"):
        kinetic_optimal_rates(np.array([0.25, 0.75]), np.array([0.1, -0.1]), np.zeros(2))


def test_kinetic_optimal_rates_refuse_a_scalar_probability():
    """test_kinetic_optimal_rates_check_their_input: defect='scalar p' raised "IndexError:
    invalid index to scalar variable"."""
    with pytest.raises(ValueError, match=r"p must have shape \(..., V\)"):
        kinetic_optimal_rates(np.float32(0.5), np.array([0.1, -0.1]))


def test_kinetic_optimal_rates_refuse_a_derivative_of_another_length():
    """test_kinetic_optimal_rates_check_their_input: defect='dp length' raised "operands could
    not be broadcast together with shapes (3,2) (2,3)"."""
    with pytest.raises(ValueError, match="p, dp must have one shape"):
        kinetic_optimal_rates(np.array([0.25, 0.75]), np.array([0.1, -0.1, 0.0]))


def test_sample_categorical_accepts_a_list_of_weights():
    """test_sample_categorical_checks_its_input: defect='list weights' raised "AttributeError:
    'list' object has no attribute 'astype'"."""
    assert int(sample_categorical(KEY, [[0.0, 2.0, 0.0]])[0]) == 1


def test_sample_categorical_refuses_scalar_weights():
    """test_sample_categorical_checks_its_input: defect='scalar weights' raised "axis -1 is out
    of bounds for array of dimension 0"."""
    with pytest.raises(ValueError, match=r"weights must have shape \(..., V\)"):
        sample_categorical(KEY, np.float32(1.0))


def test_sample_categorical_refuses_an_empty_vocabulary():
    """test_sample_categorical_checks_its_input: defect='no categories' raised "IndexError:
    index is out of bounds for axis 1 with size 0"."""
    with pytest.raises(ValueError, match="V >= 1 categories"):
        sample_categorical(KEY, np.ones((2, 0), np.float32))


def test_sample_categorical_never_draws_a_zero_weight_of_a_row_too_small_for_its_dtype():
    """test_sample_categorical_never_draws_a_zero_weight (the "long" profile): rows=1, size=3,
    dtype=float16, weights [[0, 1e-45, 1e-45]] drew index 0 of weight 0. Here 1e-8, a normal
    float32 that float16 cannot hold either: the whole row underflows to 0 in the draw."""
    weights = np.tile(np.array([[0.0, 1e-8, 1e-8]], np.float32), (64, 1))
    index = np.asarray(sample_categorical(KEY, weights, jnp.float16))
    assert np.all(index > 0)


def test_discrete_elbo_of_an_empty_batch():
    """test_discrete_loss_and_elbo: name='mask', batch=0 raised "ZeroDivisionError: integer
    modulo by zero" (reshape(0, -1))."""
    elbo = discrete_elbo(
        KEY, _logits_model, MASK_PATH, np.zeros((0, 2), np.int32), num_time_samples=2
    )
    assert elbo.shape == (0,)


def test_discrete_loss_refuses_an_empty_batch():
    """test_discrete_loss_and_elbo: batch=0; the mean over no tokens was NaN."""
    x = np.zeros((0, 2), np.int32)
    with pytest.raises(ValueError, match="needs at least one token"):
        discrete_loss(_logits_model, MASK_PATH, x, x, np.zeros((0,), np.float32))


# Solvers -----------------------------------------------------------------------------------


def test_solver_settings_refuse_a_boolean_step():
    """test_numeric_settings_are_checked_when_the_settings_are_made: name='step_size',
    value=True was accepted as a step of 1."""
    with pytest.raises(ValueError, match="step_size must be positive"):
        SolverSettings(step_size=True)


def test_a_step_size_with_too_many_steps_is_refused():
    """test_a_step_size_with_too_many_steps_is_refused: step=1.175494351e-38, method='euler'
    raised NumPy's "Maximum allowed size exceeded" while listing the nodes (a step of 1e-9 tries
    to allocate gigabytes)."""
    with pytest.raises(ValueError, match="step_size=1.175494351e-38 needs"):
        ode_sample(lambda x, t: -x, np.ones((1, 2), np.float32), step_size=1.175494351e-38)


def test_ode_sample_names_an_integer_initial_state():
    """test_ode_sample_checks_its_input: defect='integer x_init' raised "The ODE state must be
    floating point", not naming x_init."""
    with pytest.raises(TypeError, match="x_init must be floating point"):
        ode_sample(lambda y, t: -y, np.ones((3, 2), np.int32))


def test_ode_sample_refuses_a_velocity_of_another_shape():
    """test_ode_sample_checks_its_input: defect='output shape' (a velocity of shape (1, 2) for
    a state (3, 2)) was broadcast into the state silently."""
    with pytest.raises(ValueError, match="velocity_fn must return an array of the shape"):
        ode_sample(lambda y, t: -y[:1], np.ones((3, 2), np.float32))


def test_exact_divergence_of_an_empty_event():
    """test_divergences_of_a_linear_field: batch=0, event=(0,) raised "IndexError: index is out
    of bounds for axis 1 with size 0"."""
    value, div = exact_divergence(lambda y: y, jnp.zeros((0, 0)))
    assert value.shape == (0, 0) and div.shape == (0,)


def test_hutchinson_divergence_of_an_empty_batch():
    """test_divergences_of_a_linear_field: batch=0, event=(2,), num_probes=1 raised
    "ZeroDivisionError: integer modulo by zero"."""
    x = jnp.zeros((0, 2))
    probes = hutchinson_probes(KEY, x.shape, 1, "rademacher", jnp.float32)
    _, estimate = hutchinson_divergence(lambda y: y, x, probes)
    assert estimate.shape == (0,)


def test_standard_normal_log_density_of_an_empty_batch():
    """test_standard_normal_log_density: batch=0, event=(2,) raised "ZeroDivisionError"."""
    assert standard_normal_log_density(jnp.zeros((0, 2))).shape == (0,)


def test_likelihood_refuses_a_velocity_of_another_shape():
    """test_likelihood_checks_its_input: defect='output shape' raised "cannot reshape array of
    shape (3, 1) (size 3) into shape (3, 2)"."""
    with pytest.raises(ValueError, match="velocity_fn must return an array of the shape"):
        ode_log_likelihood(
            lambda y, t: -y[:, :1], np.ones((3, 2), np.float32), standard_normal_log_density
        )


def test_likelihood_names_an_unbatched_x_1():
    """test_likelihood_checks_its_input: defect='unbatched x_1' named "x.shape", not x_1."""
    with pytest.raises(ValueError, match=r"x_1.shape=\(2,\)"):
        ode_log_likelihood(lambda y, t: -y, np.ones((2,), np.float32), standard_normal_log_density)


def test_riemannian_solvers_on_an_empty_batch():
    """test_riemannian_solvers_stay_on_the_manifold: manifold='S2', method='euler',
    update='project', step_size=None, batch=0 raised "ZeroDivisionError" in the likelihood."""
    sphere = Sphere(2)
    x = jnp.zeros((0, 3))
    assert riemannian_sample(lambda y, t: y, x, sphere).shape == (0, 3)
    x_0, log_p = riemannian_log_likelihood(lambda y, t: jnp.zeros_like(y), x, sphere, step_size=0.5)
    assert x_0.shape == (0, 3) and log_p.shape == (0,)


def test_superposition_refuses_nan_weights():
    """test_superposition_weights: weights=[nan], normalise=False was accepted."""
    with pytest.raises(ValueError, match="weights must be >= 0 and sum to 1"):
        superpose([lambda x, t: Generator(velocity=x)], [math.nan])


def test_edm_time_grid_refuses_a_nan_exponent():
    """test_edm_time_grid: num_steps=1, sigma_min=0.5, sigma_max=1.0, rho=nan returned a grid of
    NaN times."""
    with pytest.raises(ValueError, match="rho must be a finite number > 0"):
        edm_time_grid(1, sigma_min=0.5, sigma_max=1.0, rho=math.nan)


def test_flow_divergence_sampler_on_an_empty_batch():
    """test_flow_divergence_sampler_with_zero_scale_is_plain_sampling: batch=0,
    divergence_of='velocity', exact=False raised "ZeroDivisionError"."""
    refiner = FlowDivergenceSampler(scale=0.0, divergence_of="velocity", exact_divergence=False)
    out = ode_sample(
        lambda y, t: jnp.tanh(y) - y, jnp.zeros((0, 2)), refiner=refiner, key=KEY, step_size=0.25
    )
    assert out.shape == (0, 2)


def test_hutchinson_probes_refuse_a_fractional_count():
    """test_hutchinson_probes_check_their_input: defect='fractional count' raised "Shapes must
    be 1D sequences of concrete values of integer type, got (1.5, 2, 3)"."""
    with pytest.raises(ValueError, match="num_probes must be an int >= 1"):
        hutchinson_probes(KEY, (2, 3), 1.5, "rademacher", jnp.float32)


def test_hutchinson_probes_refuse_an_integer_dtype():
    """test_hutchinson_probes_check_their_input: defect='integer dtype' returned int32 probes."""
    with pytest.raises(TypeError, match="dtype must be a floating dtype"):
        hutchinson_probes(KEY, (2, 3), 2, "rademacher", jnp.int32)


# Losses ------------------------------------------------------------------------------------


def test_cfm_loss_per_sample_of_an_empty_batch():
    """test_cfm_loss_is_non_negative_and_zero_for_the_target: batch=0, event=(2,) raised
    "ZeroDivisionError: integer modulo by zero"."""
    x = jnp.zeros((0, 2), jnp.float16)
    loss = cfm_loss_per_sample(lambda y, t: y, CondOTProbPath(), x, x, jnp.zeros((0,)))
    assert loss.shape == (0,)


def test_cfm_loss_refuses_an_event_without_coordinates():
    """test_cfm_loss_refuses_an_empty_mean: batch=1, event=(0,) returned NaN (a mean over no
    coordinates)."""
    x = np.zeros((1, 0), np.float32)
    with pytest.raises(ValueError, match="x_1.shape=\\(1, 0\\)"):
        cfm_loss(lambda y, t: y, CondOTProbPath(), x, x, np.full((1,), 0.5, np.float32))


@pytest.mark.parametrize("batch_size", [-1, 2.0, True])
def test_sample_time_refuses_a_batch_size_that_is_not_a_count(batch_size):
    """test_sample_time_checks_its_input: argument='batch_size' with -1 (an MLIR "invalid
    tensor dimension size" error), 2.0 ("Shapes must be 1D sequences of concrete values of
    integer type") and True (accepted as 1)."""
    with pytest.raises(ValueError, match="batch_size must be an int >= 0"):
        sample_time(KEY, batch_size)


def test_sample_time_keeps_its_dtype_with_an_array_t_max():
    """test_sample_time: distribution='uniform', batch_size=0, t_max=1.0 (a float32 array),
    dtype=float16 returned float32 times."""
    assert sample_time(KEY, 0, t_max=jnp.float32(1.0), dtype=jnp.float16).dtype == jnp.float16


def test_generator_matching_loss_refuses_an_empty_batch():
    """test_generator_matching_loss_and_bregman_divergences: batch=0 raised
    "ZeroDivisionError"."""

    class FlowOnly:
        def __init__(self, velocity):
            self.velocity, self.scaled_rate, self.logits = velocity, None, None

    def flow_model(y, t):
        return FlowOnly(jnp.sin(y))

    x = jnp.zeros((0, 2))
    edges = jump.bin_edges(-3.0, 3.0, 6)
    with pytest.raises(ValueError, match="needs at least one sample"):
        generator_matching_loss(flow_model, x, x, jnp.zeros((0,)), edges=edges)


def test_generator_matching_loss_refuses_t_one():
    """test_generator_matching_loss_refuses_t_one: t=[1, 1, 1] returned NaN (the CondOT jump
    rates divide by 1 - t)."""

    class Output:
        velocity, scaled_rate, logits = None, jnp.ones((3, 2)), jnp.zeros((3, 2, 6))

    x = jnp.ones((3, 2))
    edges = jump.bin_edges(-3.0, 3.0, 6)
    with pytest.raises(ValueError, match="singular at t = 1"):
        generator_matching_loss(lambda y, t: Output(), x, x, np.ones(3, np.float32), edges=edges)


# Manifolds ---------------------------------------------------------------------------------


def test_sphere_projects_the_zero_vector_onto_the_sphere():
    """test_projx_lands_on_the_manifold_and_is_idempotent: name='S1', shape=(1,), x=[[0, 0]]
    stayed at the origin, off the circle."""
    sphere = Sphere(1)
    on = sphere.projx(jnp.zeros((1, 2)))
    np.testing.assert_allclose(sphere.distance_to_manifold(on), 0.0)


def test_check_points_accepts_float16_base_points():
    """test_random_base_points_pass_check_points_in_every_dtype: name='S1', shape=(1,),
    dtype=float16, seed=1: the point [-0.3826, -0.925], 0.000977 (one float16 ulp) from the
    circle, was refused with the float32 tolerance 1e-4."""
    sphere = Sphere(1)
    check_points(sphere, sphere.random_base(jax.random.key(1), (1,), jnp.float16))


def test_sphere_refuses_a_tangent_vector_of_another_size():
    """test_coordinates_of_the_wrong_size_are_refused: name='S1', method='expmap', extra=-1
    (x of shape (3, 1) on the circle) broadcast silently; extra=1 raised "add got
    incompatible shapes for broadcasting: (3, 3), (3, 2)"."""
    sphere = Sphere(1)
    with pytest.raises(ValueError, match=r"x must have shape \(..., 2\)"):
        sphere.expmap(np.zeros((3, 1), np.float32), np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match=r"x must have shape \(..., 2\)"):
        sphere.expmap(np.zeros((3, 3), np.float32), np.zeros((3, 2), np.float32))


def test_sphere_refuses_batch_axes_that_do_not_broadcast():
    """test_binary_maps_refuse_leading_axes_that_do_not_broadcast: name='S1', batch=2,
    method='dist' raised "sub got incompatible shapes for broadcasting: (3, 2), (2, 2)"."""
    with pytest.raises(ValueError, match="batch axes of x and y must broadcast"):
        Sphere(1).dist(np.zeros((3, 2), np.float32), np.zeros((2, 2), np.float32))


def test_parse_manifold_names_a_zero_dimension():
    """test_parse_manifold_refuses_other_names: name='R0' raised "Euclidean needs an integer
    dimension dim >= 1, got 0.", not naming the string being read."""
    with pytest.raises(ValueError, match="Cannot read the manifold 'R0'"):
        parse_manifold("R0")


def test_random_base_names_a_shape_that_is_not_a_tuple():
    """test_random_base_checks_its_input: name='R2', defect='shape as int' raised "Value after *
    must be an iterable, not int"."""
    with pytest.raises(TypeError, match="shape must be a tuple of ints"):
        Euclidean(2).random_base(KEY, 2)


def test_random_base_refuses_an_integer_dtype():
    """test_random_base_checks_its_input: name='S1', defect='integer dtype' raised JAX's
    ValueError about `normal`, not a TypeError naming dtype."""
    with pytest.raises(TypeError, match="dtype must be a floating dtype"):
        Sphere(1).random_base(KEY, (2,), jnp.int32)


# Metrics, data, guidance ------------------------------------------------------------------


def test_frechet_distance_refuses_a_negative_definite_covariance():
    """test_frechet_distance_checks_its_input: defect='negative definite' (sigma1 = -I) gave
    d^2 = 0."""
    with pytest.raises(ValueError, match="sigma1 must be a covariance"):
        frechet_distance(np.zeros(2), -np.eye(2), np.zeros(2), np.eye(2))


def test_energy_distance_refuses_samples_of_another_dimension():
    """test_energy_distance_checks_its_input: defect='dimensions' raised "operands could not be
    broadcast together with shapes (3,1,2) (1,4,3)"."""
    with pytest.raises(ValueError, match=r"got y of shape \(4, 3\)"):
        energy_distance(np.zeros((3, 2)), np.ones((4, 3)))


def test_energy_distance_refuses_unbatched_samples():
    """test_energy_distance_checks_its_input: defect='unbatched' raised "IndexError: too many
    indices for array"."""
    with pytest.raises(ValueError, match=r"got x of shape \(3,\)"):
        energy_distance(np.zeros(3), np.ones((4, 2)))


def test_energy_distance_refuses_an_empty_sample():
    """test_energy_distance_checks_its_input: defect='empty x' returned NaN."""
    with pytest.raises(ValueError, match=r"got x of shape \(0, 2\)"):
        energy_distance(np.zeros((0, 2)), np.ones((4, 2)))


def test_negative_log_likelihood_needs_two_values():
    """test_negative_log_likelihood_needs_two_values: values=[] returned NaN."""
    with pytest.raises(ValueError, match="log_likelihood must hold at least 2 values"):
        negative_log_likelihood(np.asarray([]))


def test_fraction_near_components_refuses_points_of_another_dimension():
    """test_fraction_near_components: n=0, dim=1 returned NaN (no error for the dimension)."""
    mixture = GaussianMixture.isotropic([0.5, 0.5], [[0.0, 0.0], [3.0, 3.0]], 1.0)
    with pytest.raises(ValueError, match=r"samples must have shape \(n, 2\)"):
        fraction_near_components(mixture, np.zeros((0, 1), np.float32))


def test_fraction_in_support_refuses_no_samples():
    """test_fraction_in_support: n=0 returned NaN."""
    with pytest.raises(ValueError, match="samples must hold at least one point"):
        fraction_in_support("checkerboard", np.zeros((0, 2), np.float32))


def test_inception_score_refuses_rows_that_are_not_distributions():
    """test_inception_score_from_probabilities: rows=2, classes=2, normalised=False (rows of
    [1, 1]) gave a score."""
    with pytest.raises(ValueError, match="probabilities must sum to 1"):
        inception_score_from_probs(np.ones((2, 2)), num_splits=2)


def test_generative_perplexity_refuses_samples_without_tokens():
    """test_language_model_summaries: n=1, length=0 gave NaN; n=0, length=0 raised NumPy's
    "need at least one array to concatenate"."""
    judge = lambda s: np.zeros(len(s))
    for shape in ((1, 0), (0, 0)):
        with pytest.raises(ValueError, match="samples must hold at least one sequence"):
            generative_perplexity(judge, np.zeros(shape, np.int64), judge_vocab_size=2)


def test_bits_per_byte_refuses_counts_of_another_shape():
    """test_bits_per_byte_checks_its_input: defect='shapes' (3 byte counts for 2 sequences) was
    accepted, the two sums taken over different sequences."""
    with pytest.raises(ValueError, match="num_bytes must hold one count per log-likelihood"):
        bits_per_byte(np.log([0.5, 0.25]), np.asarray([1, 2, 3]))


def test_bits_per_byte_refuses_negative_and_fractional_counts():
    """test_bits_per_byte_checks_its_input: defect='negative bytes' ([3, -1]) and
    'fractional bytes' ([1.5, 2.0]) were accepted."""
    for num_bytes in ([3, -1], [1.5, 2.0]):
        with pytest.raises(ValueError, match="num_bytes must be integer counts >= 0"):
            bits_per_byte(np.log([0.5, 0.25]), np.asarray(num_bytes))


def test_parse_config_refuses_a_boolean_count():
    """test_parse_config_of_toy_configs: name='checkerboard', option='worker_count',
    value=False was accepted as 0 workers."""
    with pytest.raises(ValueError, match="data.worker_count must be a non-negative int"):
        data.parse_config({"source": "toy", "name": "checkerboard", "worker_count": False})


def test_parse_config_refuses_a_boolean_number_of_epochs():
    """test_parse_config_of_array_configs: key='num_epochs', value=True was accepted as 1."""
    with pytest.raises(ValueError, match="data.num_epochs must be None"):
        data.parse_config({"source": "arrays", "path": "data.npz", "num_epochs": True})


def test_sample_toy_names_a_missing_generator():
    """test_toy_sampling_checks_its_input: name='checkerboard', defect='no generator' (rng=0)
    raised "AttributeError: 'int' object has no attribute 'integers'"."""
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        data.sample_toy("checkerboard", 2, 0)


def test_sample_toy_refuses_a_fractional_count():
    """test_toy_sampling_checks_its_input: name='checkerboard', defect='fractional n' (n=2.5)
    drew 2 points."""
    with pytest.raises(ValueError, match="n must be an int >= 0"):
        data.sample_toy("checkerboard", 2.5, np.random.default_rng(0))


def test_toy_batch_names_a_negative_seed():
    """test_toy_sampling_checks_its_input: name='checkerboard', defect='negative seed' raised
    NumPy's "expected non-negative integer"."""
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        data.toy_batch("checkerboard", 2, seed=-1, index=0)


def test_classifier_free_guidance_refuses_outputs_of_two_shapes():
    """test_guidance_checks_its_input: defect='shapes' raised "operands could not be broadcast
    together with shapes (2,3) (2,4)"."""
    with pytest.raises(ValueError, match="conditional and unconditional must have the same shape"):
        classifier_free_guidance(np.ones((2, 3)), np.ones((2, 4)), 1.0)


def test_guided_velocity_refuses_an_unbatched_state():
    """test_guidance_checks_its_input: defect='scalar x' raised "IndexError: tuple index out of
    range"."""
    guided = guided_velocity(lambda x, t, label: x, 1.0, null_label=0)
    with pytest.raises(ValueError, match="x must have a leading batch axis"):
        guided(np.float32(1.0), 0.5, label=np.array([1, 2]))


def test_guided_velocity_refuses_a_model_output_of_another_batch():
    """test_guidance_checks_its_input: defect='output batch' raised "array split does not
    result in an equal division: rest is 1"."""
    guided = guided_velocity(lambda x, t, label: x[:1], 1.0, null_label=0)
    with pytest.raises(ValueError, match="velocity_fn must return one output per input"):
        guided(np.ones((2, 3), np.float32), 0.5, label=np.array([1, 2]))


# Language models ---------------------------------------------------------------------------


def _first_token_likeliest(tokens, cache):
    """Logits (B, n, 3) favouring token 0 at every position."""
    return jnp.broadcast_to(jnp.asarray([10.0, 0.0, 0.0]), tokens.shape + (3,)), cache


def test_autoregressive_sample_never_draws_an_excluded_token_outside_a_small_nucleus():
    """test_autoregressive_sample_draws_allowed_ids: batch=1, num_tokens=1, exclude=(0,), a
    tiny nucleus and token 0 the likeliest drew token 0: the nucleus held only the excluded
    token, so every weight was 0 after the exclusion."""
    tokens = autoregressive_sample(
        KEY, _first_token_likeliest, None, jnp.zeros((1, 1), jnp.int32), 1, top_p=1e-6,
        exclude=(0,),
    )
    assert int(tokens[0, 0]) == 1


def test_autoregressive_sample_refuses_excluded_ids_outside_the_vocabulary():
    """test_autoregressive_sample_checks_its_input: exclude=(-1,) excluded the last token and
    exclude=(3,) for V = 3 was dropped, both silently."""
    for exclude in ((-1,), (3,)):
        with pytest.raises(ValueError, match=r"exclude must hold token ids in \[0, 3\)"):
            autoregressive_sample(
                KEY, _first_token_likeliest, None, jnp.zeros((1, 1), jnp.int32), 1,
                exclude=exclude,
            )


def test_adaptive_solvers_integrate_a_bfloat16_state():
    """test_ode_sample_of_a_constant_velocity_is_exact (the "long" profile): method='dopri5',
    grid=(0, 1), dtype=bfloat16, x = 0, c = 2.875 returned 1.59 instead of 2.875: diffrax
    stepped a bfloat16 clock, spent max_steps by t = 0.55 and returned that state."""
    for method in ("dopri5", "tsit5"):
        x = ode_sample(lambda y, t: jnp.full_like(y, 2.875), jnp.zeros((1, 2), jnp.bfloat16),
                       method=method)
        assert x.dtype == jnp.bfloat16
        np.testing.assert_array_equal(np.asarray(x, np.float32), 2.875)


def test_an_adaptive_solve_that_spends_its_step_budget_returns_nan():
    """Found with the case above: a solve that reached max_steps returned its last state as if
    it had arrived."""
    x = ode_sample(lambda y, t: 10 * jnp.sin(30 * y), jnp.ones((1, 2)), method="dopri5",
                   max_steps=2)
    assert np.all(np.isnan(np.asarray(x)))


def test_markov_language_with_a_nearly_absorbing_context():
    """test_language_probabilities_and_entropy_match_an_enumeration (the "long" profile):
    MarkovLanguage(vocab_size=3, seq_len=1, order=1, concentration=0.125, language_seed=3) raised
    RuntimeError: power iteration did not converge (context 1 keeps itself with probability
    1 - 5e-7, so it needed millions of steps)."""
    language = data.languages.MarkovLanguage(3, 1, 1, 0.125, 3)
    pi = language.stationary
    np.testing.assert_allclose(pi @ language.transitions, pi, atol=1e-12)
    np.testing.assert_allclose(np.exp(language.log_prob(np.arange(3)[:, None])).sum(), 1.0)
