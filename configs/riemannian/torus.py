"""Flow Matching on General Geometries (Chen & Lipman, 2024): Riemannian flow matching on the
flat torus T^2, trained on a wrapped-Gaussian mixture with a known density.

Paper setting (its flat-torus experiments, e.g. protein torsion angles): the geodesic conditional
path x_t = exp_{x_0}(t log_{x_0}(x_1)) from the uniform distribution on the torus, the RCFM loss
on tangent vectors, an MLP velocity field; samples and likelihoods by an ODE solver on the
manifold. Here: `flowjax.data`'s torus_gaussians (4 wrapped Gaussians, one wrapping across both
seams; `flowjax.data.manifold_toy`), a `manifold_mlp` (4 x 256 Swish, angles through Fourier
features of 2 frequencies), Adam 3e-3 with warm-up and cosine decay, batch 1024, 8k steps,
midpoint sampler and likelihood with step 0.05.

Expected result: samples fill the four blobs, including the one cut by the seams of the square;
the held-out NLL (exact-divergence Riemannian likelihood, nats w.r.t. d theta_1 d theta_2) is
within a few hundredths of a nat of the true mixture's (`true_nll_nats` in metrics.json; the
measured numbers are in experiments/riemannian/README.md).

Hardware: a CPU is fine: about 4 minutes on 2 CPU cores.

Variants (`--config=configs/riemannian/torus.py:<variant>`):
  (none)  the run above.
  smoke   a tiny model and a few steps: seconds on a CPU, for tests.
"""

from __future__ import annotations

import ml_collections

from flowjax.train import default_config
from flowjax.train.recipes import shrink_toy_to_smoke


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = default_config("riemannian_flow_matching")
    config.data = dict(source="toy", name="torus_gaussians")
    config.path.manifold = "T2"
    config.path.scheduler = "cond_ot"

    config.model.num_frequencies = 2
    config.model.hidden_dim = 256
    config.model.num_layers = 4

    config.optim.learning_rate = 3e-3
    config.optim.schedule = "cosine"
    config.optim.warmup_steps = 200
    config.optim.final_lr_fraction = 0.02
    config.optim.grad_clip_norm = 1.0
    config.optim.ema_decay = 0.999

    config.train.num_steps = 8_000
    config.train.global_batch_size = 1024
    config.train.log_every = 200
    config.checkpoint.every_steps = 2_000

    config.sample.method = "midpoint"
    config.sample.step_size = 0.05
    config.sample.num_samples = 20_000
    config.evaluate.method = "midpoint"
    config.evaluate.step_size = 0.05
    config.evaluate.num_points = 8_192

    if arg == "smoke":
        shrink_toy_to_smoke(config)
    elif arg is not None:
        raise ValueError(f"Unknown variant {arg!r} of the torus config; use 'smoke' or none.")
    return config
