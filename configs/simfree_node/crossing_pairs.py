"""Simulation-free training of neural ODEs on paired data (Kim et al., 2024): the paper's 1-D
illustration of crossing pairs.

Four pairs x -> y = -x, x in {-3, -1, 1, 3} (`flowjax.data.tabular`): their straight paths all
cross at t = 1/2. A flow on the line keeps the order of its points, so flow matching in data
space (variant `data_space`) cannot keep the pairs apart; the method (flow matching between
learned embeddings z_0 = f(x), z_1 = g(y), 64-dimensional, with the label autoencoder)
maps every input to its own target. Label-autoencoder noise 0.1; Adam 3e-3 with cosine decay,
batch 16 (the four pairs repeated), 1500 steps, EMA 0.99.

Expected result: the method's RMSE after one Euler step is below 1e-2 (and as low with dopri5);
data-space flow matching stays far off (its RMSE is at least 1: the order of the points cannot
change). Measured numbers: experiments/simfree_node/README.md.

Hardware: a CPU, well under a minute.

Variants (`--config=configs/simfree_node/crossing_pairs.py:<variants>`, comma-separated):
  (none)          the method, linear path.
  trigonometric   the path z_t = cos(pi t / 2) z_0 + sin(pi t / 2) z_1.
  data_space      flow matching from x to y in data space (the failing baseline).
  backprop        a neural ODE with the same networks trained through dopri5.
  smoke           a few steps, for tests.
"""

from __future__ import annotations

import ml_collections

from flowjax.train import default_config
from flowjax.train.recipes import apply_variants


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = default_config("simfree_node")
    config.data = dict(source="tabular", name="crossing_pairs")
    config.evaluate.data = dict(split="test")

    config.model.latent_dim = 64
    config.model.encoder_hidden_dim = 64
    config.model.decoder_hidden_dim = 64
    config.model.hidden_dim = 64
    config.model.num_layers = 3
    config.loss.label_noise = 0.1

    config.optim.learning_rate = 3e-3
    config.optim.schedule = "cosine"
    config.optim.ema_decay = 0.99
    config.train.num_steps = 1_500
    config.train.global_batch_size = 16
    config.train.log_every = 500
    config.checkpoint.every_steps = 1_500

    config.sample.num_samples = 4
    config.sample.batch_size = 4
    config.sample.num_trajectories = 4
    config.evaluate.num_points = 4
    config.evaluate.batch_size = 4
    return apply_variants(config, arg)
