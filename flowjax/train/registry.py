"""Names in a config mapped to the library's objects: models and path schedulers.

A config names a model (`config.model.name`) and a scheduler (`config.path.scheduler`); this
module turns those names and their settings into a Flax NNX module and an `AffineProbPath`
(Flow Matching Guide, Lipman et al., 2024, section 4.8). A new network becomes trainable from a
config by adding one entry to `MODELS`, with the defaults of its settings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax.numpy as jnp
import ml_collections
from flax import nnx

from flowjax import paths
from flowjax.models import MLP

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """A model class and the defaults of its config settings (beyond `name` and `dtype`).

    The class is called as `cls(event_shape, num_classes=..., dtype=..., rngs=..., **settings)`.
    """

    cls: Callable[..., nnx.Module]
    defaults: dict


MODELS: dict[str, ModelEntry] = {
    "mlp": ModelEntry(
        MLP,
        dict(
            hidden_dim=512,
            num_layers=4,
            activation="swish",
            time_embedding="raw",
            time_embed_dim=64,
            class_embed_dim=64,
        ),
    ),
}

SCHEDULERS: dict[str, Callable[[ml_collections.ConfigDict], paths.Scheduler]] = {
    "cond_ot": lambda c: paths.CondOTScheduler(),
    "polynomial": lambda c: paths.PolynomialScheduler(n=c.polynomial_n),
    "vp": lambda c: paths.VPScheduler(beta_min=c.vp_beta_min, beta_max=c.vp_beta_max),
    "linear_vp": lambda c: paths.LinearVPScheduler(),
    "cosine": lambda c: paths.CosineScheduler(),
}


def model_defaults(name: str) -> ml_collections.ConfigDict:
    """The full `config.model` of model `name`: its name, compute dtype and settings."""
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; expected one of {sorted(MODELS)}.")
    return ml_collections.ConfigDict(dict(name=name, dtype="float32", **MODELS[name].defaults))


def build_model(
    model_config: ml_collections.ConfigDict,
    event_shape: tuple[int, ...],
    num_classes: int | None,
    rngs: nnx.Rngs,
) -> nnx.Module:
    """The network named by `model_config.name`, mapping (B, *event_shape) to (B, *event_shape).

    Parameters are float32; `model_config.dtype` ("float32" or "bfloat16") is the compute dtype.
    """
    settings = dict(model_config)
    entry = MODELS[settings.pop("name")]
    dtype = COMPUTE_DTYPES[settings.pop("dtype")]
    return entry.cls(
        tuple(event_shape), num_classes=num_classes, dtype=dtype, rngs=rngs, **settings
    )


def build_path(path_config: ml_collections.ConfigDict) -> paths.AffineProbPath:
    """The affine probability path x_t = alpha_t x_1 + sigma_t x_0 of the configured scheduler."""
    return paths.AffineProbPath(SCHEDULERS[path_config.scheduler](path_config))
