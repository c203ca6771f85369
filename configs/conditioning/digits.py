"""Disentangled conditioning (Berrada et al., NeurIPS 2024; PAPERS.md section 5) on a CPU: the
control-leak check on 8x8 digits (`experiments/latent/run.py --parts leak`).

Training images are flipped left-right with probability 1/2 and the flip is given to the model
as control metadata (`data.flip_control`). Default: the disentangled conditioning of the paper
(the label as an attention token, the flip embedded on its own and added to the time embedding
with the cosine strength, 0 at noise, 1 at data); variant "adaln": the shared baseline (label
and flip in the one adaLN vector, the flip at full strength at every time). Both: the digits
recipe of `configs/fm_guide/digits.py` with a small DiT (patch 2: 16 tokens, width 128,
depth 4), label and control dropout 0.2 / 0.1, 1,500 updates of 64 images, guidance w = 0.2 on
the label, none on the control.

The check: samples drawn from the same noise and label with the flip set to 0 and to 1; the
flipped ones are flipped back and both are classified by the digits classifier
(`flowjax.metrics`); changing only the control should leave the class unchanged.
experiments/latent/README.md has the measured agreement for both models.

Variants (`--config=configs/conditioning/digits.py:<variant>`): (none), adaln, smoke (with
either: 3 updates, seconds).
"""

from __future__ import annotations

import ml_collections

from flowjax.train.recipes import image_recipe_config, shrink_to_smoke


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    names = [] if not arg else arg.split(",")
    if set(names) - {"adaln", "smoke"}:
        raise ValueError(f"Unknown variant {arg!r} of the conditioning digits config; use "
                         "'adaln' and / or 'smoke'.")
    config = image_recipe_config("digits", model="dit", conditional=True, random_flip=False)
    # Flipped digits are not digits: the flip is kept as control metadata, which is the point.
    config.data.update(random_flip=True, flip_control=True)
    config.evaluate.data = dict(split="test", shuffle=False, random_flip=False,
                                flip_control=False)
    config.model.update(size="S", patch_size=2, hidden_dim=128, depth=4, num_heads=4,
                        control_dim=1)
    if "adaln" in names:
        config.model.update(conditioning="adaln", control_schedule="constant")
    else:
        config.model.update(conditioning="attention", control_schedule="cosine")
    config.loss.update(label_dropout=0.2, control_dropout=0.1)
    config.optim.update(learning_rate=2e-3, warmup_steps=100, schedule="cosine",
                        final_lr_fraction=0.05, grad_clip_norm=1.0)
    config.train.update(num_steps=1_500, global_batch_size=64, log_every=100)
    config.checkpoint.every_steps = 500
    config.sample.update(guidance_scale=0.2, control=(0.0,), num_samples=1_000, batch_size=500)
    config.evaluate.update(num_points=360, batch_size=360, num_samples=1_000)
    if "smoke" in names:
        shrink_to_smoke(config)
    return config
