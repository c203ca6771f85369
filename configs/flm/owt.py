"""FLM and FMLM (Lee et al., 2026, "One-step Language Modeling via Continuous Denoising") on
OpenWebText.

Setting (the authors' OWT scripts, `flowjax.train.recipes.flm_text_config`): OpenWebText with the
GPT-2 tokenizer (V = 50,257), rows of 1,024 tokens, the last 100K documents held out; the small
DDiT (12 x 768 x 12, conditioning width 128, dropout 0.1) reading the (B, L, V) one-hot Gaussian
state through its embedding matrix, conditioned on the argmax time alpha; cross-entropy
x-prediction, alpha low-discrepancy in [0, 1); AdamW 3e-4, 2,500 warm-up steps, EMA 0.9999, batch
512, 1.5M updates; 1,024 Euler steps. FMLM stage one ("flow_map", from the FLM with
--config.train.init_from): batch 128, boundary probability 1/64, learned loss weighting; stage
two ("one_call", from stage one): batch 512, boundary probability 1/128; 1M updates each.

Memory: the state is B x 1,024 x 50,257 floats, 206 MB per sequence in float32 (and as much again
for the logits and their gradient); it is made per example from a seed inside the compiled step,
split over the batch axes with its batch.

Reported (OWT, generative perplexity under GPT-2 Large / unigram entropy of the samples):
FMLM 1 step 168.3 / 5.17, 2 steps 133.3 / 5.25, 4 steps 111.3 / 5.26; FLM at many steps matches
strong discrete diffusion. A low generative perplexity with a collapsed entropy (natural text of
1,024 tokens: about 5.6 nats) is a failure.

Hardware: 8 H100 GPUs (80 GB) for batch 512 without accumulation (the authors' README). Data and
tokenizer are prepared offline (`--config.data.data_dir`, `--config.data.tokenizer`).

Variants (`--config=configs/flm/owt.py:<stage>[,<size>]`): as configs/flm/lm1b.py.
"""

from __future__ import annotations

import ml_collections

from flowjax.train.recipes import flm_text_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    return flm_text_config("openwebtext", arg)
