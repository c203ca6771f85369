"""Flow Matching Guide and Code (Lipman et al., 2024): the 2D discrete checkerboard example.

Paper setting (section 7 and the reference code's 2D discrete example): tokens on a 128 x 128
grid (two tokens per point, vocabulary 128, plus one mask token for the mask source), a 4 x 4
checkerboard; the mixture path with kappa_t = t^2 and a mask or a uniform source; the generalized
KL loss with t ~ U[0, 1 - 1e-3); a posterior MLP reading the two token embeddings (128 features
each) and t, three hidden layers of 128 Swish units, logits over the vocabulary for both tokens;
Adam, learning rate 1e-3, batch 4096, 30k iterations; sampling with 64 Euler steps of the CTMC.
(The reference network also applies a Swish to its input features; this one does not.)

Data: `flowjax.data`'s discrete_checkerboard, the [-4, 4)^2 checkerboard quantised to 128 bins per
coordinate: uniform on 8192 of the 16384 cells, so its entropy is log 8192 = 9.01 nats per point,
6.5 bits per token.

Expected result: samples on the 8 squares (nearly all in the support) and an ELBO close to the
true 6.5 bits per token (above it: the ELBO bounds the NLL).

Hardware: a CPU is fine; the paper setting takes about an hour on 2 CPU cores (estimated from the
demo's throughput), minutes on a GPU.

Variants (`--config=configs/fm_guide/discrete_checkerboard.py:<source>[,<size>]`):
  source  "mask" (default) or "uniform".
  size    (none) the paper setting; "demo": batch 1024, 3k steps with cosine decay, a few minutes
          on 2 CPU cores; "smoke": a tiny model and a few steps, seconds, for tests.
"""

from __future__ import annotations

import ml_collections

from flowjax.train import default_config

SOURCES = ("mask", "uniform")
SIZES = ("demo", "smoke")


def parse_variant(arg: str | None, first: tuple[str, ...]) -> tuple[str, str | None]:
    """'<first>[,<size>]' -> (first, size); the first entry of `first` by default."""
    parts = [p.strip() for p in (arg or "").split(",") if p.strip()]
    choice = parts.pop(0) if parts and parts[0] in first else first[0]
    size = parts.pop(0) if parts and parts[0] in SIZES else None
    if parts:
        raise ValueError(
            f"Unknown variant {arg!r}; use one of {first} optionally followed by ',demo' or "
            "',smoke'."
        )
    return choice, size


def apply_size(config: ml_collections.ConfigDict, size: str | None) -> None:
    """Shrinks the paper setting to the `demo` or `smoke` size."""
    if size == "demo":
        config.train.num_steps = 3_000
        config.train.global_batch_size = 1024
        config.optim.learning_rate = 3e-3
        config.optim.schedule = "cosine"
        config.optim.warmup_steps = 100
        config.optim.final_lr_fraction = 0.05
        config.optim.grad_clip_norm = 1.0
        config.train.log_every = 100
        config.checkpoint.every_steps = 1_000
        config.sample.num_samples = 20_000
        config.evaluate.num_points = 4_096
        config.evaluate.num_samples = 20_000
    elif size == "smoke":
        config.model.hidden_dim = 16
        config.model.token_embed_dim = 8
        config.model.num_layers = 2
        config.train.num_steps = 12
        config.train.global_batch_size = 256
        config.train.log_every = 4
        config.checkpoint.every_steps = 8
        config.sample.num_samples = 512
        config.sample.batch_size = 256
        config.sample.num_trajectories = 64
        config.sample.step_size = 0.125
        config.evaluate.num_points = 256
        config.evaluate.num_samples = 512
        config.evaluate.batch_size = 256
        config.evaluate.elbo_time_samples = 2


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    source, size = parse_variant(arg, SOURCES)
    config = default_config("discrete_flow_matching")
    config.seed = 0
    config.data = dict(source="toy", name="discrete_checkerboard")

    config.model.hidden_dim = 128
    config.model.token_embed_dim = 128
    config.model.num_layers = 3
    config.model.activation = "swish"
    config.model.time_embedding = "raw"

    config.path.kind = "mixture"
    config.path.source = source
    config.path.scheduler = "polynomial"
    config.path.polynomial_n = 2.0
    config.loss.name = "generalized_kl"
    config.loss.t_max = 1.0 - 1e-3

    config.optim.name = "adam"
    config.optim.learning_rate = 1e-3
    config.optim.schedule = "constant"
    config.optim.ema_decay = 0.999

    config.train.num_steps = 30_000
    config.train.global_batch_size = 4096
    config.train.log_every = 500
    config.checkpoint.every_steps = 5_000

    config.sample.step_size = 1.0 / 64.0
    config.sample.num_samples = 100_000
    config.sample.batch_size = 10_000
    config.evaluate.num_points = 16_384
    config.evaluate.batch_size = 4_096
    config.evaluate.elbo_time_samples = 16
    apply_size(config, size)
    return config
