"""Simulation-free training of neural ODEs on paired data (Kim et al., 2024): the paper's MNIST
classification setting.

Paper setting (its MLP model): an MLP encoder f from the 784 pixels to a 784-dimensional
embedding (width 2048), a linear label encoder g, an MLP decoder h, an MLP velocity field of
width 2048; linear path, label-autoencoder noise 3, t = 0 with probability 0.1; Adam 1e-4,
batch 1024; evaluated with dopri5 (tolerance 1e-3) and 1-20 Euler steps. Differences here: the
velocity is `flowjax.models.MLP` (3 hidden layers), no batch normalisation in f and h, and
100k steps with the EMA of the weights.

Reported result (paper, dopri5): test accuracy 99.30%, with far fewer function evaluations than
neural ODEs trained through the solver. Not run here: MNIST must be prepared locally with
`tfds build mnist --file_format=array_record --data_dir=DIR` and `--config.data.data_dir=DIR`
(and the same for `evaluate.data`); without it the run stops with an error naming the dataset
and the directory.

Hardware: one GPU or TPU, a few hours.

Variants (comma-separated): trigonometric, data_space, backprop, smoke (see crossing_pairs.py).
"""

from __future__ import annotations

import ml_collections

from flowjax.train import default_config
from flowjax.train.simfree_node import apply_variants


def _smoke(config: ml_collections.ConfigDict) -> None:
    config.model.latent_dim = 32
    config.model.encoder_hidden_dim = 32
    config.model.decoder_hidden_dim = 32
    config.model.hidden_dim = 32
    config.train.num_steps = 10
    config.train.global_batch_size = 32
    config.train.log_every = 5
    config.checkpoint.every_steps = 10
    config.sample.num_samples = 32
    config.sample.batch_size = 32
    config.sample.num_trajectories = 4
    config.evaluate.num_points = 32
    config.evaluate.batch_size = 32


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = default_config("simfree_node")
    config.data = dict(source="tfds", name="mnist", split="train", data_dir=None)
    config.evaluate.data = dict(split="test")

    config.model.latent_dim = 784
    config.model.encoder_hidden_dim = 2048
    config.model.decoder_hidden_dim = 784
    config.model.decoder_layers = 1
    config.model.hidden_dim = 2048
    config.loss.label_noise = 3.0

    config.optim.learning_rate = 1e-4
    config.optim.ema_decay = 0.9999
    config.train.num_steps = 100_000
    config.train.global_batch_size = 1024
    config.train.log_every = 500
    config.checkpoint.every_steps = 10_000

    config.sample.num_samples = 1_000
    config.sample.batch_size = 1_000
    config.sample.num_trajectories = 64
    config.evaluate.num_points = 10_000
    config.evaluate.batch_size = 1_000
    return apply_variants(config, arg, {"smoke": _smoke})
