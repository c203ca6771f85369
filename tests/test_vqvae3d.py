"""The 3D VQ video tokenizer (TATS 3D-VQGAN design): nearest-code quantisation, the
straight-through gradient, exact decode(encode(x)) when the codebook holds the encoder outputs,
the l2-normalised (cosine) lookup of ViT-VQGAN against a hand computation, finite scalar
quantisation enumerated over its whole grid,
shapes and bad input, the convolutions and norms against NumPy references written in PyTorch's
layout and conventions, the TATS state-dict mapping, token files, and (slow) a tiny overfit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flowjax import data
from flowjax.models import convert_tats
from flowjax.models.vqvae3d import (
    VQVAE3D,
    FrozenBatchNorm,
    SamePadConv3d,
    code_perplexity,
    fsq_bound,
    fsq_codes,
    fsq_quantize,
    l2_normalize,
    most_similar_codes,
    nearest_codes,
    tokenize_videos,
)
from flowjax.train.objectives.video_vq import psnr

SMALL = dict(hidden_channels=4, downsample=(2, 2, 2), codebook_size=4, embedding_dim=3,
             norm_groups=2)


@pytest.fixture(scope="module")
def model():
    return VQVAE3D((2, 4, 4, 1), **SMALL, rngs=nnx.Rngs(0))


def _video(seed, batch=1):
    return jnp.asarray(np.random.default_rng(seed).uniform(-1, 1, (batch, 2, 4, 4, 1)), jnp.float32)


# --- NumPy references in PyTorch's layout (N, C, D, H, W) and its definitions. -----------------

def _tats_pad(x, kernel, stride):
    """F.pad(mode="replicate") with TATS's SamePadConv3d amounts: k - s per axis, larger half
    first."""
    pads = [((k - s) // 2 + (k - s) % 2, (k - s) // 2) for k, s in zip(kernel, stride)]
    return np.pad(x, [(0, 0), (0, 0), *pads], mode="edge")


def _np_conv3d(x, weight, bias, stride):
    """torch.nn.functional.conv3d(x, weight (O, I, k, k, k), bias, stride), no padding."""
    k = weight.shape[2:]
    win = np.lib.stride_tricks.sliding_window_view(x, k, axis=(2, 3, 4))
    win = win[:, :, :: stride[0], :: stride[1], :: stride[2]]
    return np.einsum("ncdhwijk,ocijk->nodhw", win, weight) + bias[None, :, None, None, None]


def _np_conv_transpose3d(x, weight, bias, stride, padding):
    """torch.nn.functional.conv_transpose3d(x, weight (I, O, k, k, k), bias, stride, padding)
    from its definition: each input scatters weight * x at stride s, then `padding` is cropped."""
    n, _, d, h, w = x.shape
    k = weight.shape[2:]
    full = np.zeros((n, weight.shape[1], *[(m - 1) * s + kk for m, s, kk in
                                           zip((d, h, w), stride, k)]))
    for a in range(d):
        for b in range(h):
            for c in range(w):
                contrib = np.einsum("ni,iojkl->nojkl", x[:, :, a, b, c], weight)
                full[:, :, a * stride[0] : a * stride[0] + k[0], b * stride[1] : b * stride[1]
                     + k[1], c * stride[2] : c * stride[2] + k[2]] += contrib
    p = padding
    out = full[:, :, p[0] : full.shape[2] - p[0], p[1] : full.shape[3] - p[1],
               p[2] : full.shape[4] - p[2]]
    return out + bias[None, :, None, None, None]


def _np_group_norm(x, groups, weight, bias, eps):
    n, c = x.shape[:2]
    g = x.reshape(n, groups, -1)
    y = (g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + eps)
    return y.reshape(x.shape) * weight[None, :, None, None, None] + bias[None, :, None, None, None]


def _to_torch(x):
    return np.asarray(x, np.float64).transpose(0, 4, 1, 2, 3)


def _from_torch(x):
    return x.transpose(0, 2, 3, 4, 1)


# --- Quantisation. --------------------------------------------------------------------------

def test_nearest_codes_match_brute_force_and_perplexity():
    rng = np.random.default_rng(0)
    z, codebook = rng.normal(size=(5, 7, 4)), rng.normal(size=(9, 4))
    brute = np.argmin(((z[:, :, None, :] - codebook[None, None]) ** 2).sum(-1), axis=-1)
    got = nearest_codes(jnp.asarray(z, jnp.float32), jnp.asarray(codebook, jnp.float32))
    np.testing.assert_array_equal(got, brute)
    assert got.dtype == jnp.int32
    assert float(code_perplexity(jnp.arange(12) % 4, 8)) == pytest.approx(4.0, rel=1e-6)
    assert float(code_perplexity(jnp.zeros((3, 5), jnp.int32), 8)) == pytest.approx(1.0)
    np.testing.assert_allclose(psnr(np.array([4e-3, 4e-2])), [30.0, 20.0])


def test_straight_through_gradient_is_the_identity(model):
    z = jnp.asarray(np.random.default_rng(1).normal(size=(2, 3, 3)), jnp.float32)
    weights = jnp.asarray(np.random.default_rng(2).normal(size=(2, 3, 3)), jnp.float32)
    codes, aux = model.quantize(z)
    np.testing.assert_array_equal(codes, z + (model.codebook[...][aux["indices"]] - z))
    grad = jax.grad(lambda z: jnp.sum(weights * model.quantize(z)[0]))(z)
    np.testing.assert_array_equal(grad, weights)
    # The commitment loss pulls z towards its code: its gradient is 2 beta (z - z_q) / size.
    g = jax.grad(lambda z: model.quantize(z)[1]["commitment_loss"])(z)
    z_q = model.codebook[...][aux["indices"]]
    np.testing.assert_allclose(g, 2 * 0.25 * (z - z_q) / z.size, rtol=1e-5, atol=1e-7)


def test_shapes_and_exact_round_trip_when_codes_are_the_encoder_outputs(model):
    x = _video(3)
    assert model.downsample == (2, 2, 2) and model.latent_shape == (1, 2, 2)
    z = nnx.jit(lambda m, x: m.encode(x))(model, x)
    assert z.shape == (1, 1, 2, 2, 3)
    # A model whose 4 codes are exactly the 4 encoder outputs of x.
    exact = VQVAE3D((2, 4, 4, 1), **SMALL, rngs=nnx.Rngs(0))
    exact.codebook[...] = z.reshape(4, 3)
    indices, (reconstruction, aux), expected, decoded = nnx.jit(
        lambda m, x, z: (
            m.encode_indices(x), m(x), m.decode(z), m.decode_indices(m.encode_indices(x))
        )
    )(exact, x, z)
    assert indices.shape == (1, 1, 2, 2) and indices.dtype == jnp.int32
    np.testing.assert_array_equal(indices.reshape(-1), np.arange(4))
    assert reconstruction.shape == x.shape
    np.testing.assert_array_equal(reconstruction, expected)
    np.testing.assert_array_equal(decoded, expected)
    assert float(aux["codebook_loss"]) == 0.0 and float(aux["commitment_loss"]) == 0.0
    assert float(aux["perplexity"]) == pytest.approx(4.0, rel=1e-6)


# --- l2-normalised codes (ViT-VQGAN, section 3.2). -------------------------------------------

def _unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def cosine_model():
    model = VQVAE3D((2, 4, 4, 1), **{**SMALL, "codebook_size": 7}, normalize_codes=True,
                    rngs=nnx.Rngs(0))
    # Codes of unequal lengths, so that the cosine and the plain l2 lookups differ.
    codebook = np.random.default_rng(10).normal(size=(7, 3)) * np.arange(1, 8)[:, None]
    model.codebook[...] = jnp.asarray(codebook, jnp.float32)
    return model


def test_cosine_lookup_losses_and_codes_match_a_hand_computation(cosine_model):
    rng = np.random.default_rng(11)
    z = rng.normal(size=(4, 5, 3)) * rng.uniform(0.1, 5.0, size=(4, 5, 1))
    e = np.asarray(cosine_model.codebook[...], np.float64)
    similarity = _unit(z) @ _unit(e).T
    expected = np.argmax(similarity, axis=-1)
    assert not np.array_equal(expected, np.argmin(((z[..., None, :] - e) ** 2).sum(-1), -1))
    codes, aux = cosine_model.quantize(jnp.asarray(z, jnp.float32))
    np.testing.assert_array_equal(aux["indices"], expected)
    np.testing.assert_array_equal(most_similar_codes(jnp.asarray(z, jnp.float32),
                                                     jnp.asarray(e, jnp.float32)), expected)
    z_q = _unit(e)[expected]
    np.testing.assert_allclose(codes, z_q, rtol=1e-5, atol=1e-6)  # the normalised code
    np.testing.assert_allclose(cosine_model.code_vectors(), _unit(e), rtol=1e-5, atol=1e-6)
    gap = np.mean((_unit(z) - z_q) ** 2)
    assert float(aux["codebook_loss"]) == pytest.approx(gap, rel=1e-5)
    assert float(aux["commitment_loss"]) == pytest.approx(0.25 * gap, rel=1e-5)
    assert float(aux["perplexity"]) == pytest.approx(
        float(code_perplexity(jnp.asarray(expected), 7)), rel=1e-6)


def test_cosine_lookup_gradients(cosine_model):
    rng = np.random.default_rng(12)
    z = rng.normal(size=(6, 3)) * 3.0
    w = rng.normal(size=(6, 3))
    zj = jnp.asarray(z, jnp.float32)
    # Straight through the normalisation: d<w, l2(z)>/dz = (w - u <u, w>) / ||z||, u = l2(z).
    u, length = _unit(z), np.linalg.norm(z, axis=-1, keepdims=True)
    wj = jnp.asarray(w, jnp.float32)
    grad = jax.grad(lambda z: jnp.sum(wj * cosine_model.quantize(z)[0]))(zj)
    np.testing.assert_allclose(grad, (w - u * np.sum(u * w, -1, keepdims=True)) / length,
                               rtol=1e-4, atol=1e-6)
    # The codebook loss moves only the chosen codes (through their normalisation); the
    # commitment loss moves only z.
    model_grads = nnx.grad(lambda m: m.quantize(zj)[1]["codebook_loss"])(cosine_model)
    g = np.asarray(model_grads.codebook[...])
    chosen = np.unique(np.asarray(most_similar_codes(zj, cosine_model.codebook[...])))
    unused = np.setdiff1d(np.arange(7), chosen)
    assert np.all(np.abs(g[chosen]).sum(-1) > 0) and np.all(g[unused] == 0)
    commit = nnx.grad(lambda m: m.quantize(zj)[1]["commitment_loss"])(cosine_model)
    assert np.all(np.asarray(commit.codebook[...]) == 0)
    # l2_normalize is finite, with a zero gradient, at the zero vector.
    assert np.all(np.asarray(l2_normalize(jnp.zeros(3))) == 0)
    assert np.all(np.isfinite(jax.grad(lambda v: jnp.sum(l2_normalize(v)))(jnp.zeros(3))))


def test_cosine_model_encodes_and_decodes_the_normalised_codes(cosine_model):
    x = _video(13, batch=2)
    z, indices, from_indices, (reconstruction, aux) = nnx.jit(
        lambda m, x: (m.encode(x), m.encode_indices(x),
                      m.decode_indices(m.encode_indices(x)), m(x))
    )(cosine_model, x)
    e = np.asarray(cosine_model.codebook[...], np.float64)
    np.testing.assert_array_equal(indices, np.argmax(_unit(np.asarray(z, np.float64))
                                                     @ _unit(e).T, -1))
    np.testing.assert_array_equal(aux["indices"], indices)
    direct = cosine_model.decode(jnp.asarray(_unit(e)[np.asarray(indices)], jnp.float32))
    np.testing.assert_allclose(from_indices, direct, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(reconstruction, direct, rtol=1e-4, atol=1e-5)


def test_codebook_initialisation_suits_the_lookup():
    cosine = VQVAE3D((2, 4, 4, 1), **{**SMALL, "codebook_size": 64}, normalize_codes=True,
                     rngs=nnx.Rngs(1))
    e = np.asarray(cosine.codebook[...])
    np.testing.assert_allclose(np.linalg.norm(e, axis=-1), 1.0, rtol=1e-5)
    assert np.all(e.max(0) > 0.3) and np.all(e.min(0) < -0.3)  # spread over the sphere
    plain = VQVAE3D((2, 4, 4, 1), **{**SMALL, "codebook_size": 64}, rngs=nnx.Rngs(1))
    assert plain.normalize_codes is False
    assert np.all(np.abs(np.asarray(plain.codebook[...])) <= 1 / 64)
    np.testing.assert_array_equal(plain.code_vectors(), plain.codebook[...])


def test_fsq_enumerates_its_grid_and_rounds_each_channel_to_its_levels():
    levels = (8, 6, 5)
    grid = np.asarray(fsq_codes(jnp.arange(240), levels))  # (240, 3)
    assert len({tuple(c) for c in grid}) == 240  # ids <-> grid points, a bijection
    for i, level in enumerate(levels):
        values = np.unique(grid[:, i])
        assert len(values) == level and values[0] == -1.0 and values.max() <= 1.0
    np.testing.assert_allclose(fsq_bound(jnp.zeros(3), levels), 0.0, atol=1e-6)
    # A pre-image of each grid point, by hand: f(z) = tanh(z + s) h - o = t, with t the rounded
    # value v (the end values, reached only in the limit, moved 0.25 inside).
    half = (np.asarray(levels) - 1) * (1 - 1e-3) / 2
    offset = np.where(np.asarray(levels) % 2 == 0, 0.5, 0.0)
    t = np.clip(grid * (np.asarray(levels) // 2), -half - offset + 0.25, half - offset - 0.25)
    z = np.arctanh((t + offset) / half) - np.arctanh(offset / half)
    codes, ids = fsq_quantize(jnp.asarray(z, jnp.float32), levels)
    np.testing.assert_array_equal(ids, np.arange(240))
    np.testing.assert_allclose(codes, grid, atol=1e-6)
    # Straight through: the gradient of the codes is that of the bounded values.
    z0 = jnp.asarray([[0.3, -1.2, 2.0]])
    np.testing.assert_allclose(jax.jacobian(lambda z: fsq_quantize(z, levels)[0])(z0),
                               jax.jacobian(lambda z: fsq_bound(z, levels) / jnp.array(
                                   [4.0, 3.0, 2.0]))(z0), rtol=1e-6)


def test_an_fsq_tokenizer_decodes_its_ids_like_its_forward_pass():
    model = VQVAE3D((2, 4, 4, 1), **{**SMALL, "codebook_size": 12, "embedding_dim": 2},
                    fsq_levels=(4, 3), rngs=nnx.Rngs(0))
    assert not hasattr(model, "codebook")
    video = _video(7, batch=2)
    reconstruction, aux = model(video)
    indices = model.encode_indices(video)
    np.testing.assert_array_equal(aux["indices"], indices)
    assert int(indices.min()) >= 0 and int(indices.max()) < 12
    assert float(aux["codebook_loss"]) == 0.0 and float(aux["commitment_loss"]) == 0.0
    np.testing.assert_allclose(model.decode_indices(indices), reconstruction, rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(model.code_vectors(), fsq_codes(jnp.arange(12), (4, 3)))
    with pytest.raises(ValueError, match="codebook_size=12"):
        VQVAE3D((2, 4, 4, 1), **SMALL, fsq_levels=(4, 3), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=">= 2"):
        VQVAE3D((2, 4, 4, 1), **{**SMALL, "embedding_dim": 2}, fsq_levels=(4, 1),
                rngs=nnx.Rngs(0))


def test_bad_input_is_rejected_before_compiling(model):
    with pytest.raises(ValueError, match=r"\(B, T, H, W, C\)"):
        model.encode_indices(jnp.zeros((2, 4, 4, 1)))
    with pytest.raises(ValueError, match="divisible by the downsampling factors"):
        model.encode_indices(jnp.zeros((1, 3, 4, 4, 1)))
    with pytest.raises(ValueError, match="channel"):
        model(jnp.zeros((1, 2, 4, 4, 3)))
    with pytest.raises(ValueError, match="powers of two"):
        VQVAE3D((4, 8, 8, 1), **{**SMALL, "downsample": (3, 4, 4)}, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="norm_groups"):
        VQVAE3D((4, 8, 8, 1), **{**SMALL, "norm_groups": 3}, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"\(T, H, W, C\)"):
        VQVAE3D((8, 8, 1), **SMALL, rngs=nnx.Rngs(0))


def test_tokenize_videos_writes_a_token_file(model, tmp_path):
    videos = np.asarray(_video(4, batch=3))
    tokens = tokenize_videos(model, videos, batch_size=2)
    direct = nnx.jit(lambda m, x: m.encode_indices(x))(model, jnp.asarray(videos))
    np.testing.assert_array_equal(tokens, direct)
    path = data.write_video_tokens(str(tmp_path / "tokens.npz"), tokens, model.codebook_size)
    read, size = data.read_video_tokens(path)
    np.testing.assert_array_equal(read, tokens)
    assert size == 4
    with pytest.raises(ValueError, match="divisible"):
        tokenize_videos(model, videos[:, :1], batch_size=2)


# --- Layers against NumPy references in PyTorch's conventions. ----------------------------------

def test_conv_and_transposed_conv_match_torch_definitions():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 4, 6, 6, 3)).astype(np.float32)
    for stride in [(1, 2, 2), (2, 1, 1)]:
        conv = SamePadConv3d(3, 5, 4, stride, rngs=nnx.Rngs(1))
        weight = np.asarray(conv.kernel[...], np.float64).transpose(4, 3, 0, 1, 2)  # (O, I, k..)
        ref = _np_conv3d(_tats_pad(_to_torch(x), (4, 4, 4), stride), weight,
                         np.asarray(conv.bias[...], np.float64), stride)
        np.testing.assert_allclose(conv(jnp.asarray(x)), _from_torch(ref), rtol=1e-4, atol=1e-4)
        up = SamePadConv3d(3, 5, 4, stride, transpose=True, rngs=nnx.Rngs(2))
        weight_t = np.asarray(up.kernel[...], np.float64).transpose(3, 4, 0, 1, 2)  # (I, O, k..)
        ref = _np_conv_transpose3d(_tats_pad(_to_torch(x), (4, 4, 4), stride), weight_t,
                                   np.asarray(up.bias[...], np.float64), stride, (3, 3, 3))
        out = up(jnp.asarray(x))
        assert out.shape == (2, 4 * stride[0], 6 * stride[1], 6 * stride[2], 5)
        np.testing.assert_allclose(out, _from_torch(ref), rtol=1e-4, atol=1e-4)


def test_group_norm_matches_torch_definition():
    from flowjax.models.vqvae3d import _norm

    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 3, 4, 4, 8)).astype(np.float32) * 3 + 1
    norm = _norm(8, "group", 4, nnx.Rngs(0))
    norm.scale[...] = jnp.asarray(rng.normal(size=8), jnp.float32)
    norm.bias[...] = jnp.asarray(rng.normal(size=8), jnp.float32)
    ref = _np_group_norm(_to_torch(x), 4, np.asarray(norm.scale[...]),
                         np.asarray(norm.bias[...]), 1e-6)
    np.testing.assert_allclose(norm(jnp.asarray(x)), _from_torch(ref), rtol=1e-4, atol=1e-4)


# --- TATS checkpoints. -------------------------------------------------------------------------

def _tats_state_dict(c, n, channels, codes, dim, rng):
    """A random state dict with the names and PyTorch shapes of TATS's VQGAN (norm_type batch),
    including entries the loader must skip."""
    sd = {}

    def conv(name, cin, cout, k, transpose=False):
        shape = (cin, cout, k, k, k) if transpose else (cout, cin, k, k, k)
        sd[f"{name}.weight"] = rng.normal(size=shape).astype(np.float32) * 0.1
        sd[f"{name}.bias"] = rng.normal(size=(cout,)).astype(np.float32)

    def bn(name, ch):
        sd[f"{name}.weight"] = rng.normal(size=ch).astype(np.float32)
        sd[f"{name}.bias"] = rng.normal(size=ch).astype(np.float32)
        sd[f"{name}.running_mean"] = rng.normal(size=ch).astype(np.float32)
        sd[f"{name}.running_var"] = rng.uniform(0.5, 2, size=ch).astype(np.float32)
        sd[f"{name}.num_batches_tracked"] = np.array(7)

    def res(name, ch):
        bn(f"{name}.norm1", ch), conv(f"{name}.conv1.conv", ch, ch, 3)
        bn(f"{name}.norm2", ch), conv(f"{name}.conv2.conv", ch, ch, 3)

    conv("encoder.conv_first.conv", channels, c, 3)
    for i in range(n):
        conv(f"encoder.conv_blocks.{i}.down.conv", c * 2**i, c * 2 ** (i + 1), 4)
        res(f"encoder.conv_blocks.{i}.res", c * 2 ** (i + 1))
    bn("encoder.final_block.0", c * 2**n)
    bn("decoder.final_block.0", c * 2**n)
    for i in range(n):
        conv(f"decoder.conv_blocks.{i}.up.convt", c * 2 ** (n - i), c * 2 ** (n - i - 1), 4,
             transpose=True)
        res(f"decoder.conv_blocks.{i}.res1", c * 2 ** (n - i - 1))
        res(f"decoder.conv_blocks.{i}.res2", c * 2 ** (n - i - 1))
    conv("decoder.conv_last.conv", c, channels, 3)
    conv("pre_vq_conv.conv", c * 2**n, dim, 1)
    conv("post_vq_conv.conv", dim, c * 2**n, 1)
    sd["codebook.embeddings"] = rng.normal(size=(codes, dim)).astype(np.float32)
    sd["codebook.N"] = np.ones(codes, np.float32)
    sd["codebook.z_avg"] = sd["codebook.embeddings"].copy()
    sd["video_discriminator.model0.0.weight"] = np.zeros((4, 3, 4, 4, 4), np.float32)
    sd["perceptual_model.lin0.model.1.weight"] = np.zeros((1, 64, 1, 1), np.float32)
    return sd


def test_tats_state_dict_is_mapped_and_a_converted_block_matches(tmp_path):
    rng = np.random.default_rng(7)
    sd = _tats_state_dict(4, 2, 3, 10, 5, rng)
    path = str(tmp_path / "tats.npz")
    np.savez(path, **sd)
    model = convert_tats.load_tats_vqgan(
        path, (4, 8, 8, 3), hidden_channels=4, downsample=(4, 4, 2), codebook_size=10,
        embedding_dim=5,
    )
    np.testing.assert_array_equal(model.codebook[...], sd["codebook.embeddings"])
    np.testing.assert_array_equal(
        model.encoder.down[1].kernel[...],
        sd["encoder.conv_blocks.1.down.conv.weight"].transpose(2, 3, 4, 1, 0))
    np.testing.assert_array_equal(
        model.decoder.up[0].kernel[...],
        sd["decoder.conv_blocks.0.up.convt.weight"].transpose(2, 3, 4, 0, 1))
    np.testing.assert_array_equal(model.decoder.res2[1].norm1.var[...],
                                  sd["decoder.conv_blocks.1.res2.norm1.running_var"])
    # One converted block, encoder level 0: strided conv then the residual block's first norm
    # (batch norm in evaluation mode), against the same weights in PyTorch's conventions.
    x = rng.normal(size=(1, 4, 8, 8, 4)).astype(np.float32)
    stride = (2, 2, 2)
    w, b = (sd[f"encoder.conv_blocks.0.down.conv.{k}"].astype(np.float64)
            for k in ("weight", "bias"))
    h = _np_conv3d(_tats_pad(_to_torch(x), (4, 4, 4), stride), w, b, stride)
    p = {k: sd[f"encoder.conv_blocks.0.res.norm1.{k}"].astype(np.float64)[None, :, None, None, None]
         for k in ("weight", "bias", "running_mean", "running_var")}
    ref = (h - p["running_mean"]) / np.sqrt(p["running_var"] + 1e-5) * p["weight"] + p["bias"]
    got = model.encoder.res[0].norm1(model.encoder.down[0](jnp.asarray(x)))
    np.testing.assert_allclose(got, _from_torch(ref), rtol=1e-4, atol=1e-4)
    assert isinstance(model.encoder.res[0].norm1, FrozenBatchNorm)
    # The whole converted model runs: (4, 8, 8) frames -> (1, 2, 4) tokens.
    tokens = tokenize_videos(model, np.zeros((1, 4, 8, 8, 3), np.float32), batch_size=1)
    assert tokens.shape == (1, 1, 2, 4)


def test_tats_loader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="Nothing can be downloaded"):
        convert_tats.load_tats_vqgan(str(tmp_path / "missing.ckpt"))
    rng = np.random.default_rng(8)
    sd = _tats_state_dict(4, 1, 3, 10, 5, rng)
    sd["encoder.extra.weight"] = np.zeros(3, np.float32)
    del sd["codebook.embeddings"]
    path = str(tmp_path / "bad.npz")
    np.savez(path, **sd)
    with pytest.raises(ValueError, match=r"unknown keys: \['encoder.extra.weight'\]") as info:
        convert_tats.load_tats_vqgan(path, (4, 8, 8, 3), hidden_channels=4,
                                     downsample=(2, 2, 2), codebook_size=10, embedding_dim=5)
    assert "variables without a weight: ['codebook']" in str(info.value)
    sd = _tats_state_dict(4, 1, 3, 10, 5, rng)
    np.savez(path, **sd)
    with pytest.raises(ValueError, match="shapes"):
        convert_tats.load_tats_vqgan(path, (4, 8, 8, 3), hidden_channels=4,
                                     downsample=(2, 2, 2), codebook_size=12, embedding_dim=5)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="codebook collapse, measured: with the l2-normalised "
                   "lookup the loss fell from 3.56 to 0.84 in 400 updates but every token took "
                   "the same code (PSNR 10.8 dB); the plain lookup: 3.62 to 1.18. The normalised "
                   "encoder outputs align within 5 updates (mean resultant length 0.65 -> 0.997)")
def test_tiny_overfit_reconstructs_two_videos():
    import optax

    videos = data.moving_digits(0, 2, 8, canvas=16, sprite_size=8).videos * 2 - 1
    x = jnp.asarray(videos)
    model = VQVAE3D((8, 16, 16, 1), hidden_channels=8, downsample=(2, 4, 4), codebook_size=32,
                    embedding_dim=8, norm_groups=4, normalize_codes=True, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer):
        def loss_fn(model):
            reconstruction, aux = model(x)
            return (4 * jnp.mean(jnp.abs(reconstruction - x)) + aux["codebook_loss"]
                    + aux["commitment_loss"])

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    first = float(step(model, optimizer))
    for _ in range(400):
        last = float(step(model, optimizer))
    mse = float(jnp.mean(jnp.square(model(x)[0] - x)))
    assert last < 0.25 * first
    assert psnr(mse) > 20.0
