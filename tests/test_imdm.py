"""The Infinite Mask Diffusion Model: embedding, sampler, loading, SDTT and ReDi."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flowjax import data, losses, metrics, models, paths, solvers
from flowjax.train import ConfigError, load_config_file, train, validate_config
from flowjax.train.couplings import write_couplings
from flowjax.train.init_from import load_init_weights
from flowjax.train.objectives.imdm import per_example_noise
from flowjax.train.setup import setup_run
from flowjax.train.state import init_train_state

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "configs", "imdm", "synthetic.py")
V, L = 8, 4  # the smoke size of configs/imdm/synthetic.py
PATH = paths.MixtureDiscreteProbPath(
    paths.MaskedDiffusionScheduler("linear", 1e-3, 0.0), paths.MaskSource(V + 1)
)


def smoke(stage: str, model: str, **overrides):
    config = load_config_file(CONFIG, f"{stage},{model},smoke")
    config.evaluate.after_training = False
    for key, value in overrides.items():
        section, name = key.split(".")
        config[section][name] = value
    return config


@pytest.fixture(scope="module")
def mdm_run(tmp_path_factory):
    """A masked diffusion model trained for 10 updates on the repeated-token task."""
    workdir = str(tmp_path_factory.mktemp("mdm"))
    train(smoke("teacher", "mdm"), workdir)
    return workdir


def random_transformer(cls, noise="uniform", seed=0, **kwargs):
    """A model whose head and last MLP layer are random (not zero), for comparisons."""
    model = cls(
        (L,), vocab_size=V + 1, hidden_dim=32, depth=1, num_heads=2, rngs=nnx.Rngs(seed),
        **kwargs,
    )
    model.head.kernel[...] = jax.random.normal(jax.random.key(seed + 1), model.head.kernel.shape)
    return model


# The network's logits, compiled once per model structure and input shapes.
forward = nnx.jit(lambda model, x, **inputs: model(x, **inputs))


# The embedding ------------------------------------------------------------------------------


@pytest.mark.parametrize("noise", models.MASK_NOISE_KINDS)
def test_zero_initialised_mlp_leaves_the_masked_model_unchanged(noise):
    model = random_transformer(
        models.InfiniteMaskTransformer, noise_dim=5, mask_noise=noise, num_masks=3
    )
    x = jnp.asarray([[V, 1, V, 3], [V, V, V, V]])
    eps = model.draw_noise(jax.random.key(2), x.shape)
    assert eps.shape == (2, L, 1 if noise == "table" else 5)
    np.testing.assert_array_equal(forward(model, x, eps=eps), forward(model, x))
    if noise != "none":  # a trained last layer makes the logits depend on eps at masked positions
        model.mask_embedding.fc2.kernel[...] = jax.random.normal(jax.random.key(9), model.mask_embedding.fc2.kernel.shape)
        other = model.draw_noise(jax.random.key(3), x.shape)
        a, b = forward(model, x, eps=eps), forward(model, x, eps=other)
        assert float(jnp.abs(a - b).max()) > 1e-3
        # ... and only through them: a sequence without masks ignores eps
        clean = jnp.asarray([[0, 1, 2, 3]])
        np.testing.assert_array_equal(forward(model, clean, eps=eps[:1]),
                                      forward(model, clean, eps=other[:1]))


def test_noise_kinds_draw_their_distributions():
    key = jax.random.key(0)
    draw = lambda noise, **kw: models.InfiniteMaskEmbedding(  # noqa: E731
        8, 4, noise=noise, rngs=nnx.Rngs(0), **kw
    ).draw(key, (20_000,))
    uniform = np.asarray(draw("uniform", noise_scale=2.0))
    assert uniform.min() >= -2.0 and uniform.max() <= 2.0
    np.testing.assert_allclose(uniform.var(), 4.0 / 3.0, rtol=0.03)  # (2 * 2)^2 / 12
    np.testing.assert_allclose(np.asarray(draw("gaussian", noise_scale=0.5)).std(), 0.5, rtol=0.03)
    table = np.asarray(draw("table", num_masks=3))
    assert set(np.unique(table)) == {0.0, 1.0, 2.0}
    assert not np.asarray(draw("none")).any()


def test_bad_embedding_settings_are_refused():
    with pytest.raises(ValueError, match="Unknown mask noise"):
        models.InfiniteMaskEmbedding(8, 4, noise="rand", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="num_masks"):
        models.InfiniteMaskEmbedding(8, 4, noise="table", rngs=nnx.Rngs(0))
    model = random_transformer(models.InfiniteMaskTransformer, noise_dim=5)
    with pytest.raises(ValueError, match="one label per position"):
        model(jnp.full((2, L), V), eps=jnp.zeros((2, L + 1, 5)))
    with pytest.raises(ValueError, match="5 features"):
        model(jnp.full((2, L), V), eps=jnp.zeros((2, L, 4)))


# The sampler --------------------------------------------------------------------------------


def test_three_branches_sum_to_one_and_merge_into_the_masked_model():
    kappa = np.linspace(1e-3, 0.999, 40)
    kt, ks = np.meshgrid(kappa, kappa, indexing="ij")
    kt, ks = kt[kt < ks], ks[kt < ks]
    with jax.enable_x64(True):
        reveal, keep, redraw = map(np.asarray, solvers.infinite_mask_transition(kt, ks))
    assert reveal.dtype == np.float64
    assert reveal.min() >= 0 and keep.min() >= 0 and redraw.min() >= 0
    np.testing.assert_allclose(reveal + keep + redraw, 1.0, atol=1e-12)
    np.testing.assert_allclose(keep + redraw, (1 - ks) / (1 - kt), atol=1e-12)
    np.testing.assert_allclose(reveal, (ks - kt) / (1 - kt), atol=1e-12)
    # eps is kept with the probability that the forward process masked the position at s
    # already at t: kappa_t (1 - kappa_s) / (kappa_s (1 - kappa_t))
    np.testing.assert_allclose(keep, kt * (1 - ks) / (ks * (1 - kt)), atol=1e-12)


def imdm_model_fn(model):
    return lambda x, t, eps: PATH.posterior_logits(model(x, eps=eps), x, t)


def test_with_a_fixed_eps_the_sampler_is_the_masked_models():
    model = random_transformer(models.InfiniteMaskTransformer, noise_dim=5)
    model.mask_embedding.fc2.kernel[...] = jax.random.normal(jax.random.key(9), model.mask_embedding.fc2.kernel.shape)
    x_init = jnp.full((16, L), V)
    eps = model.draw_noise(jax.random.key(5), x_init.shape)
    key = jax.random.key(11)
    fixed = solvers.masked_diffusion_sample(
        key, imdm_model_fn(model), x_init, PATH, step_size=1 / 8,
        draw_noise=model.draw_noise, noise_init=eps, fixed_noise=True,
    )
    # the masked model's sampler on the network with that eps, from the key it steps with
    _, step_key = jax.random.split(key)
    plain = solvers.masked_diffusion_sample(
        step_key, lambda x, t: imdm_model_fn(model)(x, t, eps), x_init, PATH, step_size=1 / 8
    )
    np.testing.assert_array_equal(fixed, plain)


def test_redrawn_eps_change_the_samples_and_caching_counts_them():
    model = random_transformer(models.InfiniteMaskTransformer, noise_dim=5)
    model.mask_embedding.fc2.kernel[...] = 3.0 * jax.random.normal(jax.random.key(9), model.mask_embedding.fc2.kernel.shape)
    x_init = jnp.full((2, L), V)
    run = lambda fixed: solvers.masked_diffusion_sample(  # noqa: E731
        jax.random.key(3), imdm_model_fn(model), x_init, PATH, step_size=1 / 64,
        draw_noise=model.draw_noise, fixed_noise=fixed, reuse_unchanged=True, return_nfe=True,
    )
    (x_fixed, nfe_fixed), (x_free, nfe_free) = run(True), run(False)
    assert int(jnp.sum(x_fixed == V)) == 0 and int(jnp.sum(x_free == V)) == 0
    # with fixed eps only reveals change the input (the first call, then one after each of at
    # most 2 L revealing steps); redraws of
    # eps change it in many more
    assert int(nfe_fixed) <= 2 * L + 1 < int(nfe_free) <= 64
    assert bool(jnp.any(x_fixed != x_free))


def test_sampler_refuses_noise_settings_without_draw_noise():
    with pytest.raises(ValueError, match="need draw_noise"):
        solvers.masked_diffusion_sample(
            jax.random.key(0), lambda x, t: jnp.zeros(x.shape + (V + 1,)), jnp.full((1, L), V),
            PATH, fixed_noise=True,
        )


# SDTT ---------------------------------------------------------------------------------------


def test_sdtt_loss_is_zero_for_one_teacher_step_of_the_student_itself():
    model = random_transformer(models.TextTransformer, time_conditioning=False)
    x_t = jnp.asarray([[V, 1, V, 3], [V, V, V, V]])
    keys = jax.random.split(jax.random.key(0), 2)
    t = jnp.asarray([0.3, 0.0])

    @nnx.jit
    def sdtt_loss(model, keys, x_t, t):
        fn = lambda x, t: PATH.posterior_logits(model(x), x, t)  # noqa: E731
        return losses.sdtt_loss(keys, fn, fn, PATH, x_t, t, 0.25, teacher_steps=1)

    loss = sdtt_loss(model, keys, x_t, t)
    assert abs(float(loss)) < 1e-6


def test_sdtt_loss_of_a_context_free_teacher_is_the_kl_to_it():
    """A teacher whose posterior does not depend on x gives every step the same target, so the
    loss is KL(student || teacher) averaged over the masked positions."""
    teacher_logits = jax.random.normal(jax.random.key(1), (V,))
    student_logits = jax.random.normal(jax.random.key(2), (V,))
    const = lambda logits: (  # noqa: E731
        lambda x, t: jnp.broadcast_to(jnp.append(logits, -jnp.inf), x.shape + (V + 1,))
    )
    x_t = jnp.asarray([[V, 1, V, 3], [V, V, V, V]])
    loss = losses.sdtt_loss(
        jax.random.split(jax.random.key(0), 2), const(student_logits), const(teacher_logits),
        PATH, x_t, jnp.asarray([0.2, 0.5]), 0.1,
    )
    p, q = jax.nn.log_softmax(student_logits), jax.nn.log_softmax(teacher_logits)
    np.testing.assert_allclose(float(loss), float(jnp.sum(jnp.exp(p) * (p - q))), rtol=1e-5)


def test_sdtt_rounds_copy_the_student_into_the_teacher(mdm_run):
    config = smoke("sdtt", "mdm", **{"train.init_from": mdm_run})
    config.loss.sdtt_round_updates = 3
    run = setup_run(config)
    objective = run.objective
    state = init_train_state(run.model_fn, run.optimizer, 0, run.shardings)
    state = state.replace(params=jax.tree.map(lambda p: p + 1.0, state.params))
    student = nnx.to_pure_dict(state.params)["student"]

    def teacher_matches(s) -> bool:
        teacher = nnx.to_pure_dict(s.model_state)["teacher_weights"]
        same = jax.tree.map(lambda a, b: np.array_equal(np.asarray(a), np.asarray(b)), student,
                            teacher)
        return all(jax.tree.leaves(same))

    for step, copied, round_index in ((2, False, 0), (3, True, 1), (0, False, 0)):
        new = objective.begin_step(state.replace(step=jnp.asarray(step, jnp.int32)))
        assert teacher_matches(new) == copied
        assert int(new.model_state["round"][...]) == round_index
    # the teacher's step doubles per round, up to the student's last step of 1 / min_steps
    dts = [float(objective.sdtt_dt(jnp.asarray(r))) for r in range(12)]
    assert dts[0] == 1 / 1024 and dts[1] == 2 / 1024 and dts[-1] == 1 / 2


# Loading a masked model, bad input --------------------------------------------------------------


def test_imdm_loaded_from_a_masked_model_gives_its_logits(mdm_run):
    mdm_config = smoke("teacher", "mdm")
    imdm_config = smoke("teacher", "imdm", **{"train.init_from": mdm_run})
    from flowjax.train.trained import load_trained_flow

    mdm = load_trained_flow(mdm_config, mdm_run)
    run = setup_run(imdm_config)
    state = load_init_weights(
        imdm_config, init_train_state(run.model_fn, run.optimizer, 0, run.shardings), run.mesh
    )
    imdm_model = nnx.merge(run.graphdef, state.ema_params, state.model_state)
    mdm_model = nnx.merge(mdm.run.graphdef, mdm.state.ema_params, mdm.state.model_state)
    x = jnp.asarray([[V, 1, V, 3], [V, V, V, V], [2, 2, 2, 2]])
    eps = per_example_noise(imdm_model, jnp.arange(3, dtype=jnp.uint32), (L,))
    reference = forward(mdm_model, x)
    assert float(jnp.abs(reference).max()) > 1e-3  # trained: not the zero head
    np.testing.assert_array_equal(forward(imdm_model, x, eps=eps), reference)


def test_bad_imdm_configs_are_refused_before_compiling(mdm_run, tmp_path):
    cases = {
        "other vocabulary": (smoke("teacher", "imdm", **{"train.init_from": mdm_run}), "embedding"),
        "no checkpoint": (smoke("teacher", "imdm", **{"train.init_from": str(tmp_path)}), "holds no checkpoint"),
        "zero steps": (smoke("teacher", "imdm", **{"sample.step_size": 0.0}), "sample.step_size"),
        "sdtt from nothing": (smoke("sdtt", "imdm"), "train.init_from"),
        "redi without couplings": (smoke("teacher", "mdm", **{"loss.distill": "redi"}), "couplings"),
    }
    cases["other vocabulary"][0].data.vocab_size = 16
    for name, (config, message) in cases.items():
        with pytest.raises(ConfigError, match=message):
            validate_config(config)


@pytest.mark.slow
def test_another_noise_dimension_is_named(tmp_path_factory, mdm_run):
    source = str(tmp_path_factory.mktemp("imdm8"))
    config = smoke("teacher", "imdm", **{"train.num_steps": 1})
    train(config, source)
    other = smoke("teacher", "imdm", **{"train.init_from": source, "model.noise_dim": 16})
    with pytest.raises(ConfigError, match=r"mask_embedding/fc1/kernel: \(8, 128\) in the checkpoint, \(16, 128\)"):
        validate_config(other)


# ReDi ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_distillation_stages_run_end_to_end(mdm_run, tmp_path):
    """IMDM from MDM, SDTT of it, couplings with their eps seeds, ReDi on them."""
    imdm = str(tmp_path / "imdm")
    train(smoke("teacher", "imdm", **{"train.init_from": mdm_run}), imdm)
    sdtt = smoke("sdtt", "imdm", **{"train.init_from": imdm, "loss.sdtt_round_updates": 2})
    state = train(sdtt, str(tmp_path / "sdtt"))
    assert int(state.model_state["round"][...]) == (sdtt.train.num_steps - 1) // 2
    teacher = smoke("teacher", "imdm")
    path = write_couplings(teacher, imdm, str(tmp_path / "c.npz"), 40, steps=16)
    again = write_couplings(teacher, imdm, str(tmp_path / "c2.npz"), 40, steps=16)
    a, b = np.load(path), np.load(again)
    for k in ("x", "x_start", "t", "noise_seed"):
        np.testing.assert_array_equal(a[k], b[k])
    assert np.all(a["x_start"] == V) and not np.any(a["x"] == V)
    redi = smoke("redi", "imdm", **{"train.init_from": imdm})
    redi.data.path = path
    state = train(redi, str(tmp_path / "redi"))
    assert int(state.step) == redi.train.num_steps
    it = data.build_dataset(redi.data, global_batch_size=4, seed=0)
    assert set(next(it)) == {"x", "x_start", "t", "noise_seed"}
    # the same couplings from the command line
    from train_testing import run_cli

    out = str(tmp_path / "cli.npz")
    result = run_cli(
        f"--config={CONFIG}:teacher,imdm,smoke", f"--workdir={imdm}", "--mode=couplings",
        "--couplings_num=40", "--couplings_steps=16", f"--couplings_out={out}",
        "--config.sample.seed=0",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    np.testing.assert_array_equal(np.load(out)["x"], a["x"])


def test_one_step_validity_of_samples_equals_the_exact_value_from_the_marginals():
    """One step from all masks draws the positions independently from the model's marginals, so
    the fraction of valid samples estimates sum_v prod_i p_i(v) (V = 3, L = 3: about 0.1)."""
    vocab, length = 3, 3
    net = nnx.jit(lambda: models.TextTransformer(  # initialised by one compiled program
        (length,), vocab_size=vocab + 1, hidden_dim=16, depth=1, num_heads=2,
        time_conditioning=False, rngs=nnx.Rngs(0),
    ))()
    net.head.kernel[...] = 0.3 * jax.random.normal(jax.random.key(1), net.head.kernel.shape)
    path = paths.MixtureDiscreteProbPath(
        paths.MaskedDiffusionScheduler("linear", 1e-3, 0.0), paths.MaskSource(vocab + 1)
    )
    posterior = lambda x, t: path.posterior_logits(net(x), x, t)  # noqa: E731
    x_init = jnp.full((20_000, length), vocab)
    samples = jax.jit(
        lambda key: solvers.masked_diffusion_sample(key, posterior, x_init, path, step_size=1.0)
    )(jax.random.key(0))
    probs = np.asarray(jax.jit(lambda x: jax.nn.softmax(posterior(x, jnp.zeros(())), -1))(
        x_init[:1])[0, :, :vocab])
    exact = float(metrics.independent_validity(probs.astype(np.float64)))
    sampled = metrics.sequence_validity(np.asarray(samples))
    assert 0.05 < exact < 0.5
    assert abs(sampled - exact) < 4 * np.sqrt(exact * (1 - exact) / 20_000)
