"""The video tokenizer of MeBT (Yoo et al., CVPR 2023; PAPERS.md section 11): a 3D VQ
autoencoder of the TATS 3D-VQGAN design (Ge et al., ECCV 2022; `flowjax.models.VQVAE3D`,
objective "video_vq": L1 x 4 + codebook + 0.25 commitment, without TATS's GAN and LPIPS losses).

Variants (`--config=configs/mebt/tokenizer.py:<variant>`):

  moving_digits (default)  a CPU run on bouncing scikit-learn digits (`data.source=
      "moving_digits"`: 8 frames of 32x32, one 12x12 digit): downsampling (2, 4, 4), so a
      video is a (4, 8, 8) grid of 256 tokens (MeBT's 16-frame grid is (4, 16, 16)); width 8,
      256 codes of width 32; Adam 1e-3, batch 8, 200 updates (5-22 s per update on the shared
      2-core CPU it was run on, load average 4-13). Measured (experiments/mebt/results/
      tokenizer.json): the codebook collapses, 3 of 256 codes used, PSNR 15.3 dB. The
      l2-normalised lookup of ViT-VQGAN (`--config.model.normalize_codes=True`) does not
      prevent it (tokenizer_normalized.json: 2 codes, PSNR 15.0 dB, blank reconstructions), so
      it stays off here; see experiments/mebt/README.md.
  tats  TATS's published tokenizer settings for 128 px (its README's train_vqgan command:
      --embedding_dim 256 --n_codes 16384 --n_hiddens 32 --downsample 4 8 8, lr 3e-5, gradient
      clipping 1.0, batch 2 on each of 8 GPUs with 6 accumulated micro-batches = 96,
      --max_steps 2000000, sequence length 16): a (4, 16, 16) grid per 16 frames. Data: local
      clips of UCF-101 (`data.source="video_folder"`, data.path=DIR with DIR/train/<video>/
      frames; resized and centre-cropped to 128 px). Group norm with 32 groups (TATS's
      published runs use --norm_type batch with synchronised batch norm, which only the
      converted checkpoints of `flowjax.models.load_tats_vqgan` reproduce, with frozen
      statistics). Needs accelerators: TATS trained on 8 GPUs; not run here.
  fsq  finite scalar quantisation instead of the learned codebook (Mentzer et al., ICLR 2024;
      `VQVAE3D(fsq_levels=...)`), with the paper's levels for the codebook size: (8, 6, 5), 240
      codes of width 3, on the digits; (8, 8, 8, 6, 5), 15,360 codes of width 5, with tats.
  mse  the mean squared reconstruction error instead of TATS's L1 (`loss.reconstruction=
      "mse"`). On the digits the L1 optimum of a pixel the codes leave uncertain is its median,
      the background (a digit covers about 4% of a frame), so L1-trained tokenizers blank the
      digit out; the squared error's optimum is the mean, which keeps it. `fsq,mse` is the
      moving-digits tokenizer that MeBT's CPU run reads: after 800 updates (--config.train.
      num_steps=800) it keeps the digit (experiments/mebt/README.md, results/
      tokenizer_fsq_mse.json).
  smoke  seconds on a CPU (4 frames of 16x16, 3 updates).
"""

from __future__ import annotations

import math

import ml_collections

from flowjax.train.recipes import shrink_video_vq_to_smoke, video_vq_config

VARIANTS = ("moving_digits", "tats", "fsq", "mse", "smoke")
FSQ_LEVELS = {"moving_digits": (8, 6, 5), "tats": (8, 8, 8, 6, 5)}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    names = [a for a in (arg or "").split(",") if a]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or ("tats" in names and "moving_digits" in names):
        raise ValueError(
            f"Unknown or conflicting variant(s) {names} of the tokenizer config; use one of "
            f"{VARIANTS} (fsq, mse and smoke combine with either data set)."
        )
    if "tats" in names:
        config = video_vq_config(
            dict(source="video_folder", path="", num_frames=16, resolution=128),
            batch_size=96, num_steps=2_000_000, learning_rate=3e-5,
        )
        config.model.update(hidden_channels=32, downsample=(4, 8, 8), codebook_size=16_384,
                            embedding_dim=256, norm_groups=32)
        config.evaluate.data = dict(split="test", shuffle=False)
    else:
        config = video_vq_config(
            dict(source="moving_digits", num_frames=8, canvas=32, digits=1, sprite_size=12),
            batch_size=8, num_steps=200, learning_rate=1e-3,
        )
        config.model.update(hidden_channels=8, downsample=(2, 4, 4), codebook_size=256,
                            embedding_dim=32, norm_groups=4)
        config.train.log_every = 25
        config.checkpoint.every_steps = 200
    if "fsq" in names:
        levels = FSQ_LEVELS["tats" if "tats" in names else "moving_digits"]
        config.model.update(fsq_levels=levels, codebook_size=math.prod(levels),
                            embedding_dim=len(levels))
    if "mse" in names:
        config.loss.reconstruction = "mse"
    if "smoke" in names:
        if "tats" in names:
            raise ValueError("The tats variant reads local UCF-101 clips; smoke runs on digits.")
        shrink_video_vq_to_smoke(config)
    return config
