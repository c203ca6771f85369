"""MDLM (Sahoo et al., 2024, "Simple and Effective Masked Diffusion Language Models") on LM1B.

Paper setting (section 4.1, appendix B): LM1B with the bert-base-uncased tokenizer, sentences
wrapped into rows of 128 tokens ([CLS] sentence [SEP] ...); masked diffusion with the linear
schedule (alpha = 1 - (1 - 1e-3) s in MDLM time, `path.eps_start` = 1e-3), the SUBS posterior
(no mask logit, unmasked tokens copied), low-discrepancy times; the small DDiT transformer
(12 x 768 x 12) without time conditioning, dropout 0.1; AdamW 3e-4, 2,500 warm-up steps, EMA
0.9999, batch 512, about 33B tokens (500k updates of 512 x 128 tokens).

Reported test perplexity (an ELBO bound): MDLM <= 27.04 at 33B tokens (<= 23.00 at 327B); the
autoregressive transformer of the same size 22.32 (20.86 at 327B); SEDD <= 32.79.

Hardware: the paper trains on 8 GPUs (A100 / H100) for about a day at 33B tokens. Data and
tokenizer cannot be downloaded here: prepare `lm1b` with TFDS on a machine with internet (then
`--config.data.data_dir=DIR`) and save the tokenizer with
`AutoTokenizer.from_pretrained('bert-base-uncased').save_pretrained(DIR)`
(`--config.data.tokenizer=DIR`).

Variants (`--config=configs/mdlm/lm1b.py:<variant>[,<size>]`):
  (none) / mdlm  the masked diffusion model above.
  ar             the autoregressive baseline (the same network, causal).
  size           (none) the paper setting; "cpu": a short run on Python's documentation text in
                 bytes (minutes on 2 CPU cores); "smoke": a synthetic language, seconds.
"""

from __future__ import annotations

import ml_collections

from flowjax.train.recipes import apply_text_size, language_model_config

MODELS = {"mdlm": "masked_diffusion", "ar": "autoregressive"}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    model, _, size = (arg or "mdlm").partition(",")
    if model not in MODELS:
        raise ValueError(f"Unknown variant {model!r} of the MDLM LM1B config; use 'mdlm' or 'ar'.")
    config = language_model_config(
        MODELS[model], "lm1b", time_conditioning=False, num_steps=500_000
    )
    if model == "mdlm":
        config.path.update(schedule="linear", eps_start=1e-3, eps_end=0.0)
        config.sample.step_size = 1.0 / 1000.0
    return apply_text_size(config, size or None)
