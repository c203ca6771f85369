"""The Infinite Mask Diffusion Model (IMDM) on LM1B, with IM-SDTT and IM-ReDi.

Setting (the authors' LM1B scripts): the MDLM recipe of `configs/mdlm/lm1b.py` (bert-base-uncased,
rows of 128 tokens, small DDiT 12 x 768 x 12 without time conditioning, linear schedule, AdamW
3e-4, EMA 0.9999, batch 512) with the infinite mask: masked positions read E[MASK] + MLP(eps),
eps uniform in [-1, 1]^768, the MLP's last layer zero so that the model starts as the MDLM
checkpoint it loads (--config.train.init_from=MDLM_WORKDIR). IM-SDTT: batch 32, lr 6e-5, 500
warm-up steps, 7 rounds of 10,000 updates (the teacher's 1,024 steps halved each round down to
an 8-step student). IM-ReDi: 60,000 updates on couplings of the 1,024-step teacher
(`python -m flowjax.main --mode=couplings --couplings_num=100000 --couplings_steps=1024`).

Reported: the paper compares generative perplexity (GPT-2 Large) and unigram entropy at 1, 2, 4,
8 and 128 steps against few-step distillations of MDLM; we have not been able to confirm its LM1B
figures, so none are quoted here.

Hardware: as MDLM, 8 GPUs; the data and tokenizer are prepared offline (see configs/mdlm/lm1b.py).

Variants (`--config=configs/imdm/lm1b.py:<stage>[,<model>][,large][,<size>]`, see
`flowjax.train.recipes.imdm_text_config`): stage teacher / sdtt / redi; model imdm / mdm; large
(1536 x 24 x 16); size cpu / smoke.
"""

from __future__ import annotations

import ml_collections

from flowjax.train.recipes import imdm_text_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    return imdm_text_config("lm1b", arg, noise_dim=768, sdtt_batch=32, redi_updates=60_000)
