"""Flax NNX networks for velocity, posterior and generator fields."""

from flowjax.models.embeddings import batch_time, sinusoidal_embedding
from flowjax.models.mlp import MLP

__all__ = ["MLP", "batch_time", "sinusoidal_embedding"]
