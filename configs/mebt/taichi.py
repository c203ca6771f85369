"""MeBT (Yoo et al., CVPR 2023; PAPERS.md section 11) on Taichi-HD at 128 x 128, 128 frames:
tokens of a frozen TATS 3D-VQGAN (16,384 codes, a (32, 16, 16) grid per 128-frame clip) in a
token file (`flowjax.data.write_video_tokens`; set --config.data.path=FILE.npz).

Setting (the authors' configs/taichi/mebt_128f.yaml): the UCF-101 network and optimiser
(`configs/mebt/ucf101.py`) with the length curriculum's b = 1e5 updates, learning rate 3e-5
and batch 4 per GPU (32 here, assuming 8 GPUs: not confirmed).

Reported: the paper's Taichi-HD numbers are not confirmed (PAPERS.md lists none checked); nothing
is claimed here. Not run: the data, the tokenizer's weights and the accelerators are not
available on the development machines.

Hardware: as UCF-101 (GPUs for weeks).

Variants (`--config=configs/mebt/taichi.py:<variant>`): smoke (3 updates of a tiny network on
the same token file).
"""

from __future__ import annotations

import ml_collections

from flowjax.train.recipes import mebt_config, shrink_mebt_to_smoke


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if arg not in (None, "", "smoke"):
        raise ValueError(f"Unknown variant {arg!r} of the MeBT Taichi-HD config; use 'smoke'.")
    config = mebt_config(dict(path="", codebook_size=16_384), batch_size=32,
                         num_steps=2_000_000, learning_rate=3e-5, curriculum_b=1e5)
    if arg == "smoke":
        shrink_mebt_to_smoke(config)
    return config
