"""Properties of the pure metric functions (Frechet distance and its streaming statistics, the
toy and mixture metrics, likelihood and language-model summaries, the Inception Score from
class probabilities), of the data configs, toy distributions and small pipelines, and of
classifier-free guidance."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from flowjax import data as flowjax_data
from flowjax.guidance import classifier_free_guidance, guided_velocity
from flowjax.metrics import (
    FeatureStatistics,
    energy_distance,
    fraction_in_support,
    fraction_near_components,
    frechet_distance,
    generative_perplexity,
    inception_score_from_probs,
    negative_log_likelihood,
    perplexity_metrics,
    unigram_entropy,
)
from flowjax.paths import GaussianMixture

from .strategies import arrays, assert_finite, float32s, raises_naming, seeds


def _covariance(factor):
    return factor @ factor.T


@given(dim=st.sampled_from((1, 2, 4)), data=st.data())
def test_frechet_distance_is_a_squared_distance(dim, data):
    """d^2 >= 0, d^2(a, a) = 0 and d^2(a, b) = d^2(b, a) for means and PSD covariances (also
    singular ones), up to the documented precision: eigenvalues within round-off of 0 are
    dropped, which moves d^2 by at most about sqrt(d eps) times the covariances' scale per
    dimension."""
    mu1, mu2 = data.draw(arrays((dim,))), data.draw(arrays((dim,)))
    s1 = _covariance(data.draw(arrays((dim, dim)))).astype(np.float64)
    s2 = _covariance(data.draw(arrays((dim, dim)))).astype(np.float64)
    d = frechet_distance(mu1, s1, mu2, s2)
    scale = 1.0 + np.trace(s1) + np.trace(s2) + float(np.sum((mu1 - mu2) ** 2))
    tolerance = 4 * dim * math.sqrt(dim * np.finfo(np.float64).eps) * scale
    assert d >= -tolerance
    assert abs(frechet_distance(mu1, s1, mu1, s1)) <= tolerance
    assert math.isclose(d, frechet_distance(mu2, s2, mu1, s1), abs_tol=tolerance)


@given(
    defect=st.sampled_from(("mean shape", "covariance shape", "negative definite", "non-finite"))
)
def test_frechet_distance_checks_its_input(defect):
    mu, sigma = np.zeros(2), np.eye(2)
    arguments = dict(mu1=mu, sigma1=sigma, mu2=mu, sigma2=sigma)
    if defect == "mean shape":
        arguments["mu2"], argument = np.zeros(3), "mu2"
    elif defect == "covariance shape":
        arguments["sigma1"], argument = np.eye(3), "sigma1"
    elif defect == "negative definite":
        arguments["sigma1"], argument = -np.eye(2), "sigma1"
    else:
        arguments["sigma2"], argument = np.full((2, 2), np.nan), "sigma2"
    with raises_naming(ValueError, argument):
        frechet_distance(**arguments)


@given(
    sizes=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    dim=st.sampled_from((1, 3)),
    data=st.data(),
)
def test_feature_statistics_merge_like_concatenation(sizes, dim, data):
    parts = [data.draw(arrays((n, dim))).astype(np.float64) for n in sizes]
    merged = FeatureStatistics.empty(dim)
    for part in parts:
        merged = merged.update(part)
    whole = FeatureStatistics.from_features(np.concatenate(parts))
    assert merged.count == whole.count
    np.testing.assert_allclose(merged.mean, whole.mean, atol=1e-9)
    np.testing.assert_allclose(merged.m2, whole.m2, atol=1e-8)


@given(n=st.integers(1, 4), m=st.integers(1, 4), dim=st.sampled_from((1, 2)), data=st.data())
def test_energy_distance(n, m, dim, data):
    """>= 0 (a V-statistic of a negative-definite kernel) and 0 between a sample and itself."""
    x, y = data.draw(arrays((n, dim))), data.draw(arrays((m, dim)))
    assert energy_distance(x, y) >= -1e-9
    assert abs(energy_distance(x, x)) <= 1e-9


@given(defect=st.sampled_from(("empty x", "empty y", "unbatched", "dimensions")))
def test_energy_distance_checks_its_input(defect):
    x, y = np.zeros((3, 2)), np.ones((4, 2))
    argument = "x" if defect in ("empty x", "unbatched") else "y"
    if defect == "empty x":
        x = np.zeros((0, 2))
    elif defect == "empty y":
        y = np.zeros((0, 2))
    elif defect == "unbatched":
        x = np.zeros(3)
    else:
        y = np.ones((4, 3))
    with raises_naming(ValueError, argument):
        energy_distance(x, y)


@given(values=st.lists(st.floats(-50.0, 50.0), max_size=5))
def test_negative_log_likelihood_needs_two_values(values):
    """The mean and its standard error need at least two values; with them both are finite."""
    if len(values) < 2:
        with raises_naming(ValueError, "log_likelihood"):
            negative_log_likelihood(np.asarray(values))
        return
    out = negative_log_likelihood(np.asarray(values))
    assert math.isclose(out["nll_nats"], -float(np.mean(values)), abs_tol=1e-9)
    assert out["nll_nats_stderr"] >= 0.0 and math.isfinite(out["nll_nats_stderr"])


MIXTURE = GaussianMixture.isotropic([0.5, 0.5], [[0.0, 0.0], [3.0, 3.0]], 1.0)


@given(n=st.integers(0, 4), dim=st.sampled_from((1, 2, 3)), data=st.data())
def test_fraction_near_components(n, dim, data):
    samples = data.draw(arrays((n, dim)))
    if n == 0 or dim != 2:
        with raises_naming(ValueError, "samples"):
            fraction_near_components(MIXTURE, samples)
        return
    assert 0.0 <= fraction_near_components(MIXTURE, samples) <= 1.0


@given(n=st.integers(0, 4), data=st.data())
def test_fraction_in_support(n, data):
    samples = data.draw(arrays((n, 2), -5.0, 5.0))
    if n == 0:
        with raises_naming(ValueError, "samples"):
            fraction_in_support("checkerboard", samples)
        return
    fraction = fraction_in_support("checkerboard", samples)
    assert fraction == float(np.mean(np.asarray(flowjax_data.in_support("checkerboard", samples))))


@given(
    rows=st.integers(2, 6),
    classes=st.sampled_from((2, 3)),
    normalised=st.booleans(),
    data=st.data(),
)
def test_inception_score_from_probabilities(rows, classes, normalised, data):
    """Between 1 and the number of classes for rows of class probabilities; rows that do not sum
    to one are refused."""
    raw = data.draw(arrays((rows, classes), 0.01, 1.0)).astype(np.float64)
    probs = raw / raw.sum(1, keepdims=True) if normalised else raw * 2.0
    if not normalised:
        with raises_naming(ValueError, "probabilities"):
            inception_score_from_probs(probs, num_splits=2)
        return
    mean, std = inception_score_from_probs(probs, num_splits=2)
    assert 1.0 - 1e-9 <= mean <= classes + 1e-9 and std >= 0.0


@given(
    n=st.integers(0, 3),
    length=st.integers(0, 3),
    vocab=st.sampled_from((2, 5)),
    data=st.data(),
)
def test_language_model_summaries(n, length, vocab, data):
    """Unigram entropies lie in [0, log L]; the generative perplexity of a uniform judge is the
    vocabulary size; empty samples are refused by the perplexity, which needs tokens."""
    samples = data.draw(
        arrays((n, length), elements=st.integers(0, vocab - 1)).map(lambda a: a.astype(np.int64))
    )
    entropy = unigram_entropy(samples)
    assert entropy.shape == (n,)
    assert np.all((entropy >= 0.0) & (entropy <= math.log(max(length, 1)) + 1e-12))
    judge = lambda s: np.full(len(s), -s.shape[1] * math.log(vocab))
    if n == 0 or length == 0:
        with raises_naming(ValueError, "samples"):
            generative_perplexity(judge, samples, judge_vocab_size=vocab)
        return
    out = generative_perplexity(judge, samples, judge_vocab_size=vocab)
    assert math.isclose(out["gen_perplexity"], vocab, rel_tol=1e-9)
    metrics = perplexity_metrics(np.full(max(n, 2), -length * math.log(vocab)), length)
    assert math.isclose(metrics["perplexity"], vocab, rel_tol=1e-9)


TOY_NAMES = flowjax_data.TOY_DISTRIBUTIONS
option_values = st.one_of(st.integers(-1, 3), st.booleans(), st.sampled_from((1.0, None, "2")))


@given(
    name=st.sampled_from(TOY_NAMES),
    option=st.sampled_from(("worker_count", "num_threads", "prefetch_buffer_size")),
    value=option_values,
)
def test_parse_config_of_toy_configs(name, option, value):
    """Counts are non-negative ints (not booleans); anything else is refused naming the key."""
    config = {"source": "toy", "name": name, option: value}
    valid = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if valid:
        spec = flowjax_data.parse_config(config)
        assert spec[option] == value and spec["name"] == name
        assert flowjax_data.event_shape(config) == flowjax_data.toy_event_shape(name)
    else:
        with raises_naming(ValueError, option):
            flowjax_data.parse_config(config)


@given(
    key=st.sampled_from(("num_epochs", "num_classes")),
    value=option_values,
)
def test_parse_config_of_array_configs(key, value):
    config = {"source": "arrays", "path": "data.npz", key: value}
    valid = value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1)
    if valid:
        assert flowjax_data.parse_config(config)[key] == value
    else:
        with raises_naming(ValueError, key):
            flowjax_data.parse_config(config)


@given(name=st.sampled_from(TOY_NAMES), n=st.sampled_from((0, 1, 3)), seed=seeds)
def test_toys_sample_their_event_shape(name, n, seed):
    x = flowjax_data.sample_toy(name, n, np.random.default_rng(seed))
    assert x.shape == (n, *flowjax_data.toy_event_shape(name))
    assert x.dtype == (np.int32 if name in flowjax_data.DISCRETE_TOYS else np.float32)
    assert np.all(np.isfinite(x))
    if name in ("checkerboard", "discrete_checkerboard"):
        assert flowjax_data.in_support(name, x).shape == (n,)
    if name in (
        "checkerboard",
        "8gaussians",
        "torus_gaussians",
        "sphere_vmf",
        "discrete_checkerboard",
    ):
        log_p = np.asarray(flowjax_data.log_density(name, x))
        assert log_p.shape == (n,) and not np.any(np.isnan(log_p))


@given(
    name=st.sampled_from(TOY_NAMES),
    defect=st.sampled_from(("negative n", "fractional n", "no generator", "negative seed")),
)
def test_toy_sampling_checks_its_input(name, defect):
    if defect == "negative seed":
        with raises_naming(ValueError, "seed"):
            flowjax_data.toy_batch(name, 2, seed=-1, index=0)
        return
    n, rng, exception, argument = 2, np.random.default_rng(0), ValueError, "n"
    if defect == "negative n":
        n = -1
    elif defect == "fractional n":
        n = 2.5
    else:
        rng, exception, argument = 0, TypeError, "rng"
    with raises_naming(exception, argument):
        flowjax_data.sample_toy(name, n, rng)


@given(
    name=st.sampled_from(("moons", "sphere_vmf", "discrete_checkerboard")),
    local_batch=st.sampled_from((1, 2)),
    process_count=st.sampled_from((1, 2)),
    seed=st.integers(0, 100),
)
def test_build_dataset_splits_global_batches_between_processes(
    name, local_batch, process_count, seed
):
    """The processes' rows of a global batch, concatenated, are the global batch of one process."""
    config = {"source": "toy", "name": name}
    global_batch = local_batch * process_count
    whole = next(flowjax_data.build_dataset(config, global_batch_size=global_batch, seed=seed))["x"]
    rows = [
        next(
            flowjax_data.build_dataset(
                config,
                global_batch_size=global_batch,
                seed=seed,
                process_index=p,
                process_count=process_count,
            )
        )["x"]
        for p in range(process_count)
    ]
    assert whole.shape == (global_batch, *flowjax_data.toy_event_shape(name))
    np.testing.assert_array_equal(np.concatenate(rows), whole)


@given(w=float32s(-2.0, 5.0), data=st.data())
def test_classifier_free_guidance_is_affine_in_the_scale(w, data):
    conditional = data.draw(arrays((3, 2)))
    unconditional = data.draw(arrays((3, 2)))
    out = np.asarray(classifier_free_guidance(conditional, unconditional, w), np.float64)
    expected = (1.0 + w) * conditional.astype(np.float64) - w * unconditional
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(
        classifier_free_guidance(conditional, unconditional, 0.0), conditional
    )


@given(batch=st.sampled_from((0, 1, 3)), w=float32s(0.0, 3.0), data=st.data())
def test_guided_velocity_combines_two_evaluations(batch, w, data):
    def velocity(x, t, label):
        return x * (1.0 + label[:, None]) + t

    x = data.draw(arrays((batch, 2)))
    labels = data.draw(
        arrays((batch,), elements=st.integers(0, 3)).map(lambda a: a.astype(np.int32))
    )
    guided = guided_velocity(velocity, w, null_label=0)(
        jnp.asarray(x), 0.5, label=jnp.asarray(labels)
    )
    expected = classifier_free_guidance(
        velocity(x, 0.5, labels), velocity(x, 0.5, np.zeros_like(labels)), w
    )
    np.testing.assert_allclose(guided, expected, rtol=1e-5, atol=1e-5)
    assert_finite(guided)


@given(defect=st.sampled_from(("shapes", "output batch", "scalar x")))
def test_guidance_checks_its_input(defect):
    if defect == "shapes":
        with raises_naming(ValueError, "unconditional"):
            classifier_free_guidance(np.ones((2, 3)), np.ones((2, 4)), 1.0)
        return
    model = (lambda x, t, label: x[:1]) if defect == "output batch" else (lambda x, t, label: x)
    x = np.ones((2, 3), np.float32) if defect == "output batch" else np.float32(1.0)
    with raises_naming(ValueError, "velocity_fn" if defect == "output batch" else "x"):
        guided_velocity(model, 1.0, null_label=0)(x, 0.5, label=np.array([1, 2]))
