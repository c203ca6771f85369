"""Flow Matching with General Discrete Paths: a Kinetic-Optimal Perspective (Shaul et al., 2024):
discrete flow matching of text with kinetic-optimal mixture paths.

Setting: the Guide's text recipe (`configs/fm_guide/text.py`: GPT-2 tokens, sequences of 1,024,
the time-conditioned small DDiT, generalized KL, batch 512) with the kinetic-optimal mixture
schedulers of the paper: for a mask source kappa_t = sin^2(pi t / 2); for a uniform source
kappa_t(x_1) = 1 - sin^2((1 - t) W) / sin^2 W, W = arccos sqrt(p_0(x_1)) (`path.scheduler =
"kinetic_optimal"`). The paper reports its text results as figures against the polynomial
schedules at equal compute; no single number is stated for this setting.

Hardware and data: as configs/fm_guide/text.py.

Variants (`--config=configs/kinetic_optimal/text.py:<source>[,<size>]`): mask (default) or
uniform; size "cpu" or "smoke" as in configs/mdlm/lm1b.py.
"""

from __future__ import annotations

import ml_collections

from flowjax.train.recipes import apply_text_size, language_model_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    source, _, size = (arg or "mask").partition(",")
    if source not in ("mask", "uniform"):
        raise ValueError(f"Unknown variant {source!r}; use 'mask' or 'uniform'.")
    config = language_model_config(
        "discrete_flow_matching", "openwebtext", time_conditioning=True, num_steps=1_000_000
    )
    config.path.update(kind="mixture", source=source, scheduler="kinetic_optimal")
    config.loss.name = "generalized_kl"
    config.sample.step_size = 1.0 / 1024.0
    return apply_text_size(config, size or None)
