"""Flow Matching Guide and Code (Lipman et al., 2024): class-conditional ImageNet 32x32.

Paper setting (reference code, PAPERS.md section 1): ADM UNet with 192 base channels, channel
multipliers (1, 2, 3, 4), 3 residual blocks per level, attention at downsampling factors 2, 4
and 8; class conditioning with label dropout 0.2; the CIFAR-10 recipe otherwise
(conditional-OT path, velocity prediction, skewed times sigmoid(N(-1.2, 1.2^2)), AdamW 1e-4 with
betas (0.9, 0.95), EMA 0.999 with warm-up); samples by dopri5 with atol = rtol = 1e-5 and
classifier-free guidance (1 + w) u(x | y) - w u(x | null) with w = 0.2.
Not confirmed from PAPERS.md (values used here): batch 1024, 500k updates, dropout 0.0,
random flips, attention heads of 64 channels.

Reported: FID 1.14 (class-conditional, guidance w = 0.2).

Hardware: multi-GPU: the UNet has about 300M parameters; plan for a node of 8 H100-class GPUs
for days (or a TPU v4/v5 pod slice).

Data: TFDS "imagenet_resized/32x32" prepared locally (it needs the manually downloaded ImageNet
archives: `tfds build imagenet_resized/32x32 --file_format=array_record --data_dir=DIR`, then
--config.data.data_dir=DIR); nothing is downloaded.

Variants (`--config=configs/fm_guide/imagenet32.py:<variant>`):
  (none)  the paper setting above.
  smoke   a tiny UNet, 3 updates of 8 images, 16 guided samples: seconds on a CPU, for tests.
"""

from __future__ import annotations

import ml_collections

from flowjax.train.recipes import imagenet_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    return imagenet_config("imagenet32", arg)
