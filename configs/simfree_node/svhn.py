"""Simulation-free training of neural ODEs on paired data (Kim et al., 2024): the paper's
SVHN classification setting.

Paper setting (its convolutional model): a convolutional encoder f to a 256-dimensional
embedding, a linear label encoder g, a decoder h, a velocity field of width 256; linear path,
label-autoencoder noise 7.0, t = 0 with probability 0.1; Adam 3e-4 with cosine decay, batch
1024, 100k steps; evaluated with dopri5 (tolerance 1e-3) and 1-20 Euler steps. Differences here:
f is a small CNN (3x3 convolutions of stride 2 with 64 and 128 channels, then a linear map),
the velocity is `flowjax.models.MLP` on the embedding, no batch normalisation, EMA of the
weights.

Reported result (paper, dopri5): test accuracy 96.12%, with far fewer function evaluations than
neural ODEs trained through the solver. Not run here: TFDS "svhn_cropped" must be prepared locally
with `tfds build svhn_cropped --file_format=array_record --data_dir=DIR` and
`--config.data.data_dir=DIR`; without it the run stops with an error naming the dataset and
the directory.

Hardware: one GPU or TPU, several hours.

Variants (comma-separated): trigonometric, data_space, backprop, smoke (see crossing_pairs.py).
"""

from __future__ import annotations

import ml_collections

from flowjax.train.recipes import tfds_classification_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    return tfds_classification_config(
        "svhn_cropped",
        arg,
        num_test=26_032,
        eval_batch_size=1_627,
        encoder="cnn",
        cnn_channels=(64, 128),
        latent_dim=256,
        decoder_hidden_dim=256,
        hidden_dim=256,
        num_layers=4,
        label_noise=7.0,
        learning_rate=3e-4,
        schedule="cosine",
    )
