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

from flowjax.train.recipes import tfds_classification_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    return tfds_classification_config(
        "mnist",
        arg,
        num_test=10_000,
        eval_batch_size=1_000,
        latent_dim=784,
        encoder_hidden_dim=2048,
        decoder_hidden_dim=784,
        decoder_layers=1,
        hidden_dim=2048,
        label_noise=3.0,
        learning_rate=1e-4,
    )
