"""MeBT (Yoo et al., CVPR 2023; PAPERS.md section 11) on UCF-101 at 128 x 128, unconditional,
128 frames: tokens of the frozen TATS 3D-VQGAN (16,384 codes, a (32, 16, 16) grid of 8,192
tokens per 128-frame clip), written by a video tokenizer into a token file (`flowjax.data.
write_video_tokens`; set --config.data.path=FILE.npz).

Paper setting (the authors' configs/ucf/mebt_128f.yaml and scripts): d 1,024, 16 heads, 256
latents, 24 pre-LN blocks (7 enc / 6 self alternating, then 6 dec / 5 lt2l alternating);
t ~ U[0, 1], ceil((1 - t) N) tokens masked; length curriculum with b = 1e5 updates; AdamW lr
3e-5 (betas 0.9 / 0.95, weight decay 1e-4), batch 6 per GPU, at most 2,000,000 updates
(their training script; the curriculum's centre reaches 32 latent frames at (32 - 1) b = 3.1M
updates, so the schedule is cut there). The GPU count is not in the authors' configs: the batch
of 48 here assumes 8 GPUs (not confirmed). Sampling: a MaskGIT draft of 32 steps (confidence
temperature 2, annealed linearly; top-k 32), then M = 2 revision rounds of 32 parts at
temperature 0.1.

Reported (UCF-101, 128 x 128, unconditional): FVD16 438, FVD128 968, IS 65.93; FVD with I3D
features on 2,048 samples (16 frames) / 512 samples (128 frames). Not reproduced here: the
data, the TATS tokenizer's weights and the accelerators are not available on the development
machines.

Hardware: GPUs for weeks (about 2M updates of 8,192-token grids at d 1,024); the compiled
step's memory is linear in the grid's tokens (experiments/benchmarks/mebt_scaling.py).

Variants (`--config=configs/mebt/ucf101.py:<variant>`): smoke (3 updates of a tiny network on
the same token file).
"""

from __future__ import annotations

import ml_collections

from flowjax.train.recipes import mebt_config, shrink_mebt_to_smoke


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if arg not in (None, "", "smoke"):
        raise ValueError(f"Unknown variant {arg!r} of the MeBT UCF-101 config; use 'smoke'.")
    config = mebt_config(dict(path="", codebook_size=16_384), batch_size=48,
                         num_steps=2_000_000, learning_rate=3e-5, curriculum_b=1e5)
    if arg == "smoke":
        shrink_mebt_to_smoke(config)
    return config
