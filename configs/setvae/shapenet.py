"""SetVAE (Kim et al., CVPR 2021; PAPERS.md section 11): point-cloud generation on ShapeNet
(PointFlow's ShapeNetCore.v2.PC15k, 2,048 points per shape), one category per run.

Paper setting: hidden 64, 4 heads, latent 16 per inducing point, inducing points
[1, 1, 2, 4, 8, 16, 32], a trainable 4-component Gaussian mixture in 32 dimensions for the
initial set, slot attention where inducing points read a set; Chamfer + beta KL, beta = 1 warmed
up linearly over 2,000 of 8,000 epochs; Adam 1e-3, batch 128, gradients clipped to norm 5.
Here epochs are updates: 8,000 epochs are 8,000 x ceil(n / 128) updates for the n training
shapes of the category (the run logs n); the defaults below assume n near 2,800 (22 updates
an epoch) and should be set to your copy's: --config.train.num_steps and
--config.loss.kl_warmup_steps (a quarter of them).

Reported (a third-party evaluation of the official checkpoints; MMD-CD x 1e3, MMD-EMD x 1e2,
COV and 1-NNA in %; columns MMD-CD / MMD-EMD / COV-CD / COV-EMD / 1NNA-CD / 1NNA-EMD):
  airplane 0.199 / 3.07 / 43.45 / 44.93 / 75.31 / 77.65
  chair    2.55  / 7.82 / 46.98 / 45.01 / 58.76 / 61.48
  car      0.88  / 5.05 / 48.58 / 44.60 / 59.66 / 63.35
Not reproduced here: the data cannot be downloaded on the development machines; the evaluation
protocol (`--mode=evaluate`: prior samples against as many shapes of the "val" split, as
PointFlow and SetVAE evaluate; `flowjax.metrics.point_cloud_metrics`) computes the EMD exactly
where the papers use an approximate matching, and on the normalised coordinates.

Hardware: one GPU for about a day per category (the paper: 2 GPUs).

Data: --config.data.path=DIR, DIR holding <synset id>/<split>/<model>.npy (a missing directory
stops the run with an error naming the layout).

Variants (`--config=configs/setvae/shapenet.py:<variant>`): airplane (default), chair, car,
and smoke (with any: 3 updates of a tiny network, for tests on a small fake directory).
"""

from __future__ import annotations

import ml_collections

from flowjax.train.recipes import setvae_config, shrink_setvae_to_smoke

CATEGORIES = ("airplane", "chair", "car")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    names = [] if not arg else arg.split(",")
    unknown = set(names) - {*CATEGORIES, "smoke"}
    chosen = [n for n in names if n in CATEGORIES]
    if unknown or len(chosen) > 1:
        raise ValueError(
            f"Unknown variant {arg!r} of the SetVAE ShapeNet config; use one of {CATEGORIES} "
            "and / or 'smoke'."
        )
    data = dict(name="shapenet", path="", categories=tuple(chosen or ["airplane"]),
                num_points=2_048)
    config = setvae_config(data, batch_size=128, num_steps=176_000, kl_weight=1.0,
                           kl_warmup_steps=44_000)
    config.evaluate.data = dict(split="val", shuffle=False)  # PointFlow's evaluation split
    if "smoke" in names:
        shrink_setvae_to_smoke(config)
    return config
