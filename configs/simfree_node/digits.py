"""Simulation-free training of neural ODEs on paired data (Kim et al., 2024): scikit-learn's
digits, the offline stand-in for the paper's MNIST setting.

1797 8x8 grey digits (`flowjax.data.images`, source "digits": 1437 train, 360 test), classes
as one-hot targets. As the paper's MNIST MLP model, scaled down: an MLP encoder f on the 64
pixels to a 64-dimensional embedding, a linear label encoder g, an MLP decoder h and a 3-layer
velocity MLP of width 256; label-autoencoder noise 3 (the paper's MNIST value), t = 0 with
probability 0.1, Adam 1e-3 with cosine decay, batch 128, 3000 steps.

Expected result (measured): test accuracy 97.8% after one Euler step (NFE 1) and with dopri5
(NFE 31), against 98.1% for the neural ODE trained through dopri5 (variant `backprop`, NFE 25,
about 15 times slower per training step); the numbers are in experiments/simfree_node/README.md.

Hardware: a CPU: a minute or two (the backprop variant longer).

Variants (comma-separated): trigonometric, data_space, backprop, smoke (see crossing_pairs.py).
`python -m flowjax.main --config=configs/simfree_node/digits.py:smoke --workdir=/tmp/w` trains
for a few steps and evaluates.
"""

from __future__ import annotations

import ml_collections

from flowjax.train import default_config
from flowjax.train.recipes import apply_variants


def _smoke(config: ml_collections.ConfigDict) -> None:
    config.model.latent_dim = 16
    config.model.encoder_hidden_dim = 32
    config.model.decoder_hidden_dim = 32
    config.model.hidden_dim = 32
    config.train.num_steps = 20
    config.train.global_batch_size = 64
    config.train.log_every = 10
    config.checkpoint.every_steps = 20
    config.sample.method = "euler"
    config.sample.num_samples = 120
    config.sample.batch_size = 120
    config.sample.num_trajectories = 8
    config.evaluate.euler_steps = (1, 2)
    config.evaluate.num_points = 120
    config.evaluate.batch_size = 120


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = default_config("simfree_node")
    config.data = dict(source="digits")
    config.evaluate.data = dict(split="test")

    config.model.latent_dim = 64
    config.model.encoder_hidden_dim = 256
    config.model.decoder_hidden_dim = 256
    config.model.hidden_dim = 256
    config.loss.label_noise = 3.0

    config.optim.learning_rate = 1e-3
    config.optim.schedule = "cosine"
    config.optim.ema_decay = 0.999
    config.train.num_steps = 3_000
    config.train.global_batch_size = 128
    config.train.log_every = 500
    config.checkpoint.every_steps = 3_000

    config.sample.num_samples = 360
    config.sample.batch_size = 360
    config.sample.num_trajectories = 32
    config.evaluate.num_points = 360
    config.evaluate.batch_size = 360
    return apply_variants(config, arg, {"smoke": _smoke})
