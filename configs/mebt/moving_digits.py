"""MeBT (Yoo et al., CVPR 2023; PAPERS.md section 11) on a CPU: bouncing scikit-learn digits
(`flowjax.data`'s "moving_digits": 8 frames of 32 x 32, one 12 x 12 digit) as the tokens of
the small video tokenizer of `configs/mebt/tokenizer.py:fsq,mse` (a (4, 8, 8) grid of 256
tokens per video from its 240 codes; the tokens of another tokenizer need its codebook size in
data.codebook_size, or None to read it from the file), read from a token file (source
"video_tokens"; set --config.data.path=FILE.npz, written by `experiments/mebt/run.py`, which
also sets the codebook size, or `flowjax.data.write_video_tokens`).

Setting: the paper's layer kinds and order at CPU size (width 128, 4 heads, 32 latents, 3 enc /
2 self then 3 dec / 2 lt2l blocks), the objective and sampler of `configs/mebt/ucf101.py`
(MaskGIT draft of 16 steps, then 2 revision rounds of 8 parts), the length curriculum over the
4 latent frames with b = 250 updates (all the weight on 4 frames from about 1,500 updates),
AdamW 5e-4 with 100 warm-up updates, batch 32, 3,000 updates. What the samples look like
(digits that keep moving, measured against the real videos): experiments/mebt/README.md.

Variants (`--config=configs/mebt/moving_digits.py:<variant>`): smoke (3 updates of a tiny
network, seconds).
"""

from __future__ import annotations

import ml_collections

from flowjax.models import mebt_layers
from flowjax.train.recipes import mebt_config, shrink_mebt_to_smoke


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if arg not in (None, "", "smoke"):
        raise ValueError(f"Unknown variant {arg!r} of the MeBT moving digits config; use 'smoke'.")
    config = mebt_config(dict(path="", codebook_size=240), batch_size=32, num_steps=3_000,
                         learning_rate=5e-4, curriculum_b=250.0)
    config.model.update(hidden_dim=128, num_heads=4, num_latents=32, layers=mebt_layers(3, 3))
    config.optim.warmup_steps = 100
    config.train.log_every = 50
    config.checkpoint.every_steps = 1_000
    config.sample.update(steps=16, revise_steps=8, num_samples=64, batch_size=64)
    config.evaluate.update(num_points=256, batch_size=64, num_samples=64)
    if arg == "smoke":
        shrink_mebt_to_smoke(config)
    return config
