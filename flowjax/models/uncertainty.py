"""Classifiers with predictive uncertainty: the seven methods of Uncertainty Baselines on one
backbone (a Wide ResNet or the small digits network).

Nado et al., 2021, "Uncertainty Baselines: Benchmarks for Uncertainty & Robustness in Deep
Learning" (section 3). With logits f(x) and probabilities p = softmax(f), the methods
(`method`) and their predictive distributions are:

  deterministic    p(y | x) = softmax(f(x)).
  dropout          MC dropout (Gal & Ghahramani, 2016, eq. 8): dropout stays on at
                   prediction; p = 1/S sum_s softmax(f_s(x)) over S = `mc_samples` masks.
  ensemble         deep ensembles (Lakshminarayanan et al., 2017, section 2.4): M =
                   `ensemble_size` networks with their own initialisation and dropout masks,
                   stored as ONE module whose parameters carry a leading ensemble axis (created
                   and called with `nnx.vmap`; the axis can be split over devices with a
                   sharding rule such as (r".*members/.*", ("tensor",))); p = 1/M sum_m p_m.
                   The members see the same batches (one data stream for the vmapped model;
                   Uncertainty Baselines trains M separate runs, each with its own data order:
                   random initialisation is the main source of diversity, Lakshminarayanan et
                   al., section 3.5). The training loss is the sum of the members' losses, so
                   each member gets the gradient of its own training.
  batchensemble    BatchEnsemble (Wen et al., 2020; `flowjax.models.batch_ensemble`): every
                   convolution and the head carry rank-1 fast weights per member; the batch is
                   tiled M times in training and at prediction; p = 1/M sum_m p_m.
  mimo             MIMO (Havasi et al., 2021, section 2): M inputs concatenated on the last
                   (channel) axis, M output heads; in training member m reads its own examples
                   (the batch repeated `mimo_batch_repetitions` times and shuffled, the last
                   fraction `mimo_input_repetition` of the shuffle shared by all members, as
                   Uncertainty Baselines' mimo.py); at prediction the same input is repeated M
                   times; p = 1/M sum_m p_m.
  sngp             SNGP (Liu et al., 2020; `flowjax.models.sngp`): spectrally normalised
                   hidden layers (norm bound `sn_bound`) and a random-feature GP head;
                   mean-field probabilities softmax(g / sqrt(1 + lambda var)).
  heteroscedastic  Collier et al., 2021 (`flowjax.models.heteroscedastic`): logit noise with
                   a low-rank-plus-diagonal covariance, MC softmax with a temperature.

`train_log_probs(x, labels, key)` gives the training log-probabilities (M, B', K) of M
members (1 for single models) and their labels (M, B'); `predict(x, key)` gives the members'
(or MC passes') probabilities (B, S, K) at prediction, whose mean over S is the predictive.
Batch norm uses batch statistics in training and running averages at prediction; the SNGP
head accumulates its precision in training. Randomness (dropout masks, MIMO shuffles, logit
noise) comes only from the `jax.random` keys given.

Shapes: x (B, *event) with event (H, W, C) images or (D,) vectors, labels (B,) int.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from flowjax.models.batch_ensemble import BatchEnsembleConv, BatchEnsembleDense
from flowjax.models.heteroscedastic import HeteroscedasticHead
from flowjax.models.small_classifier import SmallClassifier
from flowjax.models.sngp import RandomFeatureGP, SpectralNormConv, SpectralNormDense
from flowjax.models.wide_resnet import WideResNet

METHODS = ("deterministic", "dropout", "ensemble", "batchensemble", "mimo", "sngp",
           "heteroscedastic")
"""The values of `method`."""
MULTI_MEMBER = ("ensemble", "batchensemble", "mimo")
"""The methods with `ensemble_size` members."""


class _Plain(nnx.Module):
    """A layer called as layer(x, train) that ignores `train`."""

    def __init__(self, layer: nnx.Module):
        self.layer = layer

    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        return self.layer(x)


@dataclasses.dataclass(frozen=True)
class LayerKit:
    """The dense and convolution layers of a backbone: "plain", "batchensemble" (with
    `members`) or "spectral" (norm bound `bound`, `iterations` power steps per training call);
    each built layer is called as layer(x, train)."""

    kind: str = "plain"
    members: int = 1
    bound: float = 6.0
    iterations: int = 1
    dtype: Any = jnp.float32

    def conv(self, c_in: int, c_out: int, kernel: int, strides: int, *, rngs: nnx.Rngs):
        if self.kind == "batchensemble":
            return _Plain(BatchEnsembleConv(c_in, c_out, kernel, self.members, strides=strides,
                                            dtype=self.dtype, rngs=rngs))
        if self.kind == "spectral":
            return SpectralNormConv(c_in, c_out, kernel, strides=strides, bound=self.bound,
                                    iterations=self.iterations, dtype=self.dtype, rngs=rngs)
        return _Plain(nnx.Conv(c_in, c_out, (kernel, kernel), strides=strides, padding="SAME",
                               dtype=self.dtype, rngs=rngs))

    def dense(self, d_in: int, d_out: int, *, rngs: nnx.Rngs):
        if self.kind == "batchensemble":
            return _Plain(BatchEnsembleDense(d_in, d_out, self.members, dtype=self.dtype,
                                             rngs=rngs))
        if self.kind == "spectral":
            return SpectralNormDense(d_in, d_out, bound=self.bound, iterations=self.iterations,
                                     dtype=self.dtype, rngs=rngs)
        return _Plain(nnx.Linear(d_in, d_out, dtype=self.dtype, rngs=rngs))


class _Network(nnx.Module):
    """Backbone and head of one model (one member of a deep ensemble)."""

    def __init__(self, build_backbone: Callable, kit: LayerKit, in_shape: tuple[int, ...],
                 num_classes: int, s: dict[str, Any], *, rngs: nnx.Rngs):
        self.backbone = build_backbone(kit, in_shape, rngs)
        width, method = self.backbone.features, s["method"]
        if method == "sngp":
            self.head = RandomFeatureGP(
                width, num_classes, num_features=s["gp_features"],
                projection_dim=s["gp_projection_dim"], length_scale=s["gp_length_scale"],
                ridge=s["gp_ridge"], momentum=s["gp_cov_momentum"],
                reset_every=s["gp_cov_reset_every"], normalize_input=s["gp_normalize_input"],
                mean_field_factor=s["mean_field_factor"], rngs=rngs)
        elif method == "heteroscedastic":
            self.head = HeteroscedasticHead(
                width, num_classes, num_factors=s["het_factors"],
                temperature=s["het_temperature"], mc_samples=s["het_mc_samples"],
                dtype=kit.dtype, rngs=rngs)
        else:
            outputs = num_classes * (s["ensemble_size"] if method == "mimo" else 1)
            self.head = (kit.dense(width, outputs, rngs=rngs) if method == "batchensemble"
                         else _Plain(nnx.Linear(width, outputs, dtype=kit.dtype, rngs=rngs)))
        self.method, self.num_classes = method, num_classes

    def __call__(self, x: jax.Array, train: bool, key: jax.Array | None) -> jax.Array:
        """Log-probabilities (B, K), or (B, M, K) for MIMO."""
        drop_key, noise_key = (None, None) if key is None else jax.random.split(key)
        h = self.backbone(x, train, drop_key)
        if self.method == "heteroscedastic":
            return self.head.log_probs(h, jax.random.key(0) if noise_key is None else noise_key)
        logits = self.head(h, train).astype(jnp.float32)
        if self.method == "mimo":
            logits = logits.reshape(logits.shape[0], -1, self.num_classes)
        return jax.nn.log_softmax(logits, axis=-1)


def mimo_indices(key: jax.Array, batch_size: int, members: int, input_repetition: float,
                 batch_repetitions: int) -> jax.Array:
    """(M, r B) example indices of the MIMO members in training (module docstring): one
    shuffle of the batch repeated r times; each member reshuffles its first (1 - rho) fraction
    and keeps the rest, which all members share."""
    main_key, member_key = jax.random.split(key)
    main = jax.random.permutation(main_key, jnp.tile(jnp.arange(batch_size), batch_repetitions))
    shuffled = int(len(main) * (1.0 - input_repetition))
    return jnp.stack([
        jnp.concatenate([jax.random.permutation(k, main[:shuffled]), main[shuffled:]])
        for k in jax.random.split(member_key, members)
    ])


class UncertaintyClassifier(nnx.Module):
    """A classifier of `method` (module docstring) on the backbone `build_backbone(kit,
    input_shape, rngs)` for examples of `event_shape` and `num_classes` classes."""

    def __init__(self, event_shape: tuple[int, ...], build_backbone: Callable, *,
                 num_classes: int | None, dtype=jnp.float32, rngs: nnx.Rngs,
                 method: str = "deterministic", ensemble_size: int = 4,
                 dropout_rate: float = 0.0, mc_samples: int = 10, output_classes: int = 0,
                 sn_bound: float = 6.0, sn_iterations: int = 1, gp_features: int = 1024,
                 gp_projection_dim: int = 128, gp_length_scale: float = 2.0,
                 gp_ridge: float = 1.0, gp_cov_momentum: float = -1.0,
                 gp_cov_reset_every: int = 0, gp_normalize_input: bool = True,
                 mean_field_factor: float = math.pi / 8, het_factors: int = 3,
                 het_temperature: float = 1.5, het_mc_samples: int = 1000,
                 mimo_input_repetition: float = 0.0, mimo_batch_repetitions: int = 1):
        if method not in METHODS:
            raise ValueError(f"model.method must be one of {METHODS}, got {method!r}.")
        if num_classes is None:
            raise ValueError("A classifier needs labelled data (a source with class labels).")
        if output_classes and output_classes != num_classes:
            raise ValueError(
                f"The model predicts model.output_classes={output_classes} classes but the data "
                f"have {num_classes}; set model.output_classes=0 (the data's) or {num_classes}.")
        if ensemble_size < 1 or mc_samples < 1 or not 0 <= dropout_rate < 1:
            raise ValueError(
                f"model.ensemble_size and model.mc_samples must be >= 1 and model.dropout_rate "
                f"in [0, 1), got {ensemble_size}, {mc_samples} and {dropout_rate}.")
        if method == "dropout" and dropout_rate <= 0:
            raise ValueError("model.method='dropout' (MC dropout) needs model.dropout_rate > 0.")
        if not 0 <= mimo_input_repetition <= 1 or mimo_batch_repetitions < 1:
            raise ValueError(
                f"model.mimo_input_repetition must be in [0, 1] and mimo_batch_repetitions >= 1, "
                f"got {mimo_input_repetition} and {mimo_batch_repetitions}.")
        settings = dict(locals())
        members = ensemble_size if method in MULTI_MEMBER else 1
        kit = LayerKit("batchensemble" if method == "batchensemble"
                       else "spectral" if method == "sngp" else "plain",
                       members=members, bound=sn_bound, iterations=sn_iterations, dtype=dtype)
        in_shape = tuple(event_shape)
        if method == "mimo":
            in_shape = (*in_shape[:-1], in_shape[-1] * members)

        def network(r):
            return _Network(build_backbone, kit, in_shape, num_classes, settings, rngs=r)

        if method == "ensemble":
            @nnx.split_rngs(splits=members)
            @nnx.vmap(in_axes=(0,), out_axes=0)
            def create(r):
                return network(r)

            self.members = create(rngs)
        else:
            self.net = network(rngs)
        self.method, self.num_members, self.mc_samples = method, members, mc_samples
        self.mimo = (mimo_input_repetition, mimo_batch_repetitions)

    def _ensemble(self, x: jax.Array, train: bool, key: jax.Array | None) -> jax.Array:
        keys = jax.random.split(jax.random.key(0) if key is None else key, self.num_members)

        @nnx.vmap(in_axes=(0, None, 0), out_axes=0)
        def run(net, x, k):
            return net(x, train, k if key is not None else None)

        return run(self.members, x, keys)

    def train_log_probs(self, x: jax.Array, labels: jax.Array, key: jax.Array
                        ) -> tuple[jax.Array, jax.Array]:
        """Training log-probabilities (M, B', K) and their labels (M, B') (module docstring)."""
        m = self.num_members
        if self.method == "ensemble":
            return self._ensemble(x, True, key), jnp.broadcast_to(labels, (m, *labels.shape))
        if self.method == "batchensemble":
            tiled = jnp.concatenate([x] * m)
            log_p = self.net(tiled, True, key).reshape(m, x.shape[0], -1)
            return log_p, jnp.broadcast_to(labels, (m, *labels.shape))
        if self.method == "mimo":
            shuffle_key, key = jax.random.split(key)
            index = mimo_indices(shuffle_key, x.shape[0], m, *self.mimo)
            inputs = jnp.concatenate([x[i] for i in index], axis=-1)
            return jnp.swapaxes(self.net(inputs, True, key), 0, 1), labels[index]
        return self.net(x, True, key)[None], labels[None]

    def predict(self, x: jax.Array, key: jax.Array) -> jax.Array:
        """The members' (or MC passes') probabilities (B, S, K) at prediction."""
        m = self.num_members
        if self.method == "ensemble":
            return jnp.exp(jnp.swapaxes(self._ensemble(x, False, None), 0, 1))
        if self.method == "batchensemble":
            log_p = self.net(jnp.concatenate([x] * m), False, None)
            return jnp.exp(jnp.swapaxes(log_p.reshape(m, x.shape[0], -1), 0, 1))
        if self.method == "mimo":
            return jnp.exp(self.net(jnp.concatenate([x] * m, axis=-1), False, None))
        if self.method == "dropout":
            graphdef, state = nnx.split(self.net)
            passes = jax.lax.map(lambda k: nnx.merge(graphdef, state)(x, False, k),
                                 jax.random.split(key, self.mc_samples))
            return jnp.exp(jnp.swapaxes(passes, 0, 1))
        return jnp.exp(self.net(x, False, key if self.method == "heteroscedastic" else None)
                       )[:, None]


def wide_resnet_classifier(event_shape: tuple[int, ...], *, depth: int = 28, width: int = 10,
                           **settings) -> UncertaintyClassifier:
    """An `UncertaintyClassifier` on WRN-`depth`-`width` (`flowjax.models.wide_resnet`)."""
    if len(event_shape) != 3:
        raise ValueError(f"A Wide ResNet reads images (H, W, C), got examples of shape "
                         f"{tuple(event_shape)}.")
    rate = settings.get("dropout_rate", 0.0)

    def backbone(kit, shape, rngs):
        return WideResNet(kit, shape[-1], depth=depth, width=width, dropout_rate=rate, rngs=rngs)

    return UncertaintyClassifier(event_shape, backbone, **settings)


def small_classifier(event_shape: tuple[int, ...], *, conv_channels=(16, 32),
                     hidden_dim: int = 64, num_hidden: int = 1,
                     **settings) -> UncertaintyClassifier:
    """An `UncertaintyClassifier` on the small network (`flowjax.models.small_classifier`)."""
    rate = settings.get("dropout_rate", 0.0)

    def backbone(kit, shape, rngs):
        return SmallClassifier(kit, shape, conv_channels=tuple(conv_channels),
                               hidden_dim=hidden_dim, num_hidden=num_hidden, dropout_rate=rate,
                               rngs=rngs)

    return UncertaintyClassifier(event_shape, backbone, **settings)
