"""Generator matching: the CondOT jump model (KFE by quadrature), exact-posterior samplers against
the data (KS tests), equal gradients of the conditional and marginal losses, the samplers'
survival / mixed / superposition rules, the binned image head, bad input and the trainer."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st
from flax import nnx
from train_testing import repo_config, set_field

from flowjax import losses, main, models, paths, solvers
from flowjax.data import toy
from flowjax.paths import jump
from flowjax.solvers import Generator
from flowjax.train import validate_config

W = np.asarray(toy.MIXTURE_1D_WEIGHTS)
M = np.asarray(toy.MIXTURE_1D_MEANS)
S = np.asarray(toy.MIXTURE_1D_STDS)
MIXTURE = paths.GaussianMixture.isotropic(jnp.asarray(W), jnp.asarray(M[:, None]), jnp.asarray(S))


def mixture_cdf(y: np.ndarray, t: float = 1.0) -> np.ndarray:
    """CDF of the CondOT marginal p_t = sum_k w_k N(t m_k, t^2 s_k^2 + (1 - t)^2)."""
    sd = np.sqrt(t**2 * S**2 + (1 - t) ** 2)
    return (W * st.norm.cdf((np.asarray(y)[:, None] - t * M) / sd)).sum(1)


# The CondOT jump model ----------------------------------------------------------------------


@pytest.mark.parametrize("z,t", [(1.3, 0.4), (-0.7, 0.05), (2.5, 0.9), (0.0, 0.6)])
def test_jump_model_satisfies_the_kolmogorov_forward_equation(z, t):
    """d/dt p_t(x|z) = J_t(x) int lambda_t p_t - lambda_t(x) p_t(x), by quadrature in float64."""
    with jax.enable_x64(True):
        s = 1.0 - t

        def density(x, tt):
            return jnp.exp(-0.5 * ((x - tt * z) / (1 - tt)) ** 2) / ((1 - tt) * jnp.sqrt(2 * jnp.pi))

        ys = jnp.linspace(t * z - 14 * s, t * z + 14 * s, 100_001, dtype=jnp.float64)
        p = density(ys, t)
        rate = jump.condot_scaled_rate(ys, z, t) / s
        target = jump.condot_jump_density(ys, z, t)
        assert float(jnp.trapezoid(target, ys)) == pytest.approx(1.0, abs=1e-7)
        outflow = jnp.trapezoid(rate * p, ys)
        dp_dt = jax.vmap(jax.grad(density, argnums=1), (0, None))(ys, jnp.float64(t))
        residual = dp_dt - (target * outflow - rate * p)
        assert float(jnp.max(jnp.abs(residual))) < 1e-6
        # lambda = [k]_+ / (1 - t)^3 with the k of the paper.
        np.testing.assert_allclose(rate, jnp.maximum(jump.condot_k(ys, z, t), 0) / s**3, atol=1e-9)


def test_jump_target_sampler_and_bins_follow_its_cdf():
    z = jnp.full((20_000,), 0.8)
    draws = np.asarray(jump.condot_jump_sample(jax.random.key(0), z, 0.3))
    cdf = lambda y: np.asarray(jump.condot_jump_cdf(jnp.asarray(y, jnp.float32), 0.8, 0.3))
    assert st.kstest(draws, cdf).pvalue > 0.01
    edges = jump.bin_edges(-1.0, 2.0, 12)
    probs = jump.condot_jump_bin_probs(jnp.asarray([0.8]), jnp.asarray([0.3]), edges)[0]
    assert float(probs.sum()) == pytest.approx(1.0, abs=1e-6)
    inner = np.diff(cdf(np.asarray(edges)))[1:-1]
    np.testing.assert_allclose(probs[1:-1], inner, atol=1e-6)


# Exact-posterior samplers -------------------------------------------------------------------


def _exact_generators():
    marginal_jump = paths.MixtureJumpGenerator(MIXTURE)
    path = paths.CondOTProbPath()

    def flow(x, t):
        return Generator(velocity=paths.analytic.marginal_velocity(path, MIXTURE, x, t))

    def jumps(x, t):
        return Generator(
            jump_rate=marginal_jump.scaled_rate(x, t) / (1 - t),
            jump_target=lambda key: marginal_jump.sample_target(key, x, t),
        )

    return {"flow": flow, "jump": jumps, "superposition": solvers.superpose([flow, jumps], [0.5, 0.5])}


def _exact_samples(name, num, seed, steps=200):
    fn = _exact_generators()[name]
    x0 = jax.random.normal(jax.random.key(100 + seed), (num, 1))
    run = jax.jit(
        lambda key, x: solvers.generator_sample(key, fn, x, step_size=1 / steps, time_power=2.0)
    )
    return np.asarray(run(jax.random.key(seed), x0))[:, 0]


@pytest.mark.parametrize("name", ["flow", "jump", "superposition"])
def test_exact_posterior_samplers_reproduce_the_data_small(name):
    """n = 2,000 (fast); the n = 20,000 version is marked slow."""
    samples = _exact_samples(name, 2_000, seed=1)
    assert st.kstest(samples, mixture_cdf).pvalue > 0.01


@pytest.mark.slow
@pytest.mark.parametrize("name", ["flow", "jump", "superposition"])
def test_exact_posterior_samplers_reproduce_the_data(name):
    # 1,600 steps: the jump-only Euler sampler's error in the CDF is about 0.01 at 100-400 steps,
    # the size of the test's 1% critical value at this n (experiments/generator_matching).
    samples = _exact_samples(name, 20_000, seed=2, steps=1_600)
    assert st.kstest(samples, mixture_cdf).pvalue > 0.01


def test_exact_jump_process_has_the_marginal_at_an_intermediate_time():
    fn = _exact_generators()["jump"]
    x0 = jax.random.normal(jax.random.key(5), (2_000, 1))
    x = jax.jit(
        lambda x: solvers.generator_sample(
            jax.random.key(6), fn, x, time_grid=(0.0, 0.6), step_size=0.02
        )
    )(x0)
    assert st.kstest(np.asarray(x)[:, 0], lambda y: mixture_cdf(y, 0.6)).pvalue > 0.01


def _bayes_posterior(x: float, t: float, zs: np.ndarray) -> np.ndarray:
    """p(z | x_t = x) on a fine grid of z, by Bayes' rule (independent of flowjax)."""
    prior = (W * st.norm.pdf((zs[:, None] - M) / S) / S).sum(1)
    post = prior * st.norm.pdf(x, t * zs, 1 - t)
    return post / np.trapezoid(post, zs)


def test_marginal_jump_rate_is_the_posterior_expectation_of_the_conditional_rate():
    zs = np.linspace(-8.0, 8.0, 20_001)
    xs = np.asarray([-4.0, -1.0, 0.3, 2.2])
    generator = paths.MixtureJumpGenerator(MIXTURE)
    for t in (0.0, 0.3, 0.8, 0.95):
        exact = np.asarray(generator.scaled_rate(jnp.asarray(xs[:, None]), t))[:, 0]
        rates = np.asarray(jump.condot_scaled_rate(xs[:, None], jnp.asarray(zs)[None], t))
        expected = [np.trapezoid(_bayes_posterior(x, t, zs) * r, zs) for x, r in zip(xs, rates)]
        np.testing.assert_allclose(exact, expected, rtol=2e-4, atol=2e-5)


def test_marginal_jump_target_is_the_rate_weighted_mixture_of_conditional_targets():
    x, t = -1.5, 0.7
    zs = np.linspace(-8.0, 8.0, 1_601)
    tilt = _bayes_posterior(x, t, zs) * np.asarray(jump.condot_scaled_rate(x, jnp.asarray(zs), t))
    tilt = tilt / tilt.sum()

    def cdf(y):
        conditional = jump.condot_jump_cdf(jnp.asarray(y)[:, None], jnp.asarray(zs)[None], t)
        return np.asarray(conditional) @ tilt

    generator = paths.MixtureJumpGenerator(MIXTURE)
    draws = generator.sample_target(jax.random.key(0), jnp.full((5_000, 1), x), t)
    assert st.kstest(np.asarray(draws)[:, 0], cdf).pvalue > 0.01


# Conditional vs marginal generator matching ---------------------------------------------------


def test_conditional_and_marginal_losses_have_equal_gradients():
    """The posterior average of the conditional loss's gradient (over Gauss-Hermite nodes of
    z | x_t) equals the gradient of the marginal loss, whose flow target is the closed-form
    marginal velocity of `flowjax.paths.analytic` and whose jump target (rate and bin masses) is
    the posterior average over the same nodes."""
    edges = jump.bin_edges(-5.0, 5.0, 16)
    model = models.GeneratorMLP(1, num_bins=16, hidden_dim=16, num_layers=2, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model)
    x_t = jnp.linspace(-3.0, 3.0, 5)[:, None]
    t = jnp.full((5,), 0.55)
    marginal_jump = paths.MixtureJumpGenerator(MIXTURE, num_nodes=8)
    z, weights = marginal_jump.posterior_nodes(x_t, 0.55)  # (B, K, N, 1), (B, K, N)
    rate = jnp.einsum("bkn,bknd->bd", weights, jump.condot_scaled_rate(x_t[:, None, None], z, 0.55))
    z, weights = z.reshape(5, -1).T, weights.reshape(5, -1).T  # (K N, B)

    def conditional(params):
        net = nnx.merge(graphdef, params)
        x_1 = z.reshape(-1, 1, 1)  # every (node, example) pair as a batch of one
        x_0 = (jnp.broadcast_to(x_t[None], z.shape + (1,)).reshape(-1, 1, 1) - 0.55 * x_1) / 0.45
        per_pair = jax.vmap(
            lambda x0, x1: losses.generator_matching_loss(net, x0, x1, t[:1], edges=edges)
        )(x_0, x_1)
        return jnp.sum(per_pair * weights.reshape(-1)) / 5

    def marginal(params):
        out = nnx.merge(graphdef, params)(x_t, t)
        u = paths.analytic.marginal_velocity(paths.CondOTProbPath(), MIXTURE, x_t, 0.55)
        probs = marginal_jump.bin_probs(x_t, 0.55, edges)
        per = losses.flow_bregman(out.velocity, u) + losses.jump_bregman(
            out.scaled_rate, out.logits, rate, probs
        )
        return per.sum() / 5

    g_cond = jax.tree.leaves(jax.jit(jax.grad(conditional))(params))
    g_marg = jax.tree.leaves(jax.jit(jax.grad(marginal))(params))
    for a, b in zip(g_cond, g_marg):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-5)


def test_jump_bregman_is_zero_at_the_target_and_positive_elsewhere():
    probs = jax.nn.softmax(jnp.asarray([[0.2, -1.0, 0.5]]), -1)
    logits = jnp.log(probs)
    rate = jnp.asarray([1.7])
    at_target = losses.jump_bregman(rate, logits, rate, probs)
    assert float(at_target[0]) == pytest.approx(0.0, abs=1e-6)
    off = losses.jump_bregman(jnp.asarray([1.0]), logits + jnp.asarray([1.0, 0, 0]), rate, probs)
    assert float(off[0]) > 0.0


# Sampler rules ---------------------------------------------------------------------------


def _constant_jump(rate, destination):
    def fn(x, t):
        return Generator(
            jump_rate=jnp.full_like(x, rate), jump_target=lambda key: jnp.full_like(x, destination)
        )

    return fn


def test_exact_survival_gives_the_no_jump_probability_exp_minus_h_lambda():
    x0 = jnp.zeros((20_000, 1))
    exact = solvers.generator_sample(jax.random.key(0), _constant_jump(2.0, 1.0), x0)
    linear = solvers.generator_sample(jax.random.key(0), _constant_jump(2.0, 1.0), x0, survival="linear")
    # One step of h = 1: P(no jump) = exp(-2) exactly, and min(h lambda, 1) = 1 jumps all.
    stayed = float(jnp.mean(exact == 0.0))
    assert abs(stayed - math.exp(-2.0)) < 4 * math.sqrt(math.exp(-2.0) / 20_000)
    assert bool(jnp.all(linear == 1.0))


def test_mixed_sampler_integrates_the_flow_with_the_higher_order_method():
    grow = lambda x, t: Generator(velocity=x)  # dx/dt = x
    x0 = jnp.ones((3, 1))
    for method, factor in [("euler", 1.1), ("midpoint", 1.105), ("heun", 1.105)]:
        x = solvers.generator_sample(
            jax.random.key(0), grow, x0, step_size=0.1, flow_method=method
        )
        np.testing.assert_allclose(x, factor**10, rtol=1e-5)


def test_diffusion_part_adds_variance_sigma_squared_t():
    fn = lambda x, t: Generator(velocity=jnp.ones_like(x), diffusion=jnp.full_like(x, 0.5))
    x = solvers.generator_sample(jax.random.key(1), fn, jnp.zeros((20_000, 1)), step_size=0.1)
    assert float(jnp.mean(x)) == pytest.approx(1.0, abs=0.02)
    assert float(jnp.var(x)) == pytest.approx(0.25, abs=0.015)


def test_superposition_scales_rates_and_mixes_targets():
    combined = solvers.superpose(
        [_constant_jump(1.0, -1.0), _constant_jump(3.0, 2.0), lambda x, t: Generator(velocity=x)],
        [0.5, 0.25, 0.25],
    )
    g = combined(jnp.ones((40_000, 1)), 0.0)
    np.testing.assert_allclose(g.jump_rate, 0.5 * 1.0 + 0.25 * 3.0)
    np.testing.assert_allclose(g.velocity, 0.25)
    draws = g.jump_target(jax.random.key(3))
    # Destination 2 with probability 0.75 / 1.25 = 0.6.
    assert float(jnp.mean(draws == 2.0)) == pytest.approx(0.6, abs=0.01)
    assert bool(jnp.all((draws == 2.0) | (draws == -1.0)))


def test_binned_jump_draws_bins_by_their_probabilities_and_stays_inside():
    logits = jnp.log(jnp.asarray([0.1, 0.0, 0.6, 0.3]) + 1e-30)
    target = solvers.BinnedJump(jnp.broadcast_to(logits, (50_000, 4)), -2.0, 2.0)
    draws = np.asarray(target(jax.random.key(0)))
    counts = np.histogram(draws, bins=np.linspace(-2, 2, 5))[0]
    assert counts[1] == 0
    assert st.chisquare(counts[[0, 2, 3]], 50_000 * np.asarray([0.1, 0.6, 0.3])).pvalue > 0.01


def test_binned_head_on_image_features_and_one_sampler_step():
    """Per-pixel rate + bins from a (B, H, W, F) map: with zero weights, the bias sets
    rate = softplus(b_0) and the bin logits; the jump loss then has its closed form and one step
    with a huge rate lands every pixel in the favoured bin."""
    head = models.BinnedJumpHead(in_features=8, channels=3, num_bins=4, rngs=nnx.Rngs(0))
    head.proj.kernel[...] = jnp.zeros_like(head.proj.kernel[...])
    bias = jnp.tile(jnp.asarray([3.0, -9.0, -9.0, 9.0, -9.0]), 3)
    head.proj.bias[...] = bias
    out = head(jnp.ones((2, 5, 6, 8)))
    assert out.scaled_rate.shape == (2, 5, 6, 3) and out.logits.shape == (2, 5, 6, 3, 4)
    np.testing.assert_allclose(out.scaled_rate, math.log1p(math.exp(3.0)), rtol=1e-6)
    uniform = jnp.full((2, 5, 6, 3, 4), 0.25)
    loss = losses.jump_bregman(out.scaled_rate, out.logits, jnp.ones((2, 5, 6, 3)), uniform)
    log_q = jax.nn.log_softmax(jnp.asarray([-9.0, -9.0, 9.0, -9.0]))
    rho = math.log1p(math.exp(3.0))
    expected = -math.log(rho) - 1 + rho + float(jnp.sum(0.25 * (jnp.log(0.25) - log_q)))
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    network = lambda x, t: head(jnp.ones((*x.shape[:3], 8)))
    generator = solvers.network_generator(network, -1.0, 1.0)
    x = solvers.generator_sample(
        jax.random.key(0), generator, jnp.zeros((2, 5, 6, 3)), time_grid=(0.0, 0.999)
    )
    assert bool(jnp.all((x >= 0.0) & (x < 0.5)))  # bin 2 of 4 on [-1, 1]


# Bad input ---------------------------------------------------------------------------------


def test_bad_input_raises_clear_errors():
    flow = lambda x, t: Generator(velocity=x)
    with pytest.raises(ValueError, match="sum to 1"):
        solvers.superpose([flow, flow], [0.5, 0.6])
    with pytest.raises(ValueError, match="sum to 1"):
        solvers.superpose([flow, flow], [1.5, -0.5])
    with pytest.raises(ValueError, match="one per generator"):
        solvers.superpose([flow, flow], [1.0])
    with pytest.raises(ValueError, match="jump_rate must be >= 0"):
        Generator(jump_rate=jnp.asarray([0.5, -1.0]), jump_target=lambda k: jnp.zeros(2))
    with pytest.raises(ValueError, match="both jump_rate and jump_target"):
        Generator(jump_rate=jnp.ones(2))
    with pytest.raises(ValueError, match="survival"):
        solvers.generator_sample(jax.random.key(0), flow, jnp.zeros((2, 1)), survival="poisson")
    with pytest.raises(ValueError, match="high > low"):
        solvers.BinnedJump(jnp.zeros((2, 4)), 1.0, -1.0)
    # Inside a compiled sampler a negative rate cannot raise: its coordinates become NaN.
    negative = lambda x, t: Generator(jump_rate=-jnp.ones_like(x), jump_target=lambda k: x)
    x = jax.jit(lambda x: solvers.generator_sample(jax.random.key(0), negative, x))(jnp.zeros((3, 1)))
    assert bool(jnp.all(jnp.isnan(x)))


# Trainer -----------------------------------------------------------------------------------


BAD_CONFIGS = {
    "jump sampler of a flow model": (
        lambda c: set_field("sample", "generator", "jump")(set_field("path", "parts", "flow")(c)),
        "needs the jump part",
    ),
    "t_max of 1": (set_field("loss", "t_max", 1.0), "t_max must be < 1"),
    "unknown sampler": (set_field("sample", "generator", "mixture"), "'sample.generator' must be one of"),
    "time power below 1": (set_field("sample", "time_power", 0.5), "time_power must be >= 1"),
    "superposition weight above 1": (set_field("sample", "flow_weight", 1.5), "sample.flow_weight"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_generator_matching_configs_are_refused(case):
    mutate, message = BAD_CONFIGS[case]
    with pytest.raises(ValueError, match=message):
        validate_config(mutate(repo_config("configs/generator_matching/mixture1d.py", "smoke")))


def test_mixture1d_config_trains_samples_and_evaluates(tmp_path):
    config = repo_config("configs/generator_matching/mixture1d.py", "smoke")
    config.train.num_steps = 10
    main.run(config, str(tmp_path), "train")
    samples = np.load(tmp_path / "samples.npy")
    assert samples.shape == (512, 1) and np.all(np.isfinite(samples))
    assert np.load(tmp_path / "trajectories.npy").shape == (6, 64, 1)
    with open(tmp_path / "sample_metrics.json") as f:
        settings = json.load(f)
    assert settings["generator"] == "superposition" and settings["survival"] == "exact"
    with open(tmp_path / "metrics.json") as f:
        metrics = json.load(f)
    # Barely trained, the flow part is still close to the identity map of N(0, 1): its NLL is
    # near the source's entropy 1.42 nats, far from the data's.
    assert np.isfinite(metrics["nll_nats"]) and metrics["energy_distance"] > 0.0


@pytest.mark.slow
def test_checkerboard_config_trains_with_the_mixed_sampler(tmp_path):
    config = repo_config("configs/generator_matching/checkerboard.py", "smoke")
    config.sample.flow_method = "midpoint"
    main.run(config, str(tmp_path), "train")
    assert np.load(tmp_path / "samples.npy").shape == (512, 2)
    with open(tmp_path / "metrics.json") as f:
        assert 0.0 <= json.load(f)["fraction_in_support"] <= 1.0
