"""Learning to Compose (Jung et al., ICLR 2024; PAPERS.md section 11) on a CPU: synthetic
32 x 32 scenes of 2 to 5 coloured circles, squares and triangles with occlusion on a plain
background (`flowjax.data.scenes`, "shapes"), 6 slots (up to 5 objects and the background).

The paper's objective (`configs/compose/clevrtex.py`: composition 1, one-shot 1, diffusion 1,
mask 0.5; composition steps in [20, 500) of 1,000 linear DDPM steps) in pixel space with a
small network: slots of size 32 with 3 iterations, a 3-layer CNN encoder of width 16, a
spatial-broadcast decoder from an 8 x 8 grid, a 1-block DiT prior on 4 x 4 patches; Adam 4e-4,
batch 16, 150 updates (minutes on a shared 2-core machine: far too short to learn objects; the
experiment measures the pipeline and the relative cost of the two objectives).
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
                            num_slots=6, num_steps=150, batch_size=16)
    config.model.update(slot_size=32, iterations=3, mlp_hidden=64,
                        encoder_channels=(16, 16, 16), decoder_channels=16,
                        decoder_upsamples=2, prior_hidden=32, prior_depth=1, prior_heads=2,
                        prior_patch_size=4)
    config.optim.learning_rate = 4e-4
    config.train.log_every = 25
    config.checkpoint.every_steps = 150
    config.evaluate.update(num_points=128, batch_size=64, num_samples=128)
    config.sample.update(num_samples=64, batch_size=64)
    config.loss.composition = "baseline" not in names
    if "smoke" in names:
        shrink_compose_to_smoke(config)
    return config
