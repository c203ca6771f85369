"""Learning to Compose (Jung et al., ICLR 2024; PAPERS.md section 11) on CLEVRTex: object discovery
with 11 slots, scored by FG-ARI and mIoU (Hungarian) on held-out scenes.

Paper setting (the authors' scripts, whieya/Learning-to-compose, scripts/*/train_comp.sh):
slot attention with 7 iterations and slots of size 192, 11 slots; 128 x 128 images, the encoder
reading the pixels (downsampled by 2) and the one-shot decoder and the slot-conditioned
diffusion prior working in the frozen SD-VAE's latent space (16 x 16 x 4; set
--config.loss.autoencoder=DIR, a diffusers AutoencoderKL directory such as
stabilityai/sd-vae-ft-ema, converted for flowjax by `flowjax.models.convert_autoencoder`);
DDPM with 1,000 linear betas 0.00085 -> 0.012, composition steps in [20, 500); loss weights
composition 1, one-shot 1, diffusion 1, mask 0.5; Adam 1e-4, clipping 5, 210,000 steps of 64
scenes (16 per GPU on 4 GPUs). Differences: the one-shot decoder is a spatial-broadcast decoder
(the paper's is a transformer decoder) and the prior a small DiT reading the slots as tokens
(the paper's a cross-attention UNet); `flowjax.models.slots`.

Reported: the paper's FG-ARI / mIoU tables for CLEVRTex are not reproduced here, and the numbers
were not confirmed (PAPERS.md lists none); the data cannot be downloaded on these machines.

Hardware: 4 GPUs for about 2 days in the paper.

Data: --config.data.path=DIR with DIR/<split>/images/<name>.png and DIR/<split>/masks/<name>.png
(128 x 128; `flowjax.data.scenes`, a missing directory stops the run with an error naming
the layout), or a locally prepared TFDS dataset: --config.data.name=tfds
--config.data.tfds_name=NAME --config.data.path=None.

Variants (`--config=configs/compose/clevrtex.py:<variant>`): baseline (the composition path off:
the plain auto-encoding objective), smoke (seconds on a CPU, on synthetic scenes).
"""

from __future__ import annotations

import ml_collections

from flowjax.train.recipes import compose_config, shrink_compose_to_smoke

VARIANTS = ("baseline", "smoke")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    names = [] if not arg else arg.split(",")
    if set(names) - set(VARIANTS):
        raise ValueError(
            f"Unknown variant {arg!r} of the clevrtex config; use some of {VARIANTS}.")
    config = compose_config(dict(name="directory", path=""), num_slots=11, num_steps=210_000,
                            batch_size=64)
    config.model.update(encoder_downsample=2, decoder_upsamples=2, prior_patch_size=2,
                        encoder_channels=(128, 128, 128, 128, 192), decoder_channels=128,
                        prior_hidden=384, prior_depth=8, prior_heads=8)
    config.loss.autoencoder = ""  # the SD-VAE's diffusers directory, set on the command line
    config.checkpoint.every_steps = 10_000
    config.loss.composition = "baseline" not in names
    if "smoke" in names:
        shrink_compose_to_smoke(config)
    return config
