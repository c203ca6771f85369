"""Simulation-free training of neural ODEs on paired data (Kim et al., 2024): the paper's
CIFAR-10 classification setting.

Paper setting (its convolutional model): a convolutional encoder f to a 256-dimensional
embedding, a linear label encoder g, a decoder h, a velocity field of width 256; linear path,
label-autoencoder noise 10.0, t = 0 with probability 0.1; Adam 3e-4 with cosine decay, batch
1024, 100k steps; evaluated with dopri5 (tolerance 1e-3) and 1-20 Euler steps. Differences here:
f is a small CNN (3x3 convolutions of stride 2 with 64 and 128 channels, then a linear map),
the velocity is `flowjax.models.MLP` on the embedding, no batch normalisation, EMA of the
weights.

Reported result (paper, dopri5): test accuracy 88.89%, with far fewer function evaluations than
neural ODEs trained through the solver. Not run here: TFDS "cifar10" must be prepared locally
with `tfds build cifar10 --file_format=array_record --data_dir=DIR` and
`--config.data.data_dir=DIR`; without it the run stops with an error naming the dataset and
the directory.

Hardware: one GPU or TPU, several hours.

Variants (comma-separated): trigonometric, data_space, backprop, smoke (see crossing_pairs.py).
"""

from __future__ import annotations

import ml_collections

from flowjax.train import default_config
from flowjax.train.simfree_node import apply_variants


def _smoke(config: ml_collections.ConfigDict) -> None:
    config.model.latent_dim = 32
    config.model.cnn_channels = (8, 16)
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
    config.data = dict(source="tfds", name="cifar10", split="train", data_dir=None)
    config.evaluate.data = dict(split="test")

    config.model.encoder = "cnn"
    config.model.cnn_channels = (64, 128)
    config.model.latent_dim = 256
    config.model.decoder_hidden_dim = 256
    config.model.hidden_dim = 256
    config.model.num_layers = 4
    config.loss.label_noise = 10.0

    config.optim.learning_rate = 3e-4
    config.optim.schedule = "cosine"
    config.optim.ema_decay = 0.9999
    config.train.num_steps = 100_000
    config.train.global_batch_size = 1024
    config.train.log_every = 500
    config.checkpoint.every_steps = 10_000

    config.sample.num_samples = 1_000
    config.sample.batch_size = 1_000
    config.sample.num_trajectories = 64
    config.evaluate.num_points = 10000
    config.evaluate.batch_size = 1000
    return apply_variants(config, arg, {"smoke": _smoke})
