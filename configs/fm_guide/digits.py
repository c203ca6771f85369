"""Flow Matching Guide and Code (Lipman et al., 2024): the image recipe on 8x8 digits, on a CPU.

The Guide's image recipe (`flowjax.train.recipes`: conditional-OT path, velocity prediction,
skewed times sigmoid(N(-1.2, 1.2^2)), AdamW with betas (0.9, 0.95), EMA 0.999 with warm-up,
Heun on the EDM time grid, class conditioning with label dropout 0.2 and classifier-free
guidance w = 0.2 as for ImageNet) on scikit-learn's digits (1437 training images, 8x8
grayscale, 10 classes; `flowjax.data.images`), so that the whole image pipeline runs offline on
a laptop. Changes for a run of minutes: a small ADM UNet (32 channels, levels 8x8 and 4x4, two
residual blocks each, attention at 4x4, dropout 0.1), learning rate 2e-3 with 100 warm-up
steps and cosine decay, batch 64, 1500 updates (67 epochs).

Expected result: recognisable digits and a Frechet distance in the features of a small digits
classifier that falls with training (`experiments/fm_guide/digits.py` writes the sample grid
and the curve; experiments/fm_guide/README.md says what has been measured so far).

Hardware: a CPU. On the 2-core development VM the 1500 updates took 7.6 minutes, compile
included, and the classifier-feature distance of 1000 samples fell from 10.9 (step 250) to
3.3 (step 1500); see experiments/fm_guide/README.md.

Variants (`--config=configs/fm_guide/digits.py:<variant>`):
  (none)     the CPU run above.
  dit        the same with a small DiT (patch 2: 16 tokens, width 128, depth 4).
  smoke      a tiny UNet, 3 updates of 8 images, 16 samples: seconds, for tests.
  dit_smoke  the same with a tiny DiT.
"""

from __future__ import annotations

import ml_collections

from flowjax.train.recipes import image_recipe_config, shrink_to_smoke


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if arg not in (None, "dit", "smoke", "dit_smoke"):
        raise ValueError(
            f"Unknown variant {arg!r} of the digits config; use 'dit', 'smoke' or 'dit_smoke'."
        )
    model = "dit" if arg in ("dit", "dit_smoke") else "unet"
    config = image_recipe_config("digits", model=model, conditional=True, random_flip=False)
    if model == "unet":
        config.model.channels = 32
        config.model.channel_mults = (1, 2)
        config.model.num_res_blocks = 2
        config.model.attention_factors = (2,)
        config.model.head_dim = 32
        config.model.norm_groups = 8
        config.model.dropout = 0.1
    else:
        config.model.size = "S"
        config.model.patch_size = 2
        config.model.hidden_dim = 128
        config.model.depth = 4
        config.model.num_heads = 4
    config.loss.label_dropout = 0.2

    config.optim.learning_rate = 2e-3
    config.optim.warmup_steps = 100
    config.optim.schedule = "cosine"
    config.optim.final_lr_fraction = 0.05
    config.optim.grad_clip_norm = 1.0
    config.train.num_steps = 1_500
    config.train.global_batch_size = 64
    config.train.log_every = 100
    config.checkpoint.every_steps = 500
    config.checkpoint.max_to_keep = 10

    config.sample.method = "heun"
    config.sample.time_grid = "edm"
    config.sample.edm_steps = 25
    config.sample.guidance_scale = 0.2
    config.sample.num_samples = 1_000
    config.sample.batch_size = 500
    config.evaluate.num_samples = 1_000  # digits_frechet_distance when sampling is not run first
    config.evaluate.num_points = 360
    config.evaluate.batch_size = 360
    if arg in ("smoke", "dit_smoke"):
        shrink_to_smoke(config)
    return config
