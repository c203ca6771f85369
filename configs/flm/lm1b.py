"""FLM and FMLM (Lee et al., 2026, "One-step Language Modeling via Continuous Denoising") on LM1B.

Setting (the authors' LM1B scripts, `flowjax.train.recipes.flm_text_config`): LM1B with the
bert-base-uncased tokenizer, sentences wrapped into rows of 128 tokens; the small DDiT
(12 x 768 x 12, conditioning width 128, dropout 0.1) reading the (B, L, V) one-hot Gaussian state
through its embedding matrix, conditioned on the argmax time alpha; cross-entropy x-prediction
with alpha drawn low-discrepancy in [0, 1); AdamW 3e-4, 2,500 warm-up steps, EMA 0.9999, batch
512, 1.5M updates (the paper reports 1M); 1,024 Euler steps in g on a grid uniform in alpha.
FMLM: stage one ("flow_map", from the FLM with --config.train.init_from) distils the flow map
with the semigroup loss, learned loss weighting and boundary pairs (0, 1) with probability 1/64,
batch 512; stage two ("one_call", from stage one) regresses a one-call predictor onto it with
boundary probability 1/128, batch 512; each 1M updates at 3e-4.

Reported: on LM1B FLM matches strong discrete diffusion at many steps and FMLM's one-step samples
exceed the 8-step quality of the few-step discrete baselines (the paper's LM1B figures; its
headline numbers are on OpenWebText, configs/flm/owt.py).

Hardware: the authors train on 8 H100 GPUs. Data and tokenizer cannot be downloaded here:
prepare `lm1b` with TFDS on a machine with internet (then `--config.data.data_dir=DIR`) and save
the tokenizer with `AutoTokenizer.from_pretrained('bert-base-uncased').save_pretrained(DIR)`
(`--config.data.tokenizer=DIR`).

Variants (`--config=configs/flm/lm1b.py:<stage>[,<size>]`): stage "flm" (default), "flow_map",
"one_call"; size (none) the paper setting, "cpu" (Python's documentation text in bytes, minutes
on 2 CPU cores) or "smoke" (a synthetic language, seconds).
"""

from __future__ import annotations

import ml_collections

from flowjax.train.recipes import flm_text_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    return flm_text_config("lm1b", arg)
