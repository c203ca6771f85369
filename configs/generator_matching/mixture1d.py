"""Generator Matching (Holderrieth et al., 2024): flow, jump and superposed models of a 1-D
Gaussian mixture.

Paper setting (its 1-D illustrations of the CondOT jump model): the CondOT Gaussian path
p_t(x | z) = N(t z, (1 - t)^2), the flow velocity and the jump model
lambda_t = [k_t]_+ / (1 - t)^3, J_t proportional to [-k_t]_+ N(t z, (1 - t)^2)
(`flowjax.paths.jump`), trained by conditional generator matching (MSE + infinitesimal KL). Here
one `generator_mlp` (4 x 256 Swish) has both heads: a velocity and a rate with 128 jump bins on
[-5, 5] per coordinate; data `flowjax.data`'s mixture1d (weights 0.3 / 0.5 / 0.2, means
-2.5 / 0.5 / 3, standard deviations 0.5 / 0.4 / 0.6); Adam 2e-3 with cosine decay, batch 1024,
2k steps. Sampling: the 50/50 superposition of the flow and jump parts, Euler steps of 0.01 in
tau = 1 - sqrt(1 - t) (100 steps), exact no-jump survival.

Expected result: samples match the data: energy distance to held-out data of order 1e-3 for the
flow, jump and superposed samplers (measured numbers in experiments/generator_matching).

Hardware: a CPU: a few minutes on 2 cores.

Variants (`--config=configs/generator_matching/mixture1d.py:<variant>`):
  (none)  the run above.
  smoke   a tiny model and a few steps: seconds on a CPU, for tests.
"""

from __future__ import annotations

import ml_collections

from flowjax.train import default_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = default_config("generator_matching")
    config.data = dict(source="toy", name="mixture1d")
    config.path.parts = "flow+jump"
    config.path.num_bins = 128
    config.path.low = -5.0
    config.path.high = 5.0

    config.model.hidden_dim = 256
    config.model.num_layers = 4

    config.optim.learning_rate = 2e-3
    config.optim.schedule = "cosine"
    config.optim.warmup_steps = 100
    config.optim.final_lr_fraction = 0.02
    config.optim.grad_clip_norm = 1.0
    config.optim.ema_decay = 0.999

    config.train.num_steps = 2_000
    config.train.global_batch_size = 1024
    config.train.log_every = 200
    config.checkpoint.every_steps = 1_000

    config.sample.generator = "superposition"
    config.sample.flow_weight = 0.5
    config.sample.step_size = 0.01
    config.sample.time_power = 2.0
    config.sample.num_samples = 20_000
    config.evaluate.num_points = 8_192
    config.evaluate.num_samples = 20_000

    if arg == "smoke":
        config.model.hidden_dim = 32
        config.model.num_layers = 2
        config.path.num_bins = 16
        config.train.num_steps = 20
        config.train.global_batch_size = 256
        config.train.log_every = 5
        config.checkpoint.every_steps = 10
        config.sample.num_samples = 512
        config.sample.batch_size = 256
        config.sample.num_trajectories = 64
        config.sample.step_size = 0.1
        config.evaluate.step_size = 0.25
        config.evaluate.num_points = 256
        config.evaluate.num_samples = 512
        config.evaluate.batch_size = 256
    elif arg is not None:
        raise ValueError(f"Unknown variant {arg!r} of the mixture1d config; use 'smoke' or none.")
    return config
