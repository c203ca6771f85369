"""Uncertainty Baselines (Nado et al., 2021; PAPERS.md section 11) on CIFAR10 (10
classes): WRN-28-10 (`flowjax.models.wide_resnet`, 36.5M parameters) with each method of
`flowjax.models.uncertainty`, 200 epochs at batch 128 (390 updates an epoch), L2 2e-4 on the
kernels in the loss (UB's deterministic script; its SNGP script uses 3e-4), random left-right
flips (UB also pads and crops by 4 pixels, which the pipeline does not do).

Optimiser: UB's SGD with Nesterov momentum 0.9, learning rate 0.1 (per 128 examples) divided by
5 at epochs 60, 120 and 160 (optim.schedule "step" at 30%, 60% and 80% of the run).

Published CIFAR-10 rows (UB, WRN-28-10, 200 epochs, 10 runs averaged; NLL / accuracy % / ECE,
then CIFAR-10-C NLL / accuracy % / ECE):

  deterministic    0.159 / 96.0 / 0.0231   (1.05 / 76.1 / 0.153)
  MC dropout       0.160 / 95.9 / 0.0241   (1.27 / 68.8 / 0.166)
  ensemble of 4    0.114 / 96.6 / 0.010    (0.81 / 77.9 / 0.087)
  BatchEnsemble    0.136 / 96.3 / 0.0177   (0.97 / 77.8 / 0.124)
  MIMO             0.123 / 96.4 / 0.010    (0.927 / 76.6 / 0.112)
  SNGP             0.134 / 96.0 / 0.007    (0.74 / 78.5 / 0.078)
  (heteroscedastic: no CIFAR-10 row in PAPERS.md.)

Corrupted inputs: CIFAR-10-C from TFDS ("cifar10_corrupted", its 15 standard corruptions at
five severities; `tfds build cifar10_corrupted --data_dir=DIR`); OOD: SVHN ("svhn_cropped")
and CIFAR-100, both prepared locally.

Data: TFDS "cifar10" prepared in the default TFDS data directory (nothing is downloaded).
Hardware: UB used 8 TPU v3 cores for about 4 h per method (ensemble: 4 runs); on one A100
expect roughly a day per method at this batch size. Parameters are float32.

Variants (`--config=configs/uncertainty/cifar10.py:<variants>`, comma-separated): one method of
deterministic (default), dropout, ensemble, batchensemble, mimo, sngp, heteroscedastic; and
smoke (the offline digits, seconds).
"""

from __future__ import annotations

import ml_collections

from flowjax.data.corruptions import CIFAR10_C
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
        raise ValueError(f"Unknown or conflicting variants {names!r} of the cifar10 config; use "
                         f"at most one of {UNCERTAINTY_METHODS}, and 'smoke'.")
    method = methods[0] if methods else "deterministic"
    data = dict(source="tfds", name="cifar10", split="train", data_dir=None, label_key="label",
                random_flip=True)
    config = uncertainty_config(data, method, model="wide_resnet", batch_size=128,
                                num_steps=200 * 390, learning_rate=0.1, l2=2e-4,
                                steps_per_epoch=390)
    config.evaluate.data = dict(split="test", shuffle=False, random_flip=False)
    config.evaluate.update(corruption_source="cifar10_corrupted", corruptions=CIFAR10_C,
                           ood_sets=("tfds:svhn_cropped", "tfds:cifar100"))
    if "smoke" in names:
        shrink_uncertainty_to_smoke(config)
    return config
