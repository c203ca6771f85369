"""MDLM (Sahoo et al., 2024) on OpenWebText.

Paper setting (section 4.1, appendix B): OpenWebText with the GPT-2 tokenizer, documents joined by
<|endoftext|> and cut into rows of 1,024 tokens, the last 100,000 documents held out; the
masked diffusion model of `configs/mdlm/lm1b.py` (linear schedule, SUBS posterior, small DDiT
without time conditioning, dropout 0.1, AdamW 3e-4, EMA 0.9999, batch 512) for about 262B tokens
(500k updates of 512 x 1,024); samples by the ancestral sampler with 1,000 steps, which skips
the network when no token changed.

Reported: test perplexity MDLM <= 23.21 at 262B tokens, autoregressive 17.54, SEDD <= 24.10;
generative perplexity of samples is measured under GPT-2 Large (`--config.evaluate.judge=DIR`
with a local GPT-2 Large, see flowjax.train.judge).

Hardware: 16 GPUs for several days in the paper. Data and tokenizer must be prepared offline:
`openwebtext` through TFDS (`--config.data.data_dir=DIR`) and
`AutoTokenizer.from_pretrained('gpt2').save_pretrained(DIR)` (`--config.data.tokenizer=DIR`).

Variants: as `configs/mdlm/lm1b.py` ("mdlm" or "ar", then ",cpu" or ",smoke").
"""

from __future__ import annotations

import ml_collections

from flowjax.train.recipes import apply_text_size, language_model_config

MODELS = {"mdlm": "masked_diffusion", "ar": "autoregressive"}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    model, _, size = (arg or "mdlm").partition(",")
    if model not in MODELS:
        raise ValueError(f"Unknown variant {model!r} of the MDLM OWT config; use 'mdlm' or 'ar'.")
    config = language_model_config(
        MODELS[model], "openwebtext", time_conditioning=False, num_steps=500_000
    )
    if model == "mdlm":
        config.path.update(schedule="linear", eps_start=1e-3, eps_end=0.0)
        config.sample.step_size = 1.0 / 1000.0
    return apply_text_size(config, size or None)
