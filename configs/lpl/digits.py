"""The latent perceptual loss (LPL; Berrada et al., PAPERS.md section 4) on a CPU: 8x8 digits
through a small KL autoencoder of the SD-VAE design, then class-conditional latent flow matching
with and without LPL at the same budget (`experiments/latent/run.py` runs all of it).

Variant "autoencoder": the autoencoder (objective "autoencoder"; Rombach et al., appendix G):
two levels (16, 32 channels, one residual block each, GroupNorm of 8 groups), f = 2, 2 latent
channels, so an 8x8x1 digit becomes a 4x4x2 latent (half the numbers); L1 + 1e-6 KL, AdamW
2e-3, batch 64, 3,000 updates. `--mode=export` writes it as a diffusers checkpoint with its
measured scaling factor (<workdir>/autoencoder).

Default: the digits encoded once into that latent space (`flowjax.data.write_latents`, posterior
means times the scaling factor; --config.data.path=<store>), and the digits recipe of the Flow
Matching Guide (`configs/fm_guide/digits.py`: conditional-OT path, velocity prediction, skewed
times, label dropout 0.2, guidance w = 0.2, Heun on the EDM grid) with a small DiT (patch 1: 16
tokens, width 128, depth 4) for 1,500 updates of 64 latents, plus the latent perceptual loss of
the autoencoder's decoder (--config.loss.lpl_autoencoder=<workdir>/autoencoder) with weight 1
for t >= 0.8. Variant "baseline": the same without LPL. With --config.evaluate.autoencoder=
<workdir>/autoencoder the sample grid (and the digits distance of `--mode=evaluate`) shows
decoded digits.

Expected: recognisable decoded digits; whether LPL lowers the decoder-feature error and the
digits distance at this scale is what experiments/latent/README.md reports (the paper's 6-20%
FID gains are on ImageNet-scale models).

Variants (`--config=configs/lpl/digits.py:<variant>`): (none), baseline, autoencoder, smoke
(with any of them: 3 updates, seconds).
"""

from __future__ import annotations

import ml_collections

from flowjax.train.recipes import image_recipe_config, shrink_to_smoke
from flowjax.train.config import default_config
from flowjax.models.autoencoder import AUTOENCODER_SHARDING_RULES
from flowjax.train.registry import model_defaults

VARIANTS = ("baseline", "autoencoder", "smoke")


def autoencoder_config() -> ml_collections.ConfigDict:
    config = default_config("autoencoder")
    config.data = dict(source="digits")
    config.evaluate.data = dict(split="test", shuffle=False)
    config.model = model_defaults("autoencoder_kl")
    config.model.update(block_out_channels=(16, 32), layers_per_block=1, latent_channels=2,
                        norm_num_groups=8)
    config.sharding.rules = AUTOENCODER_SHARDING_RULES
    config.loss.update(reconstruction="l1", kl_weight=1e-6)
    config.optim.update(name="adamw", learning_rate=2e-3, weight_decay=0.0, warmup_steps=100,
                        schedule="cosine", final_lr_fraction=0.05, ema_decay=0.999)
    config.train.update(num_steps=3_000, global_batch_size=64, log_every=250)
    config.checkpoint.every_steps = 1_000
    config.sample.update(num_samples=64, batch_size=64)
    config.evaluate.update(num_points=360, batch_size=360)
    return config


def latent_flow_config(lpl: bool) -> ml_collections.ConfigDict:
    config = image_recipe_config("digits", model="dit", conditional=True, random_flip=False)
    config.data = dict(source="array_record", path="", num_classes=10)
    config.evaluate.data = dict(shuffle=False)
    config.model.update(image_size=4, size="S", patch_size=1, hidden_dim=128, depth=4,
                        num_heads=4)
    config.loss.label_dropout = 0.2
    if lpl:
        config.loss.update(lpl_weight=1.0, lpl_t_min=0.8, lpl_autoencoder="")
        config.sharding.rules = config.sharding.rules + AUTOENCODER_SHARDING_RULES
    config.optim.update(learning_rate=2e-3, warmup_steps=100, schedule="cosine",
                        final_lr_fraction=0.05, grad_clip_norm=1.0)
    config.train.update(num_steps=1_500, global_batch_size=64, log_every=100)
    config.checkpoint.every_steps = 500
    config.sample.update(guidance_scale=0.2, num_samples=1_000, batch_size=500)
    config.evaluate.update(num_points=360, batch_size=360, num_samples=1_000)
    return config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    names = [] if not arg else arg.split(",")
    unknown = set(names) - set(VARIANTS)
    if unknown or {"baseline", "autoencoder"} <= set(names):
        raise ValueError(
            f"Unknown variant {arg!r} of the LPL digits config; use one of 'baseline' or "
            "'autoencoder', optionally with ',smoke'."
        )
    if "autoencoder" in names:
        config = autoencoder_config()
    else:
        config = latent_flow_config(lpl="baseline" not in names)
    if "smoke" in names:
        if config.objective != "autoencoder":
            shrink_to_smoke(config)
        config.train.update(num_steps=3, global_batch_size=8, log_every=1)
        config.checkpoint.every_steps = 3
        config.sample.update(num_samples=16, batch_size=8)
        config.evaluate.update(num_points=8, batch_size=8, num_samples=16)
    return config
