"""Uncertainty Baselines (Nado et al., 2021; PAPERS.md section 11) on a CPU: scikit-learn's
8x8 digits (1,437 training, 360 test images, offline), the small network
(`flowjax.models.small_classifier`: 3x3 convolutions of 16 and 32 channels, a hidden layer of
64) with each method of `flowjax.models.uncertainty`, Adam 3e-3 with a cosine decay, batch
64, 1,000 updates (about 45 epochs), L2 1e-4 on the kernels. Evaluation: accuracy, NLL, ECE,
Brier on the 360 test digits; OOD AUROC / AUPR against uniform-noise images and inverted
digits; accuracy / NLL / ECE under the seven synthetic corruptions of
`flowjax.data.corruptions` at five severities. No published numbers (UB reports CIFAR and
ImageNet); experiments/uncertainty/README.md has the measured table. Minutes on one CPU core.

Variants (`--config=configs/uncertainty/digits.py:<variants>`, comma-separated): one method
of deterministic (default), dropout, ensemble, batchensemble, mimo, sngp, heteroscedastic; and
smoke (3 updates, seconds).
"""

from __future__ import annotations

import ml_collections

from flowjax.train.recipes import (
    UNCERTAINTY_METHODS,
    shrink_uncertainty_to_smoke,
    uncertainty_config,
)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    names = [n for n in (arg or "").split(",") if n]
    methods = [n for n in names if n in UNCERTAINTY_METHODS]
    unknown = [n for n in names if n not in UNCERTAINTY_METHODS and n != "smoke"]
    if unknown or len(methods) > 1:
        raise ValueError(f"Unknown or conflicting variants {names!r} of the digits config; use "
                         f"at most one of {UNCERTAINTY_METHODS}, and 'smoke'.")
    config = uncertainty_config(dict(source="digits", split="train"),
                                methods[0] if methods else "deterministic",
                                model="small_classifier", batch_size=64, num_steps=1_000,
                                learning_rate=3e-3, l2=1e-4, steps_per_epoch=22,
                                optimizer="adam")
    config.train.log_every = 100
    config.checkpoint.every_steps = 1_000
    config.sample.update(num_samples=360, batch_size=360, num_trajectories=8)
    config.evaluate.update(num_points=360, batch_size=360, num_samples=360)
    if "smoke" in names:
        shrink_uncertainty_to_smoke(config)
    return config
