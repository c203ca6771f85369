"""Flow Matching Guide and Code (Lipman et al., 2024): class-conditional ImageNet 64x64.

Paper setting (reference code, PAPERS.md section 1): the ImageNet-32 recipe
(`configs/fm_guide/imagenet32.py`) on 64x64 images: ADM UNet with 192 base channels, channel
multipliers (1, 2, 3, 4), 3 residual blocks, attention at downsampling factors 2, 4, 8 (32x32,
16x16, 8x8); label dropout 0.2; dopri5 (atol = rtol = 1e-5) with classifier-free guidance
w = 0.2. Not confirmed from PAPERS.md: batch 1024, 500k updates, dropout 0.0.

Reported: FID 1.64 (class-conditional, guidance w = 0.2).

Hardware: multi-GPU (4x the activations of ImageNet-32): a node of 8 H100-class GPUs for a week,
or a TPU pod slice.

Data: TFDS "imagenet_resized/64x64" prepared locally (needs the manually downloaded ImageNet
archives), passed with --config.data.data_dir=DIR; nothing is downloaded.

Variants (`--config=configs/fm_guide/imagenet64.py:<variant>`):
  (none)  the paper setting above.
  smoke   a tiny UNet, 3 updates of 8 images, 16 guided samples: seconds on a CPU, for tests.
"""

from __future__ import annotations

import ml_collections

from flowjax.train.recipes import imagenet_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    return imagenet_config("imagenet64", arg)
