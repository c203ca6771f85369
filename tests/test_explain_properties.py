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
    w = np.broadcast_to(W, X.shape)
    np.testing.assert_allclose(vanilla_gradient(linear, X), w, rtol=1e-6)
    np.testing.assert_allclose(gradient_x_input(linear, X), w * X, rtol=1e-6)
    baseline = jnp.full(SHAPE, 0.3)
    for rule, steps in (("trapezoid", 1), ("riemann", 3)):
        ig = integrated_gradients(linear, X, baseline=baseline, steps=steps, rule=rule)
        np.testing.assert_allclose(ig, w * (X - baseline), rtol=1e-5, atol=1e-6)
    for sigma in (0.0, 0.2, 3.0):
        sg = smoothgrad(linear, X, KEY, sigma=sigma, samples=4)
        np.testing.assert_allclose(sg, w, rtol=1e-6)


@pytest.mark.parametrize("perturbation", ["gaussian", "square"])
def test_linear_model_weights_have_zero_infidelity(perturbation):
    """f(x) - f(x - I) = I . w for every I, so phi = w has INFD 0 (to float32 rounding), while a
    wrong explanation does not."""
    infd = infidelity(
        linear, weights, X, KEY, perturbation=perturbation, samples=8, sigma=2.0, square_size=3
    )
    scale = float(jnp.mean(linear(X) ** 2))
    assert infd.shape == (3,) and float(jnp.max(infd)) < 1e-10 * max(scale, 1.0) + 1e-10
    wrong = infidelity(linear, lambda m, x, k: -weights(m, x, k), X, KEY, perturbation=perturbation,
                       samples=8, sigma=2.0, square_size=3)
    assert float(jnp.min(wrong)) > 1e-2


def test_infidelity_is_jittable_and_selects_a_target_class():
    """A (B, 2) model whose class 1 is the linear model: its gradient is w, and under jit the
    linear weights still have zero infidelity."""
    two = lambda x: jnp.stack([-linear(x), linear(x)], axis=1)  # noqa: E731
    np.testing.assert_allclose(
        vanilla_gradient(two, X, target=jnp.array([1, 1, 1])), np.broadcast_to(W, X.shape),
        rtol=1e-6,
    )
    np.testing.assert_allclose(vanilla_gradient(two, X, target=0), -np.broadcast_to(W, X.shape),
                               rtol=1e-6)
    run = jax.jit(lambda x, key: infidelity(two, weights, x, key, samples=4, target=1))
    assert float(jnp.max(run(X, KEY))) < 1e-8


def test_integrated_gradients_completeness_and_convergence():
    """sum_i phi_i -> f(x) - f(x'): the trapezoid error falls about 16-fold from 8 to 32 steps,
    the right Riemann error about 4-fold."""
    a = jax.random.normal(jax.random.key(3), (5, 7))

    def f(x):
        return jnp.sum(jnp.tanh(x @ a) ** 2, axis=1)

    x = jax.random.normal(jax.random.key(4), (2, 5))
    exact = f(x) - f(jnp.zeros_like(x))
    errors = {
        (rule, steps): float(jnp.max(jnp.abs(
            jnp.sum(integrated_gradients(f, x, steps=steps, rule=rule), axis=1) - exact
        )))
        for rule in ("trapezoid", "riemann")
        for steps in (8, 32)
    }
    assert errors["trapezoid", 32] < errors["trapezoid", 8] / 8 and errors["trapezoid", 32] < 1e-2
    assert errors["riemann", 32] < errors["riemann", 8] / 2.5


def test_constant_explanation_is_insensitive_and_sensitivity_of_a_known_explainer():
    """phi = const: max-sensitivity and the local Lipschitz estimate are 0. Gradient x input of
    f = w . x with |w_i| = c has phi(x') - phi(x) = w * d, so the Lipschitz ratio is c exactly
    and the max-sensitivity c ||d|| <= c r sqrt(n)."""
    constant = lambda model, x, key: jnp.ones_like(x)  # noqa: E731
    for relative in (False, True):
        np.testing.assert_array_equal(
            max_sensitivity(linear, constant, X, KEY, radius=0.1, samples=3, relative=relative), 0
        )
    np.testing.assert_array_equal(local_lipschitz(linear, constant, X, KEY, radius=0.1, samples=3), 0)
    c = 0.7
    signs = c * jnp.sign(W)
    model = lambda x: jnp.sum(x * signs, axis=(1, 2, 3))  # noqa: E731
    lipschitz = local_lipschitz(model, gradient_x_input, X, KEY, radius=0.1, samples=3)
    np.testing.assert_allclose(lipschitz, c, rtol=1e-5)
    sensitivity = max_sensitivity(model, gradient_x_input, X, KEY, radius=0.1, samples=3)
    assert float(jnp.max(sensitivity)) <= c * 0.1 * np.sqrt(W.size) + 1e-6


def test_gini_sparsity_and_entropy_by_hand():
    n = 5
    one_hot, uniform = jnp.eye(n)[None, 2], jnp.full((1, n), -0.3)
    np.testing.assert_allclose(gini_sparsity(one_hot), (n - 1) / n, rtol=1e-6)
    np.testing.assert_allclose(gini_sparsity(uniform), 0.0, atol=1e-6)
    np.testing.assert_allclose(attribution_entropy(uniform), np.log(n), rtol=1e-6)
    np.testing.assert_allclose(attribution_entropy(one_hot), 0.0, atol=1e-7)
    # |phi| = (0, 0, 1, 1): Gini = 1 - 2 (0.5 * 1.5 / 4 + 0.5 * 0.5 / 4) = 1/2, entropy log 2;
    # both per example over all feature axes, and invariant to sign and scale.
    pair = jnp.array([[[0.0, -2.0], [2.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]])
    np.testing.assert_allclose(gini_sparsity(pair), [0.5, 0.0], atol=1e-6)
    np.testing.assert_allclose(attribution_entropy(pair), [np.log(2), np.log(4)], rtol=1e-6)


def test_deletion_and_insertion_curves_by_hand():
    """f = (1, 2, 3) . x at x = (4, 1, 1), gradient x input (4, 2, 3), baseline 0: deletion
    removes 4, then 3, then 2: f = 9, 5, 2, 0 and area (1/3)(7 + 3.5 + 1) = 11.5 / 3; insertion
    gives 0, 4, 7, 9 and 15.5 / 3. Two features per step: 9, 2, 0 at 0, 2/3, 1, area 4."""
    w = jnp.array([1.0, 2.0, 3.0])
    f = lambda x: x @ w  # noqa: E731
    x = jnp.array([[4.0, 1.0, 1.0]])
    deletion = deletion_curve(f, gradient_x_input, x)
    np.testing.assert_allclose(deletion.outputs, [[9, 5, 2, 0]], rtol=1e-6)
    np.testing.assert_allclose(deletion.fractions, [0, 1 / 3, 2 / 3, 1], rtol=1e-6)
    np.testing.assert_allclose(deletion.area(), [11.5 / 3], rtol=1e-6)
    insertion = insertion_curve(f, gradient_x_input, x)
    np.testing.assert_allclose(insertion.outputs, [[0, 4, 7, 9]], rtol=1e-6)
    np.testing.assert_allclose(insertion.area(), [15.5 / 3], rtol=1e-6)
    coarse = deletion_curve(f, gradient_x_input, x, features_per_step=2)
    np.testing.assert_allclose(coarse.outputs, [[9, 2, 0]], rtol=1e-6)
    np.testing.assert_allclose(coarse.area(), [4.0], rtol=1e-6)


def test_deletion_curve_of_a_linear_model_removes_the_largest_contribution_first():
    """With positive contributions w_i x_i the curve falls monotonically to f(baseline) = b and its
    drops shrink: each step removes the largest remaining contribution."""
    x = jnp.abs(X) + 0.1
    model = lambda z: jnp.sum(z * jnp.abs(W), axis=(1, 2, 3)) + 0.5  # noqa: E731
    outputs = deletion_curve(model, gradient_x_input, x).outputs
    drops = -jnp.diff(outputs, axis=1)
    assert outputs.shape == (3, W.size + 1)
    assert bool(jnp.all(drops > 0)) and bool(jnp.all(jnp.diff(drops, axis=1) <= 1e-6))
    np.testing.assert_allclose(outputs[:, 0], model(x), rtol=1e-6)
    np.testing.assert_allclose(outputs[:, -1], 0.5, rtol=1e-6)


def test_group_gap_by_hand():
    means, gap = group_gap(jnp.array([1.0, 2.0, 3.0, 10.0]), jnp.array([0, 0, 1, 1]), 3)
    np.testing.assert_allclose(means[:2], [1.5, 6.5])
    assert np.isnan(means[2]) and float(gap) == 5.0
    with pytest.raises(ValueError, match=r"Group ids must lie in \[0, 2\)"):
        group_gap(jnp.ones(3), jnp.array([0, 1, 2]), 2)


def test_weights_explainer_reshapes_flat_weights():
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
