"""Flow Matching Guide and Code (Lipman et al., 2024): unconditional CIFAR-10.

Paper setting (reference code, PAPERS.md section 1): ADM UNet with 128 base channels, channel
multipliers (2, 2, 2), 4 residual blocks per level, attention at downsampling factor 2 (16x16),
dropout 0.3; conditional-OT path, velocity prediction, skewed times t = sigmoid(N(-1.2, 1.2^2));
AdamW, learning rate 1e-4, betas (0.9, 0.95); EMA 0.999 with warm-up; batch 512 for 1800 epochs
(50,000 images: 175,781 updates); random horizontal flips; samples by Heun's method on the EDM
time grid with 50 network evaluations (25 steps). Attention heads of 64 channels (the head
layout is not stated in PAPERS.md).

Reported: FID 2.07 (50,000 samples against the training set).

Hardware: the paper-size UNet has 57M parameters; XLA counts 118 GFLOP per training image
(experiments/benchmarks/results/image_models_cpu.json), so the 90M training images of the
schedule are about 1.1e19 FLOP: a GPU job (on the order of half a day of one H100 at 300
TFLOP/s sustained in bf16, an estimate, not a measurement; a node of 8 GPUs with the batch
split over them). Measured throughput: README, "Image models"; launch commands:
experiments/fm_guide/README.md.

Data: TFDS "cifar10" prepared locally (`tfds build cifar10 --file_format=array_record
--data_dir=DIR`, then --config.data.data_dir=DIR); nothing is downloaded.

Variants (`--config=configs/fm_guide/cifar10.py:<variant>`):
  (none)       the paper setting above.
  dit_b2       the same recipe with DiT-B/2 (Peebles & Xie, 2023) instead of the UNet; no
               reported number.
  smoke        a tiny UNet, 3 updates of 8 images, 16 samples: seconds on a CPU, for tests.
  dit_smoke    the same with a tiny DiT.
"""

from __future__ import annotations

import ml_collections

from flowjax.train.recipes import image_recipe_config, shrink_to_smoke

TRAIN_IMAGES = 50_000


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if arg not in (None, "dit_b2", "smoke", "dit_smoke"):
        raise ValueError(
            f"Unknown variant {arg!r} of the cifar10 config; use 'dit_b2', 'smoke' or "
            "'dit_smoke'."
        )
    model = "dit" if arg in ("dit_b2", "dit_smoke") else "unet"
    config = image_recipe_config("cifar10", model=model, conditional=False)
    if model == "unet":
        config.model.channels = 128
        config.model.channel_mults = (2, 2, 2)
        config.model.num_res_blocks = 4
        config.model.attention_factors = (2,)
        config.model.dropout = 0.3
    else:
        config.model.size = "B"
        config.model.patch_size = 2
    config.train.global_batch_size = 512
    config.train.num_steps = 1800 * TRAIN_IMAGES // 512
    config.train.log_every = 500
    config.checkpoint.every_steps = 10_000
    config.sample.method = "heun"
    config.sample.time_grid = "edm"
    config.sample.edm_steps = 25
    if arg in ("smoke", "dit_smoke"):
        shrink_to_smoke(config)
    return config
