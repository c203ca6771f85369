"""On Improved Conditioning Mechanisms and Pre-training Strategies for Diffusion Models
(Berrada et al., NeurIPS 2024; PAPERS.md section 5): class-conditional ImageNet 512x512 in the
SD-VAE's latent space, DiT-XL/2 on 64x64x4, transferred from the 256 model.

Setting: the conditioning of `configs/conditioning/imagenet256.py` (label through attention,
flip control with the cosine strength, separate guidance scales), and the paper's transfer
between resolutions: the run starts from the 256 run's EMA weights (--config.train.init_from=
WORKDIR_256, which this config leaves to the command line; the DiT's parameters do not depend on the resolution), the sine-cosine positions of
its 16 x 16 tokens are interpolated to the 32 x 32 tokens here (model.position_base_grid = 16),
and the noise schedule is shifted to the larger image: the log-SNR moves by 2 log 2
(path.resolution_shift = 2, `flowjax.paths.ShiftedScheduler`). Our choices: 200k updates, the
256 config's optimiser and sampler.

Reported: FID -8% against the shared-adaLN baseline, 2.76 on ImageNet-1k at 512.

Hardware: 4x the tokens of 256: several nodes of 8 H100 / a TPU v5e-256.

Data: as the 256 config, with the 512x512 images' latents.

Variants (`--config=configs/conditioning/imagenet512.py:<variant>`):
  (none)   the setting above.
  adaln    the shared-adaLN baseline.
  smoke    a tiny DiT and 3 updates (tests pass a small latent store).
"""

from __future__ import annotations

import ml_collections

from flowjax.train.recipes import latent_imagenet_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    return latent_imagenet_config(512, "conditioning", arg)
