"""Uncertainty Baselines (Nado et al., 2021; PAPERS.md section 11) on CIFAR100 (100
classes): WRN-28-10 (`flowjax.models.wide_resnet`, 36.5M parameters) with each method of
`flowjax.models.uncertainty`, 200 epochs at batch 128 (390 updates an epoch), L2 2e-4 on the
kernels in the loss (UB's deterministic script; its SNGP script uses 3e-4), random left-right
flips (UB also pads and crops by 4 pixels, which the pipeline does not do).

Optimiser: UB's SGD with Nesterov momentum 0.9, learning rate 0.1 (per 128 examples) divided by
5 at epochs 60, 120 and 160 (optim.schedule "step" at 30%, 60% and 80% of the run).

No CIFAR-100 rows in PAPERS.md (UB reports them in its README; not confirmed here). UB notes
SNGP on CIFAR-100 uses learning rate 0.08 and mean-field factor 12.5.

Corrupted inputs: the synthetic corruptions of `flowjax.data.corruptions` (CIFAR-100-C is not
in TFDS); OOD: SVHN ("svhn_cropped") and CIFAR-10, both prepared locally.

Data: TFDS "cifar100" prepared in the default TFDS data directory (nothing is downloaded).
Hardware: UB used 8 TPU v3 cores for about 4 h per method (ensemble: 4 runs); on one A100
expect roughly a day per method at this batch size. Parameters are float32.

Variants (`--config=configs/uncertainty/cifar100.py:<variants>`, comma-separated): one method of
deterministic (default), dropout, ensemble, batchensemble, mimo, sngp, heteroscedastic; and
smoke (the offline digits, seconds).
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
        raise ValueError(f"Unknown or conflicting variants {names!r} of the cifar100 config; use "
                         f"at most one of {UNCERTAINTY_METHODS}, and 'smoke'.")
    method = methods[0] if methods else "deterministic"
    data = dict(source="tfds", name="cifar100", split="train", data_dir=None, label_key="label",
                random_flip=True)
    config = uncertainty_config(data, method, model="wide_resnet", batch_size=128,
                                num_steps=200 * 390, learning_rate=0.1, l2=2e-4,
                                steps_per_epoch=390)
    config.evaluate.data = dict(split="test", shuffle=False, random_flip=False)
    config.evaluate.update(ood_sets=("tfds:svhn_cropped", "tfds:cifar10"))
    if "smoke" in names:
        shrink_uncertainty_to_smoke(config)
    return config
