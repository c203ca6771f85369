"""MeBT (Yoo et al., CVPR 2023): the network's invariances (reordering the sequence, values at
masked positions), the objective's masking count, loss and length curriculum against hand
computations, MaskGIT decoding and the revision against a model that is certain, the linear
cost in the number of tokens against the full-attention transformer, and the errors for bad
input."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from flowjax.models import TextTransformer
from flowjax.models.mebt import MeBT, mebt_layers
from flowjax.train.config import default_config
from flowjax.train.objectives import DataSpec, build_objective
from flowjax.train.objectives.mebt import (
    choose_bucket,
    curriculum_log_weights,
    maskgit_decode,
    num_masked,
    random_mask,
    revise,
    top_k_logits,
)

GRID = (3, 2, 3)  # (t, h, w): 18 tokens
VOCAB = 7  # data tokens; id 7 is the mask


def tiny_model(grid=GRID, seed=0, **kwargs) -> MeBT:
    settings = dict(vocab_size=VOCAB, hidden_dim=16, num_heads=2, num_latents=4,
                    layers=mebt_layers(2, 2), mlp_ratio=2.0)
    return MeBT(grid, rngs=nnx.Rngs(seed), **{**settings, **kwargs})


def tiny_config(**loss) -> ml_collections.ConfigDict:
    config = default_config("mebt")
    config.model.update(hidden_dim=16, num_heads=2, num_latents=4, layers=mebt_layers(2, 2),
                        mlp_ratio=2.0)
    config.loss.update(loss)
    return config


SPEC = DataSpec(event_shape=GRID, num_classes=None, vocab_size=VOCAB, toy=None)


@pytest.fixture(scope="module")
def model() -> MeBT:
    return tiny_model()


@pytest.fixture(scope="module")
def grid_logits(model):
    graphdef, state = nnx.split(model)
    return jax.jit(lambda x, visible=None: nnx.merge(graphdef, state)(x, visible))


@pytest.fixture(scope="module")
def sequence_logits(model):
    graphdef, state = nnx.split(model)
    return jax.jit(lambda tokens, positions, visible: nnx.merge(graphdef, state).sequence_logits(
        tokens, positions, visible))


def grid_inputs(seed: int, batch: int = 2):
    keys = jax.random.split(jax.random.key(seed), 2)
    n = math.prod(GRID)
    tokens = jax.random.randint(keys[0], (batch, n), 0, VOCAB)
    visible = jax.random.bernoulli(keys[1], 0.5, (batch, n))
    positions = jnp.broadcast_to(tiny_model().grid_positions(GRID[0]), (batch, n, 3))
    return tokens, positions, visible


def test_reordering_context_with_positions_permutes_the_logits(sequence_logits):
    tokens, positions, visible = grid_inputs(0)
    order = jax.random.permutation(jax.random.key(1), tokens.shape[1])
    logits = sequence_logits(tokens, positions, visible)
    permuted = sequence_logits(tokens[:, order], positions[:, order], visible[:, order])
    np.testing.assert_allclose(permuted, logits[:, order], atol=2e-5, rtol=1e-5)


def test_masked_logits_read_visible_tokens_only(sequence_logits):
    tokens, positions, visible = grid_inputs(2)
    logits = sequence_logits(tokens, positions, visible)
    other = jax.random.randint(jax.random.key(3), tokens.shape, 0, VOCAB + 1)
    changed = jnp.where(visible, tokens, other)  # new values at every masked position
    np.testing.assert_array_equal(sequence_logits(changed, positions, visible), logits)
    # A visible token does change them.
    first = int(jnp.argmax(visible[0]))
    moved = tokens.at[0, first].set((tokens[0, first] + 1) % VOCAB)
    assert not np.allclose(sequence_logits(moved, positions, visible)[0], logits[0])


def test_grid_call_is_the_sequence_call_with_mask_ids(grid_logits, sequence_logits):
    tokens, positions, visible = grid_inputs(4)
    grid = jnp.where(visible, tokens, VOCAB).reshape(2, *GRID)
    np.testing.assert_allclose(
        grid_logits(grid).reshape(2, -1, VOCAB), sequence_logits(tokens, positions, visible),
        atol=1e-6)


def test_masking_count_is_ceil_of_one_minus_t_times_n():
    t = jnp.array([0.0, 0.05, 0.5, 0.999, 1.0, 0.3])
    mask = jax.jit(random_mask, static_argnums=2)
    masked = np.asarray(mask(jax.random.key(0), t, 10))
    np.testing.assert_array_equal(masked.sum(1), [10, 10, 5, 1, 0, 7])
    np.testing.assert_array_equal(num_masked(t, 10), [10, 10, 5, 1, 0, 7])
    rows = np.asarray(mask(jax.random.key(1), jnp.full((6,), 0.5), 10))
    assert len({r.tobytes() for r in rows}) == 6  # a random permutation per row


def test_loss_equals_hand_computation(model, grid_logits):
    objective = build_objective(tiny_config(), SPEC)
    x = jax.random.randint(jax.random.key(5), (3, *GRID), 0, VOCAB)
    batch = objective.draw_step_noise(jax.random.key(6), {"x": x})
    loss = float(jax.jit(lambda b: objective.loss(model, b))(batch))
    n = math.prod(GRID)
    masks = jax.jit(jax.vmap(lambda seed, t: random_mask(jax.random.key(seed), t[None], n)[0]))
    masked = np.asarray(masks(batch["mask_seed"], batch["t"]))
    logits = np.asarray(grid_logits(x, jnp.asarray(~masked).reshape(3, *GRID)), np.float64)
    per_example = []
    for i in range(3):
        assert masked[i].sum() == math.ceil((1 - float(batch["t"][i])) * n)
        log_p = logits[i].reshape(n, VOCAB)
        log_p = log_p - np.log(np.exp(log_p).sum(-1, keepdims=True))
        nll = -log_p[np.arange(n), np.asarray(x[i]).reshape(n)]
        per_example.append(nll[masked[i]].mean() if masked[i].any() else 0.0)
    np.testing.assert_allclose(loss, np.mean(per_example), rtol=1e-5)


def test_curriculum_weights_follow_the_formula_and_pick_the_drawn_length():
    lengths, b = (1, 2, 3, 8), 3e4
    for step in (0.0, 3e4, 1.7e5):
        expected = [math.exp(-(step - (n - 1) * b) ** 2 / (8 * b * b)) for n in lengths]
        np.testing.assert_allclose(np.exp(curriculum_log_weights(step, lengths, b)), expected,
                                   rtol=1e-5)
    # softmax(log [1, 1, 2]) = [1/4, 1/4, 1/2]: u picks by the cumulative weights.
    log_w = jnp.log(jnp.array([1.0, 1.0, 2.0]))
    assert [int(choose_bucket(u, log_w)) for u in (0.1, 0.3, 0.49, 0.51, 0.99)] == \
        [0, 1, 1, 2, 2]


@pytest.mark.slow
def test_curriculum_loss_is_the_loss_of_the_drawn_length(model):
    # Lengths (1, 3), b = 1 at step 0 have weights 1 and exp(-1/2); u = 0.1 draws the clip of
    # one frame, u = 0.9 the whole grid.
    objective = build_objective(tiny_config(curriculum_b=1.0, curriculum_lengths=(1, 3)), SPEC)
    x = jax.random.randint(jax.random.key(7), (2, *GRID), 0, VOCAB)
    batch = objective.draw_step_noise(jax.random.key(8), {"x": x})
    batch["step"] = jnp.zeros(2)
    loss = jax.jit(lambda b: objective.loss(model, b))
    short = loss({**batch, "length_draw": jnp.full(2, 0.1)})
    full = loss({**batch, "length_draw": jnp.full(2, 0.9)})
    one_frame, whole = jax.jit(lambda b: [jnp.mean(objective._clip_loss(model, b, n))
                                          for n in (1, 3)])(batch)
    np.testing.assert_allclose(short, one_frame, rtol=1e-5)
    np.testing.assert_allclose(full, whole, rtol=1e-5)
    assert abs(float(one_frame) - float(whole)) > 1e-4


def certain(target: jax.Array):
    """A logits function that puts all its mass on `target` (B, N) whatever it reads."""
    return lambda tokens, visible: 1e4 * jax.nn.one_hot(target, VOCAB)


def test_maskgit_unmasks_everything_keeps_tokens_and_follows_the_schedule():
    target = jax.random.randint(jax.random.key(9), (2, 20), 0, VOCAB)
    prompt = jnp.where(jnp.arange(20) < 4, (target + 1) % VOCAB, VOCAB)  # 4 prompt tokens
    steps = 5
    decode = jax.jit(maskgit_decode, static_argnums=(1, 3), static_argnames=(
        "steps", "confidence_temperature", "return_states"))
    states = decode(jax.random.key(10), certain(target), prompt, VOCAB, steps=steps,
                    confidence_temperature=4.5, return_states=True)
    states = np.asarray(states)
    assert states.shape == (2, steps + 1, 20)
    np.testing.assert_array_equal(states[:, 0], prompt)
    np.testing.assert_array_equal(states[:, -1, :4], np.asarray(prompt)[:, :4])
    np.testing.assert_array_equal(states[:, -1, 4:], np.asarray(target)[:, 4:])  # the argmax
    for s in range(1, steps + 1):
        kept = states[:, s - 1] != VOCAB
        np.testing.assert_array_equal(states[:, s][kept], states[:, s - 1][kept])
        left = 0 if s == steps else math.ceil(math.cos(math.pi / 2 * s / steps) * 16)
        np.testing.assert_array_equal((states[:, s] == VOCAB).sum(1), [left, left])
    # A model with random logits still leaves no mask behind.
    random_logits = jax.random.normal(jax.random.key(11), (2, 20, VOCAB))
    out = decode(jax.random.key(12), lambda tokens, visible: random_logits, prompt, VOCAB,
                 steps=3, confidence_temperature=1.0)
    assert not np.any(np.asarray(out) == VOCAB)


def test_revision_redraws_every_generated_token_and_keeps_the_prompt():
    target = jax.random.randint(jax.random.key(13), (2, 12), 0, VOCAB)
    generate = jnp.arange(12) % 3 != 0
    draft = jnp.where(generate, (target + 1) % VOCAB, (target + 2) % VOCAB)  # all wrong
    where = jnp.broadcast_to(generate, draft.shape)
    out = jax.jit(lambda key: revise(key, certain(target), draft, where, steps=5, rounds=1,
                                     temperature=0.1, top_k=2))(jax.random.key(14))
    np.testing.assert_array_equal(out, jnp.where(generate, target, draft))
    logits = jax.random.normal(jax.random.key(15), (3, VOCAB))
    kept = np.isfinite(np.asarray(top_k_logits(logits, 2)))
    np.testing.assert_array_equal(kept, np.asarray(logits) >= np.sort(logits, -1)[:, -2:-1])


def lowered_flops(fn, state, shape) -> float:
    return float(jax.jit(fn).lower(state, jax.ShapeDtypeStruct(shape, jnp.int32))
                 .cost_analysis()["flops"])


def test_flops_grow_linearly_for_mebt_and_quadratically_for_full_attention():
    """Lowered (not compiled, not run) FLOPs at N = 1k .. 8k tokens, width 32, one layer of
    each kind: MeBT doubles with N; the full-attention transformer tends to 4x per doubling."""
    mebt, full = [], []
    for n in (1024, 2048, 4096, 8192):
        model = MeBT((n // 64, 8, 8), vocab_size=16, hidden_dim=32, num_heads=2, num_latents=16,
                     layers=("enc", "self", "dec", "lt2l"), mlp_ratio=1.0, rngs=nnx.Rngs(0))
        graphdef, state = nnx.split(model)
        mebt.append(lowered_flops(lambda s, x, g=graphdef: nnx.merge(g, s)(x), state,
                                  (1, n // 64, 8, 8)))
        text = TextTransformer((n,), vocab_size=17, hidden_dim=32, depth=1, num_heads=2,
                               cond_dim=32, mlp_ratio=1.0, time_conditioning=False,
                               rngs=nnx.Rngs(0))
        graphdef, state = nnx.split(text)
        full.append(lowered_flops(lambda s, x, g=graphdef: nnx.merge(g, s)(x), state, (1, n)))
    mebt_ratios, full_ratios = np.diff(np.log2(mebt)), np.diff(np.log2(full))
    assert np.all(np.abs(mebt_ratios - 1.0) < 0.05), mebt_ratios  # x2 per doubling
    assert full_ratios[-1] > 1.9 and np.all(np.diff(full_ratios) > 0), full_ratios  # -> x4


def test_bad_input_is_refused_before_compiling(model):
    with pytest.raises(ValueError, match="positional table holds 1 to 3"):
        model(jnp.zeros((1, 4, 2, 3), jnp.int32))
    with pytest.raises(ValueError, match=r"\(h, w\) = \(2, 3\)"):
        model(jnp.zeros((1, 3, 3, 3), jnp.int32))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model(jnp.full((1, *GRID), VOCAB + 1, jnp.int32))
    with pytest.raises(ValueError, match="curriculum_lengths must be distinct clip lengths"):
        build_objective(tiny_config(curriculum_b=1e5, curriculum_lengths=(1, 4)), SPEC)
    with pytest.raises(ValueError, match="curriculum_b is 0"):
        build_objective(tiny_config(curriculum_lengths=(1, 2)), SPEC)
    with pytest.raises(ValueError, match="video token grids"):
        build_objective(tiny_config(), DataSpec((18,), None, VOCAB, None))
    with pytest.raises(ValueError, match="at least one 'dec'"):
        tiny_model(layers=("enc", "self"))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["moving_digits", "ucf101"])
def test_smoke_config_trains_samples_and_evaluates(tmp_path, name):
    import json
    import os

    from flowjax.data import write_video_tokens
    from flowjax.train import inference, load_config_file, train

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    config = load_config_file(os.path.join(root, "configs", "mebt", f"{name}.py"), "smoke")
    vocab = config.data.codebook_size
    tokens = np.random.default_rng(0).integers(0, vocab, (16, 4, 4, 4)).astype(np.int32)
    config.data.path = write_video_tokens(str(tmp_path / "tokens.npz"), tokens, vocab)
    train(config, str(tmp_path / "run"))
    drawn = inference.sample(config, str(tmp_path / "run"))
    assert drawn["samples"].shape == (config.sample.num_samples, 4, 4, 4)
    assert drawn["samples"].min() >= 0 and drawn["samples"].max() < vocab
    inference.evaluate(config, str(tmp_path / "run"), samples=drawn["samples"])
    with open(tmp_path / "run" / "metrics.json") as f:
        # An untrained model's masked cross-entropy is near log V.
        assert abs(json.load(f)["masked_token_cross_entropy"] - math.log(vocab)) < 0.5
