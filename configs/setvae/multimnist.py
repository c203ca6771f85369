"""SetVAE (Kim et al., CVPR 2021; PAPERS.md section 11) on Set-MultiMNIST: two digits on a
64 x 64 canvas as a set of at most 600 jittered pixel coordinates in [0, 1]^2, sets of
different sizes (padded, with a mask).

Paper setting: the ShapeNet network and optimiser (`configs/setvae/shapenet.py`) with beta
1e-2. Offline here the digits are scikit-learn's 8 x 8 digits enlarged to 24 x 24 (`flowjax.
data`'s "set_multimnist"), not MNIST's 28 x 28. Sample metrics (MMD, COV, 1-NNA) need sets of
one size and are not computed; evaluation reports the reconstruction Chamfer distance and KL.

Variants (`--config=configs/setvae/multimnist.py:<variant>`): smoke (3 updates, seconds).
"""

from __future__ import annotations

import ml_collections

from flowjax.train.recipes import setvae_config, shrink_setvae_to_smoke


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if arg not in (None, "", "smoke"):
        raise ValueError(f"Unknown variant {arg!r} of the SetVAE MultiMNIST config; use 'smoke'.")
    config = setvae_config(dict(name="set_multimnist", num_points=600), batch_size=64,
                           num_steps=20_000, kl_weight=1e-2, kl_warmup_steps=5_000)
    if arg == "smoke":
        shrink_setvae_to_smoke(config)
    return config
