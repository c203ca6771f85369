"""Builds tests/data/gpt2_tiny/ and tests/data/gpt2_tiny_reference.npz: a tiny GPT-2 (Radford et
al., 2019) with random weights in Hugging Face `transformers`, and its outputs.

1. `transformers.GPT2LMHeadModel` with vocab 97, n_positions 32, n_embd 32, n_layer 2, n_head 4,
   every parameter redrawn from a fixed seed (weights N(0, 0.2^2), biases N(0, 0.1^2), layer-norm
   gains 1 + N(0, 0.1^2)), so that the logits vary by O(1) and every parameter matters;
   saved with `save_pretrained` (config.json and model.safetensors) into tests/data/gpt2_tiny/.
2. Its logits, computed in float64 and stored as float32, on fixed tokens: `logits` of `tokens`
   (3, 32), the full context, and `short_logits` of `short_tokens` (2, 7); `float32_logits`,
   those of `tokens` computed by the float32 model, measure transformers' own float32 error.
3. Greedy decoding with the model's own KV cache (`past_key_values`), in float64: from `prompt`
   (2, 5), 12 tokens, each the argmax of the previous step's last logits; `greedy_tokens`
   (2, 17) holds the prompt and the decoded tokens, `greedy_logits` (2, 12, 97) the logits of
   each step's last position (the prompt's last position, then each decoded token's but the
   final one's).

`tests/test_gpt2.py` converts the checkpoint with `flowjax.models.load_gpt2` and compares. Run it
from the repository root in an environment with torch, transformers, safetensors and NumPy (JAX
is not needed):

    python tests/reference/make_gpt2_reference.py
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import torch
import transformers

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(os.path.dirname(HERE), "data")
CHECKPOINT = os.path.join(DATA, "gpt2_tiny")
REFERENCE = os.path.join(DATA, "gpt2_tiny_reference.npz")
SIZES = dict(vocab_size=97, n_positions=32, n_embd=32, n_layer=2, n_head=4)
DECODE_STEPS = 12


def build_model() -> transformers.GPT2LMHeadModel:
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        **SIZES, bos_token_id=96, eos_token_id=96, resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    model = transformers.GPT2LMHeadModel(config).eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if name.endswith("bias"):
                param.copy_(0.1 * noise)
            elif ".ln_" in name or "ln_f" in name:
                param.copy_(1.0 + 0.1 * noise)
            else:
                param.copy_(0.2 * noise)
    return model


def logits_of(model, tokens: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(tokens).long()).logits.numpy().astype(np.float32)


def greedy_decode(model, prompt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        out = model(torch.from_numpy(prompt).long(), use_cache=True)
        cache, last = out.past_key_values, out.logits[:, -1]
        tokens, step_logits = [torch.from_numpy(prompt).long()], []
        for _ in range(DECODE_STEPS):
            step_logits.append(last)
            token = last.argmax(-1, keepdim=True)
            tokens.append(token)
            out = model(token, past_key_values=cache, use_cache=True)
            cache, last = out.past_key_values, out.logits[:, -1]
    return (
        torch.cat(tokens, dim=1).numpy().astype(np.int32),
        torch.stack(step_logits, dim=1).numpy().astype(np.float32),
    )


def main() -> None:
    model = build_model()
    if os.path.isdir(CHECKPOINT):
        shutil.rmtree(CHECKPOINT)
    model.save_pretrained(CHECKPOINT)
    names = sorted(os.listdir(CHECKPOINT))
    if "model.safetensors" not in names:
        raise RuntimeError(f"save_pretrained wrote {names}, without model.safetensors.")
    with open(os.path.join(CHECKPOINT, "config.json")) as f:
        assert json.load(f)["n_embd"] == SIZES["n_embd"]

    rng = np.random.default_rng(0)
    tokens = rng.integers(0, SIZES["vocab_size"], (3, SIZES["n_positions"]), dtype=np.int32)
    short_tokens = rng.integers(0, SIZES["vocab_size"], (2, 7), dtype=np.int32)
    prompt = rng.integers(0, SIZES["vocab_size"], (2, 5), dtype=np.int32)
    model64 = build_model().double()
    greedy_tokens, greedy_logits = greedy_decode(model64, prompt)
    np.savez(
        REFERENCE,
        tokens=tokens,
        logits=logits_of(model64, tokens),
        short_tokens=short_tokens,
        short_logits=logits_of(model64, short_tokens),
        prompt=prompt,
        greedy_tokens=greedy_tokens,
        greedy_logits=greedy_logits,
        float32_logits=logits_of(model, tokens),
        versions=np.array(f"torch {torch.__version__}, transformers {transformers.__version__}"),
    )
    size = sum(os.path.getsize(os.path.join(CHECKPOINT, n)) for n in names)
    print(f"Wrote {CHECKPOINT} ({', '.join(names)}; {size} bytes) and {REFERENCE}")


if __name__ == "__main__":
    main()
