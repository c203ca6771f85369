"""The trainer objective "autoregressive": the left-to-right language model baseline.

p(x) = prod_i p(x_i | x_<i) with a causal transformer (`flowjax.models.TextTransformer` with
causal=True; the AR baseline of MDLM, Sahoo et al., 2024, table 1, and the judge of generative
perplexity): trained by teacher forcing, the cross-entropy of every next token (the exact
negative log-likelihood), evaluated by the exact log-likelihood in nats, bits per token and
perplexity, and sampled token by token with a KV cache and nucleus (top-p) sampling
(`flowjax.solvers.autoregressive_sample`).

The network reads V + 1 tokens, id V being the beginning-of-sequence token that starts every
sequence (so the first token has a distribution too), and predicts the V data tokens (its BOS
logit is never used).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from flowjax import metrics, solvers
from flowjax.train.objectives.base import (
    TEXT_EVALUATE_DEFAULTS,
    Batch,
    BatchFn,
    DataSpec,
    Objective,
    conditioning,
)


def with_bos(x: jax.Array, bos: int) -> jax.Array:
    """The inputs of teacher forcing: (B, L) tokens shifted right by one, BOS first."""
    return jnp.concatenate([jnp.full((x.shape[0], 1), bos, x.dtype), x[:, :-1]], axis=1)


def sequence_log_prob(model: nnx.Module, x: jax.Array, bos: int, **model_kwargs) -> jax.Array:
    """log p(x) = sum_i log p(x_i | x_<i) of sequences x (B, L), (B,) float32; the model's
    predictions are restricted to the data tokens [0, bos)."""
    logits = model(with_bos(x, bos), **model_kwargs)[..., :bos]
    log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    return jnp.take_along_axis(log_probs, x[..., None], axis=-1)[..., 0].sum(axis=-1)


class Autoregressive(Objective):
    """See the module docstring."""

    name = "autoregressive"
    default_model = "text_transformer"
    data_kind = "discrete"
    path_defaults = dict()
    loss_defaults = dict(label_dropout=0.0)
    sample_defaults = dict(
        top_p=1.0,  # nucleus sampling; 1.0: the model's distribution
        temperature=1.0,
        categorical_dtype="float32",  # or "float64" (needs JAX_ENABLE_X64=1)
    )
    evaluate_defaults = dict(TEXT_EVALUATE_DEFAULTS)
    choices = {"sample.categorical_dtype": ("float32", "float64")}
    positive = ("sample.top_p", "sample.temperature", "evaluate.judge_batch_size")
    unit_interval = ("sample.top_p", "loss.label_dropout")

    def __init__(self, config: ml_collections.ConfigDict, spec: DataSpec):
        super().__init__(config, spec)
        if len(spec.event_shape) != 1:
            raise ValueError(
                f"The objective {self.name!r} models token sequences (L,), got event shape "
                f"{spec.event_shape}."
            )
        if not config.model.get("causal", False):
            raise ValueError(
                f"The objective {self.name!r} needs a causal network: set model.causal=True "
                "(model.name='text_transformer')."
            )
        if config.sample.categorical_dtype == "float64" and not jax.config.read("jax_enable_x64"):
            raise ValueError(
                "sample.categorical_dtype='float64' needs 64-bit JAX: set JAX_ENABLE_X64=1."
            )
        self.bos = spec.vocab_size

    def model_kwargs(self) -> dict[str, Any]:
        return {"vocab_size": self.bos + 1}

    def draw_step_noise(self, key: jax.Array, batch: Batch) -> Batch:
        """Only the dropout seeds of a network with dropout: teacher forcing is deterministic."""
        return self._with_dropout_seeds(key, dict(batch))

    def loss(self, model: nnx.Module, batch: Batch) -> jax.Array:
        """The mean next-token cross-entropy in nats per token."""
        x = batch["x"]
        logits = model(with_bos(x, self.bos), **conditioning(batch))[..., : self.bos]
        return optax.softmax_cross_entropy_with_integer_labels(
            logits.astype(jnp.float32), x
        ).mean()

    def source_batch(self, num: int, seed: int) -> dict[str, np.ndarray]:
        """Placeholders of the samples' shape (sampling starts from BOS, not from them)."""
        inputs = {"x": np.zeros((num, *self.spec.event_shape), np.int32)}
        if self.spec.num_classes is not None:
            rng = np.random.default_rng(seed)
            inputs["label"] = rng.integers(self.spec.num_classes, size=num).astype(np.int32)
        return inputs

    def sampler(self, time_grid: tuple[float, ...] = (0.0, 1.0)) -> BatchFn:
        """Sequences drawn token by token; a longer `time_grid` returns the partial sequence at
        each of its times t (the first round(t L) tokens, the rest BOS), shape (B, T, L)."""
        sc, length = self.config.sample, self.spec.event_shape[0]

        def sample(model, batch, key):
            b = batch["x"].shape[0]
            cond = {"label": batch["label"]} if "label" in batch else {}
            x = solvers.autoregressive_sample(
                key,
                lambda tokens, cache: model.decode(tokens, cache, **cond),
                model.init_cache(b, length),
                jnp.full((b, 1), self.bos, jnp.int32),
                length,
                top_p=sc.top_p,
                temperature=sc.temperature,
                exclude=(self.bos,),
                dtype=jnp.dtype(sc.categorical_dtype),
            )
            if len(time_grid) <= 2:
                return x
            shown = jnp.asarray([round(t * length) for t in time_grid])[:, None]
            return jnp.where(jnp.arange(length) < shown, x[:, None, :], self.bos)

        return sample

    def sample_settings(self) -> dict[str, Any]:
        sc = self.config.sample
        return {"top_p": sc.top_p, "temperature": sc.temperature}

    def log_likelihood(self) -> BatchFn:
        def log_p(model, batch, key):
            del key  # exact
            return sequence_log_prob(model, batch["x"], self.bos, **conditioning(batch))

        return log_p

    def likelihood_metrics(self, log_p: np.ndarray, points: np.ndarray) -> dict[str, float]:
        nll = metrics.negative_log_likelihood(log_p)
        tokens = math.prod(self.spec.event_shape)
        return {
            **nll,
            "nll_bits_per_token": nll["nll_nats"] / (math.log(2.0) * tokens),
            "perplexity": math.exp(nll["nll_nats"] / tokens),
        }
