"""Explainers and explanation-property metrics (flowjax.explain) against closed forms: a linear
model's gradients, integrated gradients, SmoothGrad and infidelity are known exactly; a constant
explanation has zero sensitivity; Gini, entropy, deletion / insertion areas and group gaps by
hand; integrated gradients' completeness and its convergence with the number of steps."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax.explain import (
    attribution_entropy,
    deletion_curve,
    gini_sparsity,
    gradient_x_input,
    group_gap,
    infidelity,
    insertion_curve,
    integrated_gradients,
    lime_explainer,
    local_lipschitz,
    max_sensitivity,
    smoothgrad,
    vanilla_gradient,
    weights_explainer,
)

KEY = jax.random.key(0)
SHAPE = (4, 4, 2)  # small images (H, W, C), so that square removal applies
W = jax.random.normal(jax.random.key(1), SHAPE)
X = jax.random.normal(jax.random.key(2), (3, *SHAPE))


def linear(x):
    """f(x) = w . x + b: (B, 4, 4, 2) -> (B,)."""
    return jnp.sum(x * W, axis=(1, 2, 3)) + 0.5


def weights(model, x, key):
    """The explanation phi = w of the linear model, for every example."""
    return jnp.broadcast_to(W, x.shape)


def test_linear_model_gradients_integrated_gradients_and_smoothgrad_are_exact():
    baseline = jnp.full(SHAPE, 0.3)

    @jax.jit
    def attributions(x):
        return (
            vanilla_gradient(linear, x),
            gradient_x_input(linear, x),
            integrated_gradients(linear, x, baseline=baseline, steps=1, rule="trapezoid"),
            integrated_gradients(linear, x, baseline=baseline, steps=3, rule="riemann"),
            *(smoothgrad(linear, x, KEY, sigma=sigma, samples=4) for sigma in (0.0, 0.2, 3.0)),
        )

    gradient, times_input, ig_trapezoid, ig_riemann, *smooth = attributions(X)
    w = np.broadcast_to(W, X.shape)
    np.testing.assert_allclose(gradient, w, rtol=1e-6)
    np.testing.assert_allclose(times_input, w * X, rtol=1e-6)
    for ig in (ig_trapezoid, ig_riemann):
        np.testing.assert_allclose(ig, w * (X - baseline), rtol=1e-5, atol=1e-6)
    for sg in smooth:
        np.testing.assert_allclose(sg, w, rtol=1e-6)


@pytest.mark.parametrize("perturbation", ["gaussian", "square"])
def test_linear_model_weights_have_zero_infidelity(perturbation):
    """f(x) - f(x - I) = I . w for every I, so phi = w has INFD 0 (to float32 rounding), while a
    wrong explanation (-w) does not."""
    settings = dict(perturbation=perturbation, samples=8, sigma=2.0, square_size=3)
    negated = lambda m, x, k: -weights(m, x, k)  # noqa: E731
    infd, wrong = jax.jit(
        lambda x: [infidelity(linear, e, x, KEY, **settings) for e in (weights, negated)]
    )(X)
    assert infd.shape == (3,) and float(jnp.max(infd)) < 1e-8
    assert float(jnp.min(wrong)) > 1e-2


def test_target_class_selection_and_jitted_infidelity():
    """A (B, 2) model whose class 1 is the linear model and class 0 its negative: the gradients
    of the two classes are w and -w, and the linear weights have zero infidelity on class 1."""
    two = lambda x: jnp.stack([-linear(x), linear(x)], axis=1)  # noqa: E731
    first, second, infd = jax.jit(lambda x: (
        vanilla_gradient(two, x, target=0),
        vanilla_gradient(two, x, target=jnp.array([1, 1, 1])),
        infidelity(two, weights, x, KEY, samples=4, target=1),
    ))(X)
    np.testing.assert_allclose(first, -np.broadcast_to(W, X.shape), rtol=1e-6)
    np.testing.assert_allclose(second, np.broadcast_to(W, X.shape), rtol=1e-6)
    assert float(jnp.max(infd)) < 1e-8


def test_integrated_gradients_completeness_and_convergence():
    """sum_i phi_i -> f(x) - f(x'): the trapezoid error falls about 16-fold from 8 to 32 steps,
    the right Riemann error about 4-fold."""
    a = jax.random.normal(jax.random.key(3), (5, 7))

    def f(x):
        return jnp.sum(jnp.tanh(x @ a) ** 2, axis=1)

    x = jax.random.normal(jax.random.key(4), (2, 5))
    settings = [(rule, steps) for rule in ("trapezoid", "riemann") for steps in (8, 32)]

    @jax.jit
    def completeness_errors(x):
        exact = f(x) - f(jnp.zeros_like(x))
        return [
            jnp.max(jnp.abs(jnp.sum(integrated_gradients(f, x, steps=s, rule=r), axis=1) - exact))
            for r, s in settings
        ]

    errors = dict(zip(settings, map(float, completeness_errors(x))))
    assert errors["trapezoid", 32] < errors["trapezoid", 8] / 8 and errors["trapezoid", 32] < 1e-2
    assert errors["riemann", 32] < errors["riemann", 8] / 2.5


def test_constant_explanation_is_insensitive_and_sensitivity_of_a_known_explainer():
    """phi = const: max-sensitivity and the local Lipschitz estimate are 0. Gradient x input of
    f = w . x with |w_i| = c has phi(x') - phi(x) = w * d, so the Lipschitz ratio is c exactly
    and the max-sensitivity c ||d|| <= c r sqrt(n)."""
    constant = lambda model, x, key: jnp.ones_like(x)  # noqa: E731
    c = 0.7
    signs = c * jnp.sign(W)
    model = lambda x: jnp.sum(x * signs, axis=(1, 2, 3))  # noqa: E731
    settings = dict(radius=0.1, samples=3)

    @jax.jit
    def metrics(x):
        return (
            max_sensitivity(linear, constant, x, KEY, **settings),
            max_sensitivity(linear, constant, x, KEY, relative=True, **settings),
            local_lipschitz(linear, constant, x, KEY, **settings),
            local_lipschitz(model, gradient_x_input, x, KEY, **settings),
            max_sensitivity(model, gradient_x_input, x, KEY, **settings),
        )

    *zeros, lipschitz, sensitivity = metrics(X)
    for value in zeros:
        np.testing.assert_array_equal(value, 0)
    np.testing.assert_allclose(lipschitz, c, rtol=1e-5)
    assert float(jnp.max(sensitivity)) <= c * 0.1 * np.sqrt(W.size) + 1e-6


def test_gini_sparsity_and_entropy_by_hand():
    """n = 4 features on (2, 2) axes: one-hot gives Gini (n - 1) / n and entropy 0; uniform (any
    sign) Gini 0 and entropy log n; |phi| = (0, 2, 2, 0) Gini 1 - 2 (0.5 * 1.5 / 4 + 0.5 * 0.5 /
    4) = 1/2 and entropy log 2; all zeros counts as uniform."""
    n = 4
    phi = jnp.array([
        [[0.0, 0.0], [3.0, 0.0]],
        [[-0.3, 0.3], [-0.3, -0.3]],
        [[0.0, -2.0], [2.0, 0.0]],
        [[0.0, 0.0], [0.0, 0.0]],
    ])
    np.testing.assert_allclose(gini_sparsity(phi), [(n - 1) / n, 0, 0.5, 0], atol=1e-6)
    np.testing.assert_allclose(
        attribution_entropy(phi), [0, np.log(n), np.log(2), np.log(n)], atol=1e-6
    )


def test_deletion_and_insertion_curves_by_hand():
    """f = (1, 2, 3) . x at x = (4, 1, 1), gradient x input (4, 2, 3), baseline 0: deletion
    removes 4, then 3, then 2: f = 9, 5, 2, 0 and area (1/3)(7 + 3.5 + 1) = 11.5 / 3; insertion
    gives 0, 4, 7, 9 and 15.5 / 3. Two features per step: 9, 2, 0 at 0, 2/3, 1, area 4."""
    w = jnp.array([1.0, 2.0, 3.0])
    f = lambda x: x @ w  # noqa: E731
    x = jnp.array([[4.0, 1.0, 1.0]])
    curves = jax.jit(lambda x: [
        (curve, curve.area())
        for curve in (
            deletion_curve(f, gradient_x_input, x),
            insertion_curve(f, gradient_x_input, x),
            deletion_curve(f, gradient_x_input, x, features_per_step=2),
        )
    ])(x)
    (deletion, deletion_area), (insertion, insertion_area), (coarse, coarse_area) = curves
    np.testing.assert_allclose(deletion.outputs, [[9, 5, 2, 0]], rtol=1e-6)
    np.testing.assert_allclose(deletion.fractions, [0, 1 / 3, 2 / 3, 1], rtol=1e-6)
    np.testing.assert_allclose(deletion_area, [11.5 / 3], rtol=1e-6)
    np.testing.assert_allclose(insertion.outputs, [[0, 4, 7, 9]], rtol=1e-6)
    np.testing.assert_allclose(insertion_area, [15.5 / 3], rtol=1e-6)
    np.testing.assert_allclose(coarse.outputs, [[9, 2, 0]], rtol=1e-6)
    np.testing.assert_allclose(coarse.fractions, [0, 2 / 3, 1], rtol=1e-6)
    np.testing.assert_allclose(coarse_area, [4.0], rtol=1e-6)


def test_deletion_curve_of_a_linear_model_removes_the_largest_contribution_first():
    """With positive contributions w_i x_i the curve falls monotonically to f(baseline) = b and its
    drops shrink: each step removes the largest remaining contribution."""
    x = jnp.abs(X) + 0.1
    model = lambda z: jnp.sum(z * jnp.abs(W), axis=(1, 2, 3)) + 0.5  # noqa: E731
    outputs = np.asarray(jax.jit(lambda z: deletion_curve(model, gradient_x_input, z).outputs)(x))
    drops = -np.diff(outputs, axis=1)
    assert outputs.shape == (3, W.size + 1)
    assert np.all(drops > 0) and np.all(np.diff(drops, axis=1) <= 1e-6)
    start = np.sum(np.asarray(x) * np.abs(W), axis=(1, 2, 3)) + 0.5
    np.testing.assert_allclose(outputs[:, 0], start, rtol=1e-6)
    np.testing.assert_allclose(outputs[:, -1], 0.5, rtol=1e-6)


def test_group_gap_by_hand():
    means, gap = group_gap(jnp.array([1.0, 2.0, 3.0, 10.0]), jnp.array([0, 0, 1, 1]), 3)
    np.testing.assert_allclose(means[:2], [1.5, 6.5])
    assert np.isnan(means[2]) and float(gap) == 5.0
    with pytest.raises(ValueError, match=r"Group ids must lie in \[0, 2\)"):
        group_gap(jnp.ones(3), jnp.array([0, 1, 2]), 2)


def test_lime_adapter_recovers_linear_weights_and_flat_weights_are_reshaped():
    """LIME's weighted least squares on a noise-free linear model returns its weights (the ridge
    penalty 1e-6 is negligible), shaped like x, through the explainer adapter."""
    w = jnp.array([[0.5, -1.0], [2.0, 0.25]])
    model = lambda x: jnp.sum(x * w, axis=(1, 2))  # noqa: E731
    x = jax.random.normal(jax.random.key(5), (2, 2, 2))
    lime = lime_explainer(num_samples=64, ridge=1e-6)
    np.testing.assert_allclose(jax.jit(lambda x: lime(model, x, KEY))(x),
                               np.broadcast_to(w, x.shape), atol=1e-3)

    flat = weights_explainer(lambda model, x, key, scale: scale * jnp.ones((x.shape[0], 32)),
                             scale=2.0)
    np.testing.assert_array_equal(flat(linear, X, KEY), 2.0 * jnp.ones(X.shape))
    wrong = weights_explainer(lambda model, x, key: jnp.ones((x.shape[0], 31)))
    with pytest.raises(ValueError, match=r"expected one weight per feature"):
        wrong(linear, X, KEY)


def test_bad_input_gives_clear_errors():
    with pytest.raises(ValueError, match=r"attributions of shape \(3, 32\).*x's shape"):
        infidelity(linear, lambda m, x, k: x.reshape(3, -1), X, KEY)
    two = lambda x: jnp.stack([-linear(x), linear(x)], axis=1)  # noqa: E731
    with pytest.raises(ValueError, match=r"outside the model's 2 outputs"):
        vanilla_gradient(two, X, target=jnp.array([0, 2, 1]))
    with pytest.raises(ValueError, match=r"pass `target`"):
        gradient_x_input(two, X)
    for radius in (0.0, -1.0):
        with pytest.raises(ValueError, match=r"radius must be a finite number > 0"):
            max_sensitivity(linear, vanilla_gradient, X, KEY, radius=radius)
        with pytest.raises(ValueError, match=r"radius must be a finite number > 0"):
            local_lipschitz(linear, vanilla_gradient, X, KEY, radius=radius)
    with pytest.raises(ValueError, match=r"draws its noise from `key`"):
        smoothgrad(linear, X, None)
    with pytest.raises(ValueError, match=r"Square removal needs image inputs"):
        infidelity(lambda x: x.sum(1), weights, X[:, 0, 0], KEY, perturbation="square")
    with pytest.raises(ValueError, match=r"square_size must be at most"):
        infidelity(linear, weights, X, KEY, perturbation="square", square_size=5)
    with pytest.raises(ValueError, match=r"baseline must be a scalar or broadcast"):
        integrated_gradients(linear, X, baseline=jnp.zeros(3))
    with pytest.raises(ValueError, match=r"x must be a batch"):
        vanilla_gradient(lambda x: x, jnp.ones(3))
    with pytest.raises(ValueError, match=r"steps must be an int >= 1"):
        integrated_gradients(linear, X, steps=0)
