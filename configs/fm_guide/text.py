"""Flow Matching Guide and Code (Lipman et al., 2024): the text example (section 7; the
reference code's examples/text).

Paper setting: discrete flow matching on GPT-2 tokens, sequences of 1,024, the mixture path with
kappa_t = t (polynomial, n = 1) from a mask or a uniform source, the time-conditioned small DDiT
(12 x 768 x 12), trained with the cross-entropy or the generalized KL (an ELBO), batch 512, 1M
updates; sampled by the CTMC Euler sampler with float64 categorical draws (the float32 draws
are what kept users of the reference code from its numbers, flow_matching issue 27).

Reported (FineWeb-Edu training, WikiText-103 evaluation), generative perplexity under GPT-2 /
ELBO perplexity: mask + CE 128.9 / 53.2, mask + generalized KL 132.2 / 47.9, uniform + CE
90.9 / 71.7, uniform + generalized KL 82.1 / 71.3. FineWeb-Edu is not in the TFDS catalogue:
this config reads OpenWebText (MDLM's preparation); to match the paper, point a `text_files`
source at FineWeb-Edu text.

Hardware: the reference trains on 16 GPUs for days. Data and the GPT-2 tokenizer must be prepared
offline (see configs/mdlm/owt.py). Sampling in float64 needs JAX_ENABLE_X64=1.

Variants (`--config=configs/fm_guide/text.py:<source>_<loss>[,<size>]`):
  mask_ce (default), mask_gkl, uniform_ce, uniform_gkl; size as in configs/mdlm/lm1b.py
  ("cpu" or "smoke"; they sample in float32).
"""

from __future__ import annotations

import ml_collections

from flowjax.train.recipes import apply_text_size, language_model_config

LOSSES = {"ce": "cross_entropy", "gkl": "generalized_kl"}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variant, _, size = (arg or "mask_ce").partition(",")
    source, _, loss = variant.partition("_")
    if source not in ("mask", "uniform") or loss not in LOSSES:
        raise ValueError(
            f"Unknown variant {variant!r} of the Guide's text config; use mask_ce, mask_gkl, "
            "uniform_ce or uniform_gkl."
        )
    config = language_model_config(
        "discrete_flow_matching", "openwebtext", time_conditioning=True, num_steps=1_000_000
    )
    config.path.update(kind="mixture", source=source, scheduler="polynomial", polynomial_n=1.0)
    config.loss.name = LOSSES[loss]
    config.sample.step_size = 1.0 / 1024.0
    config.sample.categorical_dtype = "float64"
    config = apply_text_size(config, size or None)
    if size:
        config.sample.categorical_dtype = "float32"
    return config
