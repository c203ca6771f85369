"""GPT-2 in Flax NNX against Hugging Face `transformers`: a tiny GPT2LMHeadModel with random
weights (tests/data/gpt2_tiny/, made with its logits by tests/reference/make_gpt2_reference.py)
converted by `load_gpt2` gives the same logits and the same greedy KV-cache decoding; prefilling
then decoding equals the full pass; the causal property; the checkpoint, config and input
errors."""

from __future__ import annotations

import json
import os
import shutil
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import load_file, save_file

from flowjax.models import GPT2, GPT2Config, load_gpt2
from flowjax.models.gpt2 import GPT2_SIZES

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
CHECKPOINT = os.path.join(DATA, "gpt2_tiny")
TOLERANCE = 1e-4
forward = nnx.jit(lambda m, tokens: m(tokens))
decode = nnx.jit(lambda m, tokens, cache: m.decode(tokens, cache))


@pytest.fixture(scope="module")
def reference():
    with np.load(os.path.join(DATA, "gpt2_tiny_reference.npz")) as archive:
        return {name: archive[name] for name in archive.files}


@pytest.fixture(scope="module")
def model():
    return load_gpt2(CHECKPOINT)


def copy_checkpoint(tmp_path, config_changes=None, arrays=None):
    """A copy of the tiny checkpoint in tmp_path, with config.json changed and the weights
    replaced by `arrays` (Hugging Face names) when given."""
    target = tmp_path / "gpt2"
    target.mkdir()
    with open(os.path.join(CHECKPOINT, "config.json")) as f:
        config = json.load(f)
    config.update(config_changes or {})
    (target / "config.json").write_text(json.dumps(config))
    if arrays is None:
        shutil.copy(os.path.join(CHECKPOINT, "model.safetensors"), target)
    else:
        save_file(arrays, str(target / "model.safetensors"))
    return target


def tiny_weights():
    return load_file(os.path.join(CHECKPOINT, "model.safetensors"))


# Against transformers ---------------------------------------------------------------------------


def test_config_is_read_from_the_checkpoint(model):
    assert model.config == GPT2Config(
        vocab_size=97, n_positions=32, n_embd=32, n_layer=2, n_head=4
    )
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(nnx.state(model)))


@pytest.mark.parametrize("which", ["tokens", "short_tokens"])
def test_logits_equal_transformers(model, reference, which):
    logits = forward(model, reference[which])
    expected = reference["logits" if which == "tokens" else "short_logits"]
    assert logits.dtype == jnp.float32 and logits.shape == expected.shape
    np.testing.assert_allclose(logits, expected, atol=TOLERANCE, rtol=0)


def test_greedy_kv_cache_decoding_equals_transformers(model, reference):
    """Prefill the prompt, then decode one token at a time under nnx.jit: the same tokens and
    the same logits at every step as transformers' own KV-cache decoding."""
    decode = nnx.jit(lambda m, tokens, cache: m.decode(tokens, cache))
    prompt, steps = reference["prompt"], reference["greedy_logits"].shape[1]
    logits, cache = decode(model, jnp.asarray(prompt), model.init_cache(len(prompt), 20))
    tokens, step_logits = [prompt], []
    for _ in range(steps):
        step_logits.append(logits[:, -1])
        tokens.append(np.asarray(jnp.argmax(logits[:, -1], axis=-1))[:, None])
        logits, cache = decode(model, jnp.asarray(tokens[-1]), cache)
    assert int(cache.length) == prompt.shape[1] + steps
    np.testing.assert_array_equal(np.concatenate(tokens, axis=1), reference["greedy_tokens"])
    np.testing.assert_allclose(
        np.stack(step_logits, axis=1), reference["greedy_logits"], atol=TOLERANCE, rtol=0
    )


def test_log_prob_sums_the_next_token_log_probabilities(model, reference):
    tokens = reference["short_tokens"]
    log_p = jax.nn.log_softmax(reference["short_logits"].astype(np.float64), axis=-1)
    expected = np.take_along_axis(log_p[:, :-1], tokens[:, 1:, None], axis=-1).sum(axis=(1, 2))
    log_prob = nnx.jit(lambda m, tokens, bos: m.log_prob(tokens, bos), static_argnums=2)
    np.testing.assert_allclose(log_prob(model, tokens, None), expected, atol=1e-3, rtol=0)
    with_bos = log_prob(model, tokens[:, 1:], int(tokens[0, 0]))
    np.testing.assert_allclose(with_bos[0], expected[0], atol=1e-3, rtol=0)


# Properties -------------------------------------------------------------------------------------


def test_prefill_then_decode_equals_the_full_pass(model):
    tokens = jax.random.randint(jax.random.key(0), (3, 14), 0, 97)
    full = forward(model, tokens)
    cache = model.init_cache(3, max_length=16)
    logits, cache = decode(model, tokens[:, :5], cache)
    pieces = [logits]
    for chunk in (tokens[:, 5:8], tokens[:, 8:9], tokens[:, 9:14]):
        logits, cache = decode(model, chunk, cache)
        pieces.append(logits)
    assert int(cache.length) == 14
    np.testing.assert_allclose(jnp.concatenate(pieces, axis=1), full, atol=1e-5, rtol=0)


def test_causal_logits_do_not_see_later_tokens(model):
    tokens = np.asarray(jax.random.randint(jax.random.key(1), (2, 20), 0, 97))
    changed = tokens.copy()
    changed[:, 11:] = (changed[:, 11:] + 1 + np.arange(9)) % 97
    before, after = forward(model, tokens), forward(model, changed)
    np.testing.assert_allclose(before[:, :11], after[:, :11], atol=1e-6, rtol=0)
    assert float(jnp.abs(before[:, 11:] - after[:, 11:]).max()) > 1e-2


def test_bfloat16_compute_keeps_float32_parameters_and_logits(reference):
    model = load_gpt2(CHECKPOINT, dtype=jnp.bfloat16)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(nnx.state(model)))
    logits = forward(model, reference["short_tokens"])
    assert logits.dtype == jnp.float32
    np.testing.assert_allclose(logits, reference["short_logits"], atol=0.1, rtol=0)
    cache = model.init_cache(2)
    assert cache.keys.dtype == jnp.bfloat16


def test_named_sizes_and_the_124m_parameter_count():
    assert GPT2_SIZES["gpt2-large"] == (1280, 36, 20)
    config = GPT2Config.named("gpt2")
    assert (config.vocab_size, config.n_positions, config.n_embd) == (50257, 1024, 768)
    abstract = nnx.eval_shape(lambda: GPT2(config, rngs=nnx.Rngs(0)))
    count = sum(leaf.size for leaf in jax.tree.leaves(nnx.state(abstract)))
    assert count == 124_439_808  # transformers' GPT2LMHeadModel("gpt2"), tied head counted once
    with pytest.raises(ValueError, match="Unknown GPT-2 size"):
        GPT2Config.named("gpt3")
    with pytest.raises(ValueError, match="not divisible"):
        GPT2Config(n_embd=100, n_head=3)


def test_hf_settings_this_network_does_not_implement_are_refused():
    with pytest.raises(ValueError, match="activation_function"):
        GPT2Config.from_hf_json({"activation_function": "relu", "n_embd": 32, "n_head": 4})
    with pytest.raises(ValueError, match="n_inner"):
        GPT2Config.from_hf_json({"n_inner": 100, "n_embd": 32, "n_head": 4})
    with pytest.raises(ValueError, match="scale_attn_by_inverse_layer_idx"):
        GPT2Config.from_hf_json({"scale_attn_by_inverse_layer_idx": True})


# Checkpoint formats and errors ------------------------------------------------------------------


def test_older_names_buffers_and_an_equal_lm_head_are_accepted(tmp_path, model, reference):
    """Checkpoints without the "transformer." prefix, with the causal-mask buffers, and with
    the tied head stored as lm_head.weight load to the same network."""
    arrays = {name.removeprefix("transformer."): value for name, value in tiny_weights().items()}
    arrays["h.0.attn.bias"] = np.tril(np.ones((1, 1, 32, 32), np.float32))
    arrays["h.0.attn.masked_bias"] = np.array(-1e4, np.float32)
    arrays["lm_head.weight"] = arrays["wte.weight"].copy()
    loaded = load_gpt2(copy_checkpoint(tmp_path, arrays=arrays))
    tokens = reference["short_tokens"]
    np.testing.assert_array_equal(forward(loaded, tokens), forward(model, tokens))


def test_an_untied_lm_head_is_refused(tmp_path):
    arrays = tiny_weights()
    arrays["lm_head.weight"] = arrays["transformer.wte.weight"] + 1.0
    with pytest.raises(ValueError, match="lm_head.weight differs"):
        load_gpt2(copy_checkpoint(tmp_path, arrays=arrays))


def test_a_missing_directory_says_how_to_get_the_weights(tmp_path):
    missing = tmp_path / "gpt2-large"
    with pytest.raises(FileNotFoundError, match="save_pretrained") as error:
        load_gpt2(missing)
    assert str(missing) in str(error.value)


def test_a_missing_weights_file_or_config_names_the_directory(tmp_path):
    target = copy_checkpoint(tmp_path)
    (target / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors") as error:
        load_gpt2(target)
    assert str(target) in str(error.value)
    (target / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_gpt2(target)


def test_a_torch_bin_without_torch_is_a_clear_error(tmp_path, monkeypatch):
    target = copy_checkpoint(tmp_path)
    (target / "model.safetensors").rename(target / "pytorch_model.bin")
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    with pytest.raises(FileNotFoundError, match="needs torch"):
        load_gpt2(target)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"n_embd": 48}, r"wrong shapes: .*wte.weight \(97, 32\) \(expected \(97, 48\)\)"),
        ({"vocab_size": 100}, r"wrong shapes: wte.weight \(97, 32\) \(expected \(100, 32\)\)"),
        ({"n_layer": 3}, r"missing 12: h\.2\.attn\.c_attn\.bias"),
        ({"n_layer": 1}, r"unexpected 12: h\.1\.attn\.c_attn\.bias"),
    ],
)
def test_a_config_that_does_not_match_the_weights_is_reported(tmp_path, changes, message):
    with pytest.raises(ValueError, match=message):
        load_gpt2(copy_checkpoint(tmp_path, config_changes=changes))


def test_token_errors(model):
    with pytest.raises(ValueError, match=r"ids in \[0, 97\], outside GPT-2's vocabulary"):
        model(np.array([[0, 5, 97]]))
    with pytest.raises(ValueError, match=r"ids in \[-1, 5\]"):
        model.decode(np.array([[-1, 5]]), model.init_cache(1, 8))
    with pytest.raises(ValueError, match="33 tokens is longer than the model's context"):
        model(np.zeros((1, 33), np.int32))
    with pytest.raises(ValueError, match=r"shape \(B, L\)"):
        model(np.zeros((4,), np.int32))
    with pytest.raises(ValueError, match="integer token ids"):
        model(np.zeros((1, 4), np.float32))


def test_cache_errors(model):
    cache = model.init_cache(2, max_length=6)
    with pytest.raises(ValueError, match="7 tokens is longer than the KV cache"):
        model.decode(np.zeros((2, 7), np.int32), cache)
    _, cache = decode(model, np.zeros((2, 4), np.int32), cache)
    with pytest.raises(ValueError, match="holds 4 of 6 positions: 3 more tokens do not fit"):
        model.decode(np.zeros((2, 3), np.int32), cache)
    with pytest.raises(ValueError, match="this model and batch need"):
        model.decode(np.zeros((3, 1), np.int32), cache)
    with pytest.raises(ValueError, match="cache length must be in"):
        model.init_cache(2, max_length=33)
