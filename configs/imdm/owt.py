"""The Infinite Mask Diffusion Model (IMDM) on OpenWebText, with IM-SDTT and IM-ReDi.

Setting (the authors' OWT scripts): the MDLM recipe of `configs/mdlm/owt.py` (GPT-2 tokenizer,
rows of 1,024 tokens, small DDiT 12 x 768 x 12 without time conditioning, linear schedule, AdamW
3e-4, EMA 0.9999, batch 512) with the infinite mask, eps uniform in [-1, 1]^2048, loaded from an
MDLM checkpoint (--config.train.init_from=MDLM_WORKDIR). IM-SDTT: batch 128, lr 6e-5, 500
warm-up steps, 7 rounds of 10,000 updates (1,024 teacher steps down to an 8-step student).
IM-ReDi: 50,000 updates on 100,000 couplings of the 1,024-step teacher. The large model
(",large"): width 1536, 24 blocks, 16 heads.

Reported one-step baselines (OWT, generative perplexity under GPT-2 Large / unigram entropy, as
quoted by the IMDM paper): MDLM + SDTT 1260.9 / 5.26, MDLM + Di4C 1298.8 / 5.29. A low generative
perplexity with a collapsed entropy (natural text of 1,024 tokens: about 5.6 nats) is a failure.
IMDM's own OWT figures are not quoted here: we have not been able to confirm them.

Hardware: as MDLM on OWT (16 GPUs for several days); data and tokenizer prepared offline.

Variants: as configs/imdm/lm1b.py.
"""

from __future__ import annotations

import ml_collections

from flowjax.train.recipes import imdm_text_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    return imdm_text_config("openwebtext", arg, noise_dim=2048, sdtt_batch=128, redi_updates=50_000)
