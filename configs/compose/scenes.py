"""Learning to Compose (Jung et al., ICLR 2024; PAPERS.md section 11) on a CPU: synthetic
32 x 32 scenes of 2 to 5 coloured circles, squares and triangles with occlusion on a plain
background (`flowjax.data.scenes`, "shapes"), 6 slots (up to 5 objects and the background).

The paper's objective (`configs/compose/clevrtex.py`: composition 1, one-shot 1, diffusion 1,
mask 0.5; composition steps in [20, 500) of 1,000 linear DDPM steps) in pixel space with a
small network: slots of size 64 with 3 iterations, a 4-layer CNN encoder, a spatial-broadcast
decoder from an 8 x 8 grid, a 2-block DiT prior on 4 x 4 patches; Adam 4e-4, batch 32.
`experiments/compose/run.py` trains this config and its baseline (the composition path off) at
the same budget and reports FG-ARI and mIoU on held-out scenes; experiments/compose/README.md
has the measured numbers.

Variants (`--config=configs/compose/scenes.py:<variant>`): baseline (the composition path
off), smoke (3 updates, seconds).
"""

from __future__ import annotations

import ml_collections

from flowjax.train.recipes import compose_config, shrink_compose_to_smoke

VARIANTS = ("baseline", "smoke")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    names = [] if not arg else arg.split(",")
    if set(names) - set(VARIANTS):
        raise ValueError(f"Unknown variant {arg!r} of the compose scenes config; use some of "
                         f"{VARIANTS}.")
    config = compose_config(dict(name="shapes", image_size=32, min_objects=2, max_objects=5),
                            num_slots=6, num_steps=1_000, batch_size=32)
    config.model.update(slot_size=64, iterations=3, mlp_hidden=128,
                        encoder_channels=(32, 32, 32, 32), decoder_channels=32,
                        decoder_upsamples=2, prior_hidden=64, prior_depth=2, prior_heads=4,
                        prior_patch_size=4)
    config.optim.learning_rate = 4e-4
    config.train.log_every = 50
    config.checkpoint.every_steps = 500
    config.evaluate.update(num_points=256, batch_size=64, num_samples=256)
    config.sample.update(num_samples=64, batch_size=64)
    config.loss.composition = "baseline" not in names
    if "smoke" in names:
        shrink_compose_to_smoke(config)
    return config
