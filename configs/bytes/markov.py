"""Exact byte-level probabilities (Phan et al., 2024, "Understanding and Mitigating Tokenization
Bias in Language Models"; Phan et al., 2025, "Exact Byte-Level Probabilities from Tokenized
Language Models for FIM-Tasks and Model Ensembles"): the autoregressive model of the trained
check in experiments/bytes.

Text from a known order-1 Markov chain over 8 letters (`experiments/bytes/run.py` writes the
corpus) is tokenized by a byte-level BPE trained on it with `tokenizers`; a causal text
transformer learns the token stream. Conditioning it on the *tokens* of a prompt gives biased
next-byte probabilities; the Byte-Token Representation Lemma (`flowjax.solvers.byte_level`)
gives the byte-level ones, which the chain's transition table checks.

Set the corpus and the tokenizer on the command line (the experiment trains one model per
vocabulary): --config.data.path=DIR_OF_TXT --config.data.tokenizer=TOKENIZER_JSON; the variant
"smoke" is the test size.

The network: 2 blocks, width 64, 4 heads, no dropout, sequences of 64 tokens; AdamW 1e-3 with
100 warm-up steps, EMA 0.999, batch 64, 2,000 updates (minutes on a CPU). The papers' models
(Llama 2, Mistral, Yi, on FIM coding benchmarks: about +18% pass@1 from exact byte-level
prompting, up to +3.7% from byte-level ensembles) need GPUs and their weights; none is
reproduced here.
"""

from __future__ import annotations

import ml_collections

from flowjax.train.config import default_config
from flowjax.train.registry import model_defaults

def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if arg not in (None, "", "smoke"):
        raise ValueError(f"Unknown variant {arg!r} of the byte-level config; use 'smoke' or none.")
    config = default_config("autoregressive")
    config.data = dict(
        source="text_files",
        path=ml_collections.config_dict.placeholder(str),
        tokenizer=ml_collections.config_dict.placeholder(str),
        seq_len=64,
    )
    config.evaluate.data = dict(split="test", shuffle=False)
    config.evaluate.judge = ""
    config.model = model_defaults("text_transformer")
    config.model.update(
        size="tiny", hidden_dim=64, depth=2, num_heads=4, cond_dim=32, dropout=0.0,
        causal=True, time_conditioning=False,
    )
    config.optim.update(
        name="adamw", learning_rate=1e-3, warmup_steps=100, grad_clip_norm=1.0, ema_decay=0.999
    )
    config.train.update(num_steps=2_000, global_batch_size=64, log_every=250)
    config.checkpoint.every_steps = 1_000
    config.sample.update(num_samples=64, batch_size=64, num_trajectories=4)
    config.evaluate.update(num_points=256, batch_size=64, num_samples=64)
    if arg == "smoke":
        config.model.update(hidden_dim=32, depth=1, num_heads=2, cond_dim=16)
        config.data.seq_len = 16
        config.train.update(num_steps=10, global_batch_size=8, log_every=5)
        config.checkpoint.every_steps = 10
        config.sample.update(num_samples=8, batch_size=8)
        config.evaluate.update(num_points=16, batch_size=8, num_samples=8)
    return config
