"""Simulation-free training of neural ODEs on paired data (Kim et al., 2024): scikit-learn's
diabetes regression set, an offline stand-in for the paper's UCI regression settings.

442 patients, 10 standardised features, a standardised scalar target (`flowjax.data.tabular`:
353 train, 89 test); RMSE reported in the target's original units. The method: 32-dimensional
embeddings, MLPs of width 64, label-autoencoder noise 3 (the paper's UCI value), t = 0 with
probability 0.1, Adam 1e-3 with cosine decay, batch 64, 1500 steps.

Expected result: a test RMSE of about 69 after one Euler step (measured; the networks overfit
the 353 training patients: least squares gets 60.0 on this split and predicting the mean 80.0);
the numbers for the method and both baselines are in experiments/simfree_node/README.md.

Hardware: a CPU, under a minute.

Variants (comma-separated): trigonometric, data_space, backprop, smoke (see crossing_pairs.py).
"""

from __future__ import annotations

import ml_collections

from flowjax.train import default_config
from flowjax.train.recipes import apply_variants


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = default_config("simfree_node")
    config.data = dict(source="tabular", name="diabetes")
    config.evaluate.data = dict(split="test")

    config.model.latent_dim = 32
    config.model.encoder_hidden_dim = 64
    config.model.decoder_hidden_dim = 64
    config.model.hidden_dim = 64
    config.loss.label_noise = 3.0

    config.optim.learning_rate = 1e-3
    config.optim.schedule = "cosine"
    config.optim.ema_decay = 0.99
    config.train.num_steps = 1_500
    config.train.global_batch_size = 64
    config.train.log_every = 500
    config.checkpoint.every_steps = 1_500

    config.sample.num_samples = 89
    config.sample.batch_size = 89
    config.sample.num_trajectories = 16
    config.evaluate.num_points = 89
    config.evaluate.batch_size = 89
    return apply_variants(config, arg)
