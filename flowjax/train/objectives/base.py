"""The contract between the trainer and what it trains: `Objective`, `DataSpec`, the registry.

The trainer (`flowjax.train`) is one loop for every kind of flow; the objective named by
`config.objective` supplies what differs between them. An objective is a subclass of
`Objective` with a `name`, built once per run from the config and a description of the data
(`DataSpec`); defining the subclass registers it in `OBJECTIVES`:

  config       class attributes: the defaults of its `path` and `loss` sections and of its own
               keys in the shared `sample` and `evaluate` sections (merged into
               `default_config(objective)`), the allowed values of its keys (`choices`,
               `positive`, `non_negative`, `unit_interval`, checked by
               `flowjax.train.config.validate_config`), the model it trains by default and the
               kind of data it needs ("continuous" points or "discrete" tokens). `__init__`
               builds its path (`flowjax.train.registry`) and its solver settings
               (`flowjax.solvers.SolverSettings.from_config` of `config.sample` and
               `config.evaluate`), and raises a ValueError for a bad combination of settings
               (it runs during config validation, before anything is compiled).
  model        `model_kwargs()`: extra constructor arguments of the network (a vocabulary size);
               `model_fn(build)`: the module trained, from the configured network (a
               distillation objective pairs it with a frozen teacher);
               `init_from_source(path, default)`: which weight of a `train.init_from` run
               initialises each of its parameters.
  training     `draw_step_noise(key, batch)`: all the randomness of one update, drawn for the
               whole global batch, so that accumulating gradients over micro-batches computes
               exactly the per-example terms of one large batch; `schedule_inputs(step)`:
               scalars that follow the update count (a KL warm-up), given to every example of
               the batch; `loss(model, batch)`: the
               scalar loss of one (micro-)batch of that output; `begin_step(state)`: the train
               state as the update starts (a distillation round swaps its teacher).
  sampling     `source_batch(num, seed)`: host arrays of source samples (and class labels);
               `sampler(time_grid)`: a function (model, batch, key) -> samples at the last time,
               or (B, len(time_grid), *event) for a longer grid; `sample_settings()`: the
               solver settings, for the record.
  evaluation   `log_likelihood()`: a function (model, batch, key) -> per-example log-likelihood
               in nats, or a lower bound on it; `likelihood_metrics(log_p, points)`: the named
               metrics of metrics.json; `points(x)`: samples as points of the plane (plots,
               distances); with `compares_samples`, `sample_metrics(samples, reference,
               mesh)`: metrics of samples against held-out examples (point-cloud MMD).

The functions returned by `sampler` and `log_likelihood` are compiled over the device mesh by
`flowjax.train.inference`; `key` is a PRNG key (unused by deterministic solvers).

Adding an objective: a module in this package with a subclass of `Objective` (its paper and
equations in the docstring), imported by the package's `__init__`; configs then select it
with `default_config("<name>")`.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from flowjax import data, losses
from flowjax.models.conditioning import NULL_CONTEXT, noisy_replicate_padding
from flowjax.train import registry

Batch = dict[str, jax.Array]  # "x": (B, *event); optionally "label": (B,)
BatchFn = Callable[[nnx.Module, Batch, jax.Array], jax.Array]  # (model, batch, key) -> array
DROPOUT_STREAM = 0x44524F50  # fold_in tag of the dropout seeds' key
TEXT_EVALUATE_DEFAULTS = dict(
    # The judge of the generative perplexity of text samples: a Hugging Face GPT-2 directory or
    # the workdir of an "autoregressive" run ("": none); see flowjax.train.judge.
    judge="",
    judge_batch_size=64,
)
"""The `evaluate` keys of the objectives that model token sequences."""


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """What an objective needs to know about the data, read from its config without iterating.

    Attributes:
      event_shape: the shape of one example x.
      num_classes: the number of class labels, or None for unlabelled data.
      vocab_size: the number of token values of discrete data, or None for continuous data.
      toy: the name of a toy distribution, or None for other sources.
      control_dim: the number of control metadata values per example (`data.flip_control`).
      context_shape: (M, D) of the text embeddings per example (`data.context_path`), or None.
    """

    event_shape: tuple[int, ...]
    num_classes: int | None
    vocab_size: int | None
    toy: str | None
    control_dim: int = 0
    context_shape: tuple[int, int] | None = None

    @classmethod
    def from_config(cls, data_config: ml_collections.ConfigDict) -> DataSpec:
        return cls(
            event_shape=tuple(data.event_shape(data_config)),
            num_classes=data.num_classes(data_config),
            vocab_size=data.vocab_size(data_config),
            toy=data_config.name if data_config.source == "toy" else None,
            control_dim=data.control_dim(data_config),
            context_shape=data.context_shape(data_config),
        )


def drop_labels(key: jax.Array, batch: Batch, probability: float, null_label: int | None) -> Batch:
    """The batch with each label replaced by `null_label` with `probability` (for guidance)."""
    if null_label is None or probability <= 0:
        return batch
    drop = jax.random.bernoulli(key, probability, batch["label"].shape)
    return {**batch, "label": jnp.where(drop, null_label, batch["label"])}


def conditioning(batch: Batch) -> dict[str, jax.Array]:
    """The model's keyword arguments from a batch: its labels, its control metadata, its text
    embeddings (padded by `pad_context`) and, in training batches of a network with dropout,
    the per-example dropout seeds."""
    return {k: batch[k] for k in ("label", "control", "context", "dropout_seed") if k in batch}


def pad_context(key: jax.Array | None, batch: Batch, noise_std: float) -> Batch:
    """The batch with each caption's tokens past its "context_length" filled by noisy
    replication (`flowjax.models.noisy_replicate_padding`; key None: noiseless copies, as for
    sampling), and the lengths dropped; batches without text embeddings pass unchanged."""
    if "context_length" not in batch:
        return batch
    out = {k: v for k, v in batch.items() if k != "context_length"}
    noise_std = 0.0 if key is None else noise_std
    key = jax.random.key(0) if key is None else key
    out["context"] = noisy_replicate_padding(
        key, batch["context"], batch["context_length"], noise_std
    )
    return out


def drop_context(key: jax.Array, batch: Batch, probability: float) -> Batch:
    """The batch with each example's text embeddings replaced by the null context (zeros,
    `flowjax.models.conditioning.null_context`) with `probability` (for guidance)."""
    if "context" not in batch or probability <= 0:
        return batch
    drop = jax.random.bernoulli(key, probability, batch["context"].shape[:1])
    return {**batch, "context": jnp.where(drop[:, None, None], NULL_CONTEXT, batch["context"])}


def drop_control(key: jax.Array, batch: Batch, probability: float) -> Batch:
    """The batch with each example's control metadata replaced by the null control (a row of
    NaN, `flowjax.models.conditioning`) with `probability` (for control guidance)."""
    if "control" not in batch or probability <= 0:
        return batch
    drop = jax.random.bernoulli(key, probability, batch["control"].shape[:1])
    return {**batch, "control": jnp.where(drop[:, None], jnp.nan, batch["control"])}


def dropout_seeds(key: jax.Array, batch_size: int) -> jax.Array:
    """One uint32 seed per example (B,) for the dropout masks of a network trained with dropout
    (`flowjax.models.UNet`): drawn with the step's noise, so micro-batches see the masks of the
    global batch; networks called without seeds (sampling, likelihoods) apply no dropout."""
    return jax.random.bits(key, (batch_size,), jnp.uint32)


OBJECTIVES: dict[str, type[Objective]] = {}
"""The objectives by `config.objective`, filled in as their classes are defined."""


class Objective(abc.ABC):
    """One kind of flow for the shared trainer; see the module docstring for the contract."""

    name: ClassVar[str]
    default_model: ClassVar[str]
    data_kind: ClassVar[str]  # "continuous" or "discrete"
    path_defaults: ClassVar[dict[str, Any]]
    loss_defaults: ClassVar[dict[str, Any]]
    sample_defaults: ClassVar[dict[str, Any]]
    evaluate_defaults: ClassVar[dict[str, Any]]
    choices: ClassVar[dict[str, tuple]] = {}
    positive: ClassVar[tuple[str, ...]] = ()
    non_negative: ClassVar[tuple[str, ...]] = ()
    unit_interval: ClassVar[tuple[str, ...]] = ()
    reads_context: ClassVar[bool] = False  # whether the model may read text embeddings
    plot_density: ClassVar[bool] = False  # whether `log_likelihood` is cheap enough for a grid
    # Whether evaluation scores image samples (FID / Inception Score with the evaluate.fid_*
    # settings, the digits distance): the samples are draws of the data, not predictions.
    scores_images: ClassVar[bool] = False
    # Whether evaluation compares samples with held-out examples by `sample_metrics`.
    compares_samples: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            OBJECTIVES[cls.name] = cls

    def __init__(self, config: ml_collections.ConfigDict, spec: DataSpec):
        self.config = config
        self.spec = spec
        kind = "discrete" if spec.vocab_size is not None else "continuous"
        if kind != self.data_kind:
            raise ValueError(
                f"The objective {self.name!r} trains on {self.data_kind} data, but "
                f"config.data={config.data.to_dict()} is {kind}."
            )
        model_kind = registry.MODELS[config.model.name].data_kind
        if model_kind != self.data_kind:
            raise ValueError(
                f"The model {config.model.name!r} reads {model_kind} data; the objective "
                f"{self.name!r} needs a {self.data_kind} model such as {self.default_model!r}."
            )
        model_control = config.model.get("control_dim", 0)
        if model_control != spec.control_dim:
            raise ValueError(
                f"The data carry {spec.control_dim} control metadata value(s) per example "
                f"(data.flip_control={bool(spec.control_dim)}), but the model reads "
                f"{model_control} (model.control_dim={model_control}); make them equal (the DiT "
                "reads control metadata)."
                if "control_dim" in config.model or not spec.control_dim
                else f"The data carry control metadata (data.flip_control=True), but the model "
                f"{config.model.name!r} reads none; use a DiT with model.control_dim="
                f"{spec.control_dim}."
            )
        model_context = config.model.get("context_dim", 0)
        data_context = spec.context_shape[1] if spec.context_shape else 0
        if data_context and not self.reads_context:
            raise ValueError(
                f"The data carry text embeddings (data.context_path), which the objective "
                f"{self.name!r} does not read; use 'flow_matching' or drop data.context_path."
            )
        if model_context != data_context:
            raise ValueError(
                f"The data carry text embeddings of width {data_context} (data.context_path), but "
                f"the model reads width {model_context} (model.context_dim); make them equal (a "
                "DiT with conditioning='attention' reads text embeddings)."
            )
        if config.loss.get("label_dropout", 0.0) > 0 and spec.num_classes is None:
            raise ValueError(
                "loss.label_dropout > 0 needs class labels, but the dataset has none "
                f"(config.data={config.data.to_dict()})."
            )

    def model_kwargs(self) -> dict[str, Any]:
        """Extra constructor arguments of the model."""
        return {}

    def model_fn(
        self, build: Callable[[nnx.Rngs], nnx.Module]
    ) -> Callable[[nnx.Rngs], nnx.Module]:
        """rngs -> the module the run trains, from `build` (rngs -> the configured network):
        the network itself, or e.g. a student with its teacher for distillation."""
        return build

    def init_from_source(self, path: str, default: str) -> str | None:
        """The weight of the `train.init_from` run that initialises this model's parameter (or
        frozen weight) `path`: `default` (the same path without the distillation prefixes), another
        key of the source, or None to keep the initialisation (`flowjax.train.init_from`)."""
        return default

    def begin_step(self, state: Any) -> Any:
        """The train state at the start of an update, before its loss (inside the compiled
        step): unchanged, or e.g. a distillation teacher replaced when a round starts."""
        return state

    def schedule_inputs(self, step: jax.Array) -> dict[str, jax.Array]:
        """Scalars that follow a schedule of the update count `step` (e.g. a KL warm-up
        weight), added to the batch of `draw_step_noise` as per-example (B,) arrays so that
        `loss` reads them from every micro-batch; none by default."""
        return {}

    def sample_metrics(self, samples: np.ndarray, reference: dict[str, np.ndarray],
                       mesh: Any) -> dict[str, float]:
        """Named metrics of samples against held-out examples (`source_batch` of as many), for
        an objective with `compares_samples`."""
        return {}

    def _with_dropout_seeds(self, key: jax.Array, batch: Batch) -> Batch:
        """`batch` with per-example dropout seeds (from its own stream of `key`, so the other
        draws of the step do not change) when the model trains with dropout."""
        if self.config.model.get("dropout", 0.0) <= 0:
            return batch
        seeds = dropout_seeds(jax.random.fold_in(key, DROPOUT_STREAM), batch["x"].shape[0])
        return {**batch, "dropout_seed": seeds}

    def _time(self, key: jax.Array, batch_size: int, dtype=jnp.float32) -> jax.Array:
        """Training times (B,) from the `loss` section's time distribution."""
        c = self.config.loss
        return losses.sample_time(
            key,
            batch_size,
            distribution=c.time_distribution,
            mean=c.time_mean,
            std=c.time_std,
            t_max=c.t_max,
            dtype=dtype,
        )

    @abc.abstractmethod
    def draw_step_noise(self, key: jax.Array, batch: Batch) -> Batch:
        """The global batch with all the randomness of one update added."""

    @abc.abstractmethod
    def loss(self, model: nnx.Module, batch: Batch) -> jax.Array:
        """The scalar loss of a (micro-)batch of `draw_step_noise`'s output."""

    @abc.abstractmethod
    def source_batch(self, num: int, seed: int) -> dict[str, np.ndarray]:
        """`num` source samples "x" (and uniform class labels for a conditional model)."""

    @abc.abstractmethod
    def sampler(self, time_grid: tuple[float, ...] = (0.0, 1.0)) -> BatchFn:
        """(model, batch, key) -> samples from batch["x"] (see the module docstring)."""

    @abc.abstractmethod
    def sample_settings(self) -> dict[str, Any]:
        """The sampler's settings, recorded with its results."""

    @abc.abstractmethod
    def log_likelihood(self) -> BatchFn:
        """(model, batch, key) -> log p(batch["x"]) in nats (or a lower bound), shape (B,)."""

    @abc.abstractmethod
    def likelihood_metrics(self, log_p: np.ndarray, points: np.ndarray) -> dict[str, float]:
        """Named metrics of the per-example log-likelihoods of the held-out `points`."""

    def points(self, x: np.ndarray) -> np.ndarray:
        """Examples as float points (for plots and sample distances)."""
        return np.asarray(x, np.float32)


def objective_class(name: str) -> type[Objective]:
    if name not in OBJECTIVES:
        raise ValueError(f"Unknown objective {name!r}; expected one of {sorted(OBJECTIVES)}.")
    return OBJECTIVES[name]


def build_objective(config: ml_collections.ConfigDict, spec: DataSpec | None = None) -> Objective:
    """The objective of `config` for its data (read from config.data when `spec` is None)."""
    spec = DataSpec.from_config(config.data) if spec is None else spec
    return objective_class(config.objective)(config, spec)
