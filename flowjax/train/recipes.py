"""Config builders shared by the files of configs/: the Flow Matching Guide's image recipe
(Lipman et al., 2024; PAPERS.md, section 1, the reference code's CIFAR-10 and ImageNet-32/64
settings), the toy smoke settings, and the neural-ODE-on-paired-data settings.

Common to its image results: the conditional-OT path x_t = t x_1 + (1 - t) x_0 with velocity
prediction (eq. 4.23 / 4.64); skewed training times t = sigmoid(N(-1.2, 1.2^2))
(`flowjax.losses.sample_time`, "logit_normal"); AdamW with learning rate 1e-4 and betas
(0.9, 0.95); an EMA of the parameters with decay 0.999, warmed up as
min(0.999, (1 + step) / (10 + step)) (`flowjax.train.optim.ema_decay`); an ADM UNet
(`flowjax.models.UNet`). Sampling: Heun's method on the EDM time grid
(`flowjax.solvers.edm_time_grid`) for CIFAR-10, dopri5 with tolerances 1e-5 and
classifier-free guidance for the class-conditional ImageNet models.

`image_recipe_config` writes that config for a dataset of `flowjax.data.IMAGE_DATASETS`,
`imagenet_config` the class-conditional ImageNet-32/64 setting;
`shrink_to_smoke` turns any image config into a seconds-long CPU run of the same pipeline
(a tiny network, a few steps, a few samples) for tests, and `shrink_toy_to_smoke` does the same
for the 2-D toy configs (checkerboard, torus, generator matching). `apply_variants` and
`tfds_classification_config` build the settings of the objective "simfree_node" (Kim et al.,
2024): its comma-separated variants and its MNIST / SVHN / CIFAR-10 configs.
"""

from __future__ import annotations

from typing import Any

import ml_collections

from flowjax.data import IMAGE_DATASETS, image_data_config
from flowjax.models import MEBT_SHARDING_RULES, TEXT_TRANSFORMER_SHARDING_RULES, mebt_layers
from flowjax.models.autoencoder import AUTOENCODER_SHARDING_RULES
from flowjax.models.layers import DIT_SHARDING_RULES, UNET_SHARDING_RULES
from flowjax.models.uncertainty import METHODS as UNCERTAINTY_MODEL_METHODS
from flowjax.train.config import default_config
from flowjax.train.objectives.simfree_node import METHODS as SIMFREE_NODE_METHODS
from flowjax.train.registry import model_defaults

SHARDING_RULES = {"unet": UNET_SHARDING_RULES, "dit": DIT_SHARDING_RULES}


def image_recipe_config(
    dataset: str, *, model: str = "unet", conditional: bool = False, random_flip: bool = True
) -> ml_collections.ConfigDict:
    """The Guide's image recipe on `dataset` ("cifar10", "imagenet32", "imagenet64",
    "digits") with the default settings of `model` ("unet" or "dit"); the caller sets the
    network's size, the run length and the sampler."""
    entry = IMAGE_DATASETS[dataset]
    config = default_config("flow_matching")
    config.data = image_data_config(dataset, random_flip=random_flip, labels=conditional)
    if entry.tfds_name is not None:  # None (TFDS's default), settable as --config.data.data_dir
        config.data.data_dir = ml_collections.config_dict.placeholder(str)
    config.evaluate.data = dict(split=entry.eval_split, random_flip=False, shuffle=False)
    if dataset == "digits":
        config.evaluate.data = dict(split=entry.eval_split, shuffle=False)

    config.model = model_defaults(model)
    config.model.image_size = entry.image_size
    config.sharding.rules = SHARDING_RULES[model]

    config.path.scheduler = "cond_ot"
    config.loss.prediction = "velocity"
    config.loss.time_distribution = "logit_normal"
    config.loss.time_mean = -1.2
    config.loss.time_std = 1.2

    config.optim.name = "adamw"
    config.optim.learning_rate = 1e-4
    config.optim.b1 = 0.9
    config.optim.b2 = 0.95
    config.optim.weight_decay = 0.0
    config.optim.ema_decay = 0.999

    config.sample.method = "heun"
    config.sample.time_grid = "edm"
    config.sample.edm_steps = 25  # 50 evaluations
    config.sample.num_samples = 50_000
    config.sample.batch_size = 500
    config.sample.num_trajectories = 16
    # Bits per dimension with a Hutchinson divergence estimate: the exact trace costs one
    # network pass per pixel and channel.
    config.evaluate.divergence = "hutchinson"
    config.evaluate.method = "midpoint"
    config.evaluate.step_size = 0.05
    config.evaluate.num_points = 1_000
    config.evaluate.batch_size = 500
    return config


def shrink_to_smoke(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The same data, recipe and sampler with a tiny network, 3 updates of 8 images and 16
    samples (seconds on a CPU); returns `config`, changed in place."""
    if config.model.name == "unet":
        config.model.channels = 16
        config.model.channel_mults = (1, 2)
        config.model.num_res_blocks = 1
        config.model.attention_factors = (2,)
        config.model.head_dim = 8
        config.model.norm_groups = 8
    else:
        config.model.size = "S"
        config.model.hidden_dim = 32
        config.model.depth = 2
        config.model.num_heads = 2
    config.train.num_steps = 3
    config.train.global_batch_size = 8
    config.train.log_every = 1
    config.checkpoint.every_steps = 3
    config.sample.num_samples = 16
    config.sample.batch_size = 8
    config.sample.num_trajectories = 4
    config.sample.edm_steps = 3
    config.sample.step_size = 0.25
    config.sample.atol = 1e-2
    config.sample.rtol = 1e-2
    config.evaluate.num_samples = 16
    config.evaluate.num_points = 8
    config.evaluate.batch_size = 8
    config.evaluate.step_size = 0.5
    return config


def shrink_toy_to_smoke(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A toy run at test size (seconds on a CPU): a 2 x 32 network, 20 updates of 256 points,
    512 samples and 256 held-out points on steps of 0.25; returns `config`, changed in place."""
    config.model.hidden_dim = 32
    config.model.num_layers = 2
    config.train.num_steps = 20
    config.train.global_batch_size = 256
    config.train.log_every = 5
    config.checkpoint.every_steps = 10
    config.sample.num_samples = 512
    config.sample.batch_size = 256
    config.sample.num_trajectories = 64
    config.sample.step_size = 0.25
    config.evaluate.step_size = 0.25
    config.evaluate.num_points = 256
    config.evaluate.num_samples = 512
    config.evaluate.batch_size = 256
    return config


def imagenet_config(dataset: str, arg: str | None) -> ml_collections.ConfigDict:
    """The Guide's class-conditional ImageNet recipe on "imagenet32" or "imagenet64"."""
    if arg not in (None, "smoke"):
        raise ValueError(f"Unknown variant {arg!r} of the {dataset} config; use 'smoke'.")
    config = image_recipe_config(dataset, model="unet", conditional=True)
    config.model.channels = 192
    config.model.channel_mults = (1, 2, 3, 4)
    config.model.num_res_blocks = 3
    config.model.attention_factors = (2, 4, 8)
    config.model.dropout = 0.0
    config.loss.label_dropout = 0.2
    config.train.global_batch_size = 1024
    config.train.num_steps = 500_000
    config.train.log_every = 500
    config.checkpoint.every_steps = 10_000
    config.sample.method = "dopri5"
    config.sample.time_grid = "uniform"
    config.sample.atol = 1e-5
    config.sample.rtol = 1e-5
    config.sample.guidance_scale = 0.2
    if arg == "smoke":
        shrink_to_smoke(config)
        config.model.channel_mults = (1, 2, 2)
        config.model.attention_factors = (2, 4)
    return config


def toy_generator_matching_config(
    config_name: str, data_names: dict[str | None, str], arg: str | None
) -> ml_collections.ConfigDict:
    """The generator-matching toy setting of `configs/generator_matching/` (Holderrieth et al.,
    2024): CondOT flow + jump model, a 4 x 256 `generator_mlp` with 128 jump bins on [-5, 5],
    Adam 2e-3 with cosine decay, batch 1024, 2k steps, sampled by the 50/50 superposition.
    `data_names` maps each data variant (None: the default) to its toy; "smoke" shrinks it."""
    variants = sorted([name for name in data_names if name is not None] + ["smoke"])
    if arg is not None and arg not in variants:
        raise ValueError(
            f"Unknown variant {arg!r} of the {config_name} config; use "
            + ", ".join(repr(v) for v in variants)
            + " or none."
        )
    config = default_config("generator_matching")
    config.data = dict(source="toy", name=data_names.get(arg, data_names[None]))
    config.path.parts = "flow+jump"
    config.path.num_bins = 128
    config.path.low = -5.0
    config.path.high = 5.0

    config.model.hidden_dim = 256
    config.model.num_layers = 4

    config.optim.learning_rate = 2e-3
    config.optim.schedule = "cosine"
    config.optim.warmup_steps = 100
    config.optim.final_lr_fraction = 0.02
    config.optim.grad_clip_norm = 1.0
    config.optim.ema_decay = 0.999

    config.train.num_steps = 2_000
    config.train.global_batch_size = 1024
    config.train.log_every = 200
    config.checkpoint.every_steps = 1_000

    config.sample.generator = "superposition"
    config.sample.flow_weight = 0.5
    config.sample.step_size = 0.01
    config.sample.time_power = 2.0
    config.sample.num_samples = 20_000
    config.evaluate.num_points = 8_192
    config.evaluate.num_samples = 20_000

    if arg == "smoke":
        shrink_toy_to_smoke(config)
        config.path.num_bins = 16
        config.sample.step_size = 0.1
    return config


# Neural ODEs on paired data (the objective "simfree_node") ------------------------------------


def short_run(config: ml_collections.ConfigDict) -> None:
    """The default "smoke" variant: 20 updates, logged every 10, one checkpoint at the end."""
    config.train.num_steps = config.checkpoint.every_steps = 20
    config.train.log_every = 10


def apply_variants(
    config: ml_collections.ConfigDict, arg: str | None, variants: dict | None = None
):
    """Applies the comma-separated variants of `arg` ("smoke", "backprop,smoke", ...) to a
    simfree_node config: "embedding", "data_space" and "backprop" set loss.method,
    "trigonometric" the cosine path, "smoke" shortens the run (`short_run`), and `variants`
    maps the config's own names to functions that change the config in place (replacing a
    built-in one of the same name). Unknown names raise a ValueError listing the valid ones."""
    builtin = {
        **{m: (lambda c, m=m: setattr(c.loss, "method", m)) for m in SIMFREE_NODE_METHODS},
        "trigonometric": lambda c: setattr(c.path, "scheduler", "cosine"),
        "smoke": short_run,
    }
    known = {**builtin, **(variants or {})}
    for name in [] if not arg else arg.split(","):
        if name not in known:
            raise ValueError(
                f"Unknown variant {name!r}; use a comma-separated subset of {sorted(known)}."
            )
        known[name](config)
    return config


def tfds_classification_config(
    dataset: str, arg: str | None, *, num_test: int, eval_batch_size: int, **model: Any
) -> ml_collections.ConfigDict:
    """The paper's image-classification settings (MNIST, SVHN, CIFAR-10) on a TFDS dataset:
    train on "train", evaluate on all `num_test` test images; 100k steps of batch 1024 with the
    EMA of the weights. `model` sets `config.model` (and `label_noise`, `learning_rate`,
    `schedule` the loss and the optimiser); the `smoke` variant shrinks everything to seconds."""
    config = default_config("simfree_node")
    config.data = dict(source="tfds", name=dataset, split="train", data_dir=None)
    config.evaluate.data = dict(split="test")
    config.loss.label_noise = model.pop("label_noise")
    config.optim.learning_rate = model.pop("learning_rate")
    config.optim.schedule = model.pop("schedule", config.optim.schedule)
    config.model.update(model)
    config.optim.ema_decay = 0.9999
    config.train.num_steps = 100_000
    config.train.global_batch_size = 1024
    config.train.log_every = 500
    config.checkpoint.every_steps = 10_000
    config.sample.num_samples = 1_000
    config.sample.batch_size = 1_000
    config.sample.num_trajectories = 64
    config.evaluate.num_points = num_test
    config.evaluate.batch_size = eval_batch_size

    def smoke(c: ml_collections.ConfigDict) -> None:
        c.model.latent_dim = c.model.decoder_hidden_dim = c.model.hidden_dim = 32
        if c.model.get("encoder") == "cnn":
            c.model.cnn_channels = (8, 16)
        else:
            c.model.encoder_hidden_dim = 32
        c.train.num_steps = c.checkpoint.every_steps = 10
        c.train.global_batch_size = 32
        c.train.log_every = 5
        c.sample.num_samples = c.sample.batch_size = 32
        c.sample.num_trajectories = 4
        c.evaluate.num_points = c.evaluate.batch_size = 32

    return apply_variants(config, arg, {"smoke": smoke})


# Language models (masked diffusion, discrete flow matching, the autoregressive baseline) ------


TEXT_DATASETS = {
    # MDLM's two preparations (section 4.1): LM1B sentences wrapped into rows of 128
    # bert-base-uncased tokens, OpenWebText documents into rows of 1,024 GPT-2 tokens.
    "lm1b": dict(source="tfds_text", name="lm1b", split="train", seq_len=128),
    "openwebtext": dict(source="tfds_text", name="openwebtext", split="train", seq_len=1024),
}
TEXT_EVAL_SPLITS = {"lm1b": "test", "openwebtext": "validation"}
TOKENIZER_FILES = {"lm1b": "tokenizers/bert-base-uncased", "openwebtext": "tokenizers/gpt2"}
TEXT_MODELS = {"imdm": "imdm_transformer", "flm": "flm_transformer"}
"""The network of the text objectives that do not train the plain text transformer."""


def language_model_config(
    objective: str,
    dataset: str,
    *,
    time_conditioning: bool,
    num_steps: int,
    global_batch_size: int = 512,
) -> ml_collections.ConfigDict:
    """The shared recipe of the text papers (MDLM, Sahoo et al., 2024, appendix B; the Flow
    Matching Guide's text example; MD4, FLM) on `dataset` ("lm1b" or "openwebtext"): the small
    DDiT text transformer (12 blocks, width 768, 12 heads, conditioning 128, dropout 0.1; causal
    for the "autoregressive" objective), AdamW at 3e-4 with betas (0.9, 0.999), no weight decay,
    2,500 linear warm-up steps then constant, gradients clipped at 1, an EMA of 0.9999, batch
    512. The tokenizer file (`data.tokenizer`) and TFDS directory (`data.data_dir`) are set on
    the command line; nothing is downloaded."""
    config = default_config(objective)
    config.data = dict(TEXT_DATASETS[dataset], tokenizer=TOKENIZER_FILES[dataset])
    config.data.data_dir = ml_collections.config_dict.placeholder(str)  # TFDS's default
    config.evaluate.data = dict(split=TEXT_EVAL_SPLITS[dataset], shuffle=False)
    config.model = model_defaults(TEXT_MODELS.get(objective, "text_transformer"))
    if config.model.name == "text_transformer":
        config.model.causal = objective == "autoregressive"
    config.model.update(size="small", cond_dim=128, dropout=0.1)
    config.model.time_conditioning = time_conditioning
    config.sharding.rules = TEXT_TRANSFORMER_SHARDING_RULES
    config.optim.update(
        name="adamw", learning_rate=3e-4, b1=0.9, b2=0.999, weight_decay=0.0,
        warmup_steps=2_500, grad_clip_norm=1.0, ema_decay=0.9999,
    )
    config.train.update(num_steps=num_steps, global_batch_size=global_batch_size, log_every=1_000)
    config.checkpoint.every_steps = 10_000
    config.sample.update(num_samples=1_024, batch_size=64, num_trajectories=8)
    config.evaluate.update(num_points=10_000, batch_size=64, num_samples=1_024)
    return config


def shrink_text_to_smoke(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A language-model run at test size (seconds on a CPU): a 1-block width-32 transformer on a
    synthetic Markov language (16 tokens, sequences of 16), 10 updates, 32 samples."""
    config.data = dict(source="synthetic_text", name="markov", vocab_size=16, seq_len=16)
    config.evaluate.data = dict()
    config.evaluate.judge = ""
    config.model.update(hidden_dim=32, depth=1, num_heads=2, cond_dim=16, dropout=0.0)
    config.sharding.rules = ()
    config.optim.warmup_steps = 0
    config.train.update(num_steps=10, global_batch_size=16, log_every=5)
    config.checkpoint.every_steps = 10
    config.sample.update(num_samples=32, batch_size=32, num_trajectories=4)
    if "step_size" in config.sample:  # the autoregressive sampler takes no steps in time
        config.sample.step_size = 1.0 / 16.0
    config.evaluate.update(num_points=32, batch_size=32, num_samples=32)
    return config


def text_cpu_run(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A short run on a CPU on real English text that ships with Python (the documentation
    topics of `pydoc_data`, byte tokens, sequences of 128): the tiny transformer, batch 32,
    3,000 updates at 1e-3 with 200 warm-up steps, 128-step sampling; printed samples show what it
    learned."""
    config.data = dict(source="python_docs", split="train", tokenizer="bytes", seq_len=128)
    config.evaluate.data = dict(split="test", shuffle=False)
    config.evaluate.judge = ""
    config.model.update(size="tiny", dropout=0.0)
    config.sharding.rules = ()
    config.optim.update(learning_rate=1e-3, warmup_steps=200, ema_decay=0.999)
    config.train.update(num_steps=3_000, global_batch_size=32, log_every=100)
    config.checkpoint.every_steps = 1_000
    config.sample.update(num_samples=64, batch_size=64, num_trajectories=4)
    if "step_size" in config.sample:
        config.sample.step_size = 1.0 / 128.0
    config.evaluate.update(num_points=512, batch_size=64, num_samples=64)
    return config


def apply_text_size(
    config: ml_collections.ConfigDict, size: str | None
) -> ml_collections.ConfigDict:
    """The paper setting (None), "cpu" (`text_cpu_run`) or "smoke" (`shrink_text_to_smoke`)."""
    sizes = {None: lambda c: c, "cpu": text_cpu_run, "smoke": shrink_text_to_smoke}
    if size not in sizes:
        raise ValueError(f"Unknown size variant {size!r}; use 'cpu', 'smoke' or none.")
    return sizes[size](config)



IMDM_STAGES = ("teacher", "sdtt", "redi")
IMDM_MODELS = {"imdm": "imdm", "mdm": "masked_diffusion"}


def imdm_text_config(
    dataset: str, arg: str | None, *, noise_dim: int, sdtt_batch: int, redi_updates: int
) -> ml_collections.ConfigDict:
    """The IMDM recipe on `dataset` ("lm1b" or "openwebtext"), from the variant string
    "<stage>[,<model>][,large][,<size>]" (configs/imdm/lm1b.py, owt.py):

    - stage "teacher" (default): the masked diffusion recipe (`language_model_config`: small
      DDiT without time conditioning, MDLM's linear schedule, 1,000 sampling steps) with the
      infinite mask (uniform eps of `noise_dim` features); an IMDM is usually started from an
      MDLM run with --config.train.init_from=WORKDIR. "sdtt": IM-SDTT from --config.train.
      init_from (lr 6e-5 with 500 warm-up steps, batch `sdtt_batch`, 7 rounds of 10,000 updates
      from 1,024 teacher steps down to an 8-step student). "redi": IM-ReDi on couplings
      (--config.data.path=FILE of `flowjax.train.couplings`, the authors' 100,000 samples of a
      1,024-step teacher), `redi_updates` updates at 3e-4.
    - model "imdm" (default) or "mdm" (the same stages for the masked model: MDLM + SDTT).
    - "large": width 1536, 24 blocks, 16 heads (about 860M parameters with GPT-2's vocabulary),
      sampled and evaluated in batches of 256 (divisible by pod meshes).
    - size "cpu" / "smoke" (`apply_text_size`; the noise dimension is cut to 64 / 8).
    """
    parts = [p for p in (arg or "").split(",") if p]
    known = set(IMDM_STAGES) | set(IMDM_MODELS) | {"large", "cpu", "smoke"}
    unknown = sorted(set(parts) - known)
    if unknown:
        raise ValueError(
            f"Unknown variant(s) {unknown} of the IMDM {dataset} config; stages {IMDM_STAGES}, "
            f"models {tuple(IMDM_MODELS)}, 'large', sizes ('cpu', 'smoke')."
        )
    stage = next((p for p in parts if p in IMDM_STAGES), "teacher")
    model = next((p for p in parts if p in IMDM_MODELS), "imdm")
    size = next((p for p in parts if p in ("cpu", "smoke")), None)
    config = language_model_config(
        IMDM_MODELS[model], dataset, time_conditioning=False, num_steps=500_000
    )
    config.path.update(schedule="linear", eps_start=1e-3, eps_end=0.0)
    config.sample.step_size = 1.0 / 1000.0
    if model == "imdm":
        config.model.update(noise_dim=noise_dim, mask_noise="uniform", noise_scale=1.0)
    if "large" in parts:  # pod scale: batches of 256 split over up to 256 devices
        config.model.update(hidden_dim=1536, depth=24, num_heads=16)
        config.sample.batch_size = config.evaluate.batch_size = 256
    if stage == "sdtt":
        config.loss.update(
            distill="sdtt", sdtt_start_steps=1024, sdtt_min_steps=8, sdtt_round_updates=10_000
        )
        config.optim.update(learning_rate=6e-5, warmup_steps=500)
        config.train.update(num_steps=70_000, global_batch_size=sdtt_batch)
    if stage == "redi":
        config.loss.distill = "redi"
        config.data = dict(source="couplings", path=ml_collections.config_dict.placeholder(str))
        config.evaluate.data = dict()
        config.train.num_steps = redi_updates
    config = apply_text_size(config, size)
    if size and model == "imdm":
        config.model.noise_dim = {"cpu": 64, "smoke": 8}[size]
    if size and stage == "sdtt":
        config.loss.sdtt_round_updates = max(config.train.num_steps // 7, 1)
        config.train.num_steps = 7 * config.loss.sdtt_round_updates
    if size and stage == "redi":
        config.data = dict(source="couplings", path=ml_collections.config_dict.placeholder(str))
        config.evaluate.data = dict()
    return config


FLM_STAGES = ("flm", "flow_map", "one_call")


def flm_text_config(dataset: str, arg: str | None) -> ml_collections.ConfigDict:
    """The FLM / FMLM recipe on `dataset` ("lm1b" or "openwebtext", the authors' scripts), from
    the variant string "<stage>[,<size>]" (configs/flm/lm1b.py, owt.py):

    - "flm" (default): the flow language model (`language_model_config`: small DDiT with time
      conditioning, cond width 128, dropout 0.1, AdamW 3e-4 with 2,500 warm-up steps, EMA
      0.9999, batch 512, 1.5M updates), alpha drawn low-discrepancy, 1,024 Euler steps.
    - "flow_map": FMLM stage one from --config.train.init_from=FLM_WORKDIR (the end-time
      embedding, learned loss weighting, boundary pairs (0, 1) with probability 1/64; batch 128
      on OWT, 512 on LM1B, 1M updates), sampled in 1 step (`sample.step_size`).
    - "one_call": FMLM stage two from --config.train.init_from=STAGE_ONE_WORKDIR (boundary
      probability 1/128, batch 512, 1M updates), sampled in 1 step.
    - size "cpu" / "smoke" (`apply_text_size`).
    """
    parts = [p for p in (arg or "").split(",") if p]
    unknown = sorted(set(parts) - set(FLM_STAGES) - {"cpu", "smoke"})
    if unknown:
        raise ValueError(
            f"Unknown variant(s) {unknown} of the FLM {dataset} config; stages {FLM_STAGES}, "
            "sizes ('cpu', 'smoke')."
        )
    stage = next((p for p in parts if p in FLM_STAGES), "flm")
    size = next((p for p in parts if p in ("cpu", "smoke")), None)
    config = language_model_config("flm", dataset, time_conditioning=True, num_steps=1_500_000)
    config.sample.step_size = 1.0 / 1024.0
    if stage != "flm":
        config.loss.distill = stage
        config.model.update(map_time=True, learned_weighting=True)
        config.loss.boundary_probability = 1.0 / (64.0 if stage == "flow_map" else 128.0)
        batch = 128 if stage == "flow_map" and dataset == "openwebtext" else 512
        config.train.update(num_steps=1_000_000, global_batch_size=batch)
        config.sample.step_size = 1.0
    config = apply_text_size(config, size)
    if size and stage != "flm":
        config.sample.step_size = 1.0
    return config


LATENT_IMAGENET_SIDES = {256: 32, 512: 64}
"""ImageNet resolution -> the side of its SD-VAE latents (f = 8)."""


def latent_imagenet_config(resolution: int, paper: str, arg: str | None) -> ml_collections.ConfigDict:
    """Class-conditional latent flow matching on ImageNet at `resolution` (256 or 512) with
    DiT-XL/2 on SD-VAE latents (32x32x4 or 64x64x4), for the two papers of Berrada et al.:

      paper="lpl"           the latent perceptual loss (weight 1, t >= 0.8); variant
                            "baseline" without it.
      paper="conditioning"  the label through attention and the flip as control metadata with
                            the cosine strength; variant "adaln" puts both in the adaLN vector
                            (the shared baseline). At 512: positions interpolated from the 256
                            model's 16 x 16 tokens and the noise schedule shifted by 2, started
                            from the 256 run (train.init_from) as in the paper's transfer.

    The data: ImageNet encoded once by the SD-VAE (`flowjax.data.write_latents`, "mean" store,
    scaled by 0.18215) into ArrayRecord shards, passed as --config.data.path=GLOB; the LPL
    decoder: the same VAE's diffusers directory, --config.loss.lpl_autoencoder=DIR. Variant
    "smoke" shrinks the network and the run (tests pass a small latent store and autoencoder)."""
    if resolution not in LATENT_IMAGENET_SIDES:
        raise ValueError(f"resolution must be one of {sorted(LATENT_IMAGENET_SIDES)}.")
    baseline = "baseline" if paper == "lpl" else "adaln"
    names = [] if not arg else arg.split(",")
    unknown = set(names) - {baseline, "smoke"}
    if unknown:
        raise ValueError(
            f"Unknown variant(s) {sorted(unknown)} of the {paper} ImageNet-{resolution} config; "
            f"use a comma-separated subset of {[baseline, 'smoke']}."
        )
    side = LATENT_IMAGENET_SIDES[resolution]
    config = default_config("flow_matching")
    config.data = dict(
        source="array_record",
        path=ml_collections.config_dict.placeholder(str),
        num_classes=1000,
        random_flip=paper == "conditioning",
        flip_control=paper == "conditioning",
    )
    config.evaluate.data = dict(random_flip=False, flip_control=False, shuffle=False)
    config.model = model_defaults("dit")
    config.model.update(image_size=side, size="XL", patch_size=2)
    config.sharding.rules = DIT_SHARDING_RULES

    config.path.scheduler = "cond_ot"
    config.loss.prediction = "velocity"
    config.loss.time_distribution = "logit_normal"
    config.loss.time_mean = 0.0
    config.loss.time_std = 1.0
    config.loss.label_dropout = 0.1

    config.optim.name = "adamw"
    config.optim.learning_rate = 1e-4
    config.optim.weight_decay = 0.0
    config.optim.ema_decay = 0.9999
    config.optim.grad_clip_norm = 1.0
    config.train.global_batch_size = 256
    config.train.num_steps = 400_000
    config.train.log_every = 500
    config.checkpoint.every_steps = 10_000

    config.sample.method = "heun"
    config.sample.time_grid = "edm"
    config.sample.edm_steps = 25
    config.sample.guidance_scale = 0.5  # w = 0.5 (scale 1.5)
    config.sample.num_samples = 50_000
    config.sample.batch_size = 256  # divides the data-parallel size of pod meshes
    config.evaluate.fid_num_samples = 50_000
    config.evaluate.divergence = "hutchinson"

    if paper == "lpl" and baseline not in names:
        config.loss.lpl_weight = 1.0
        config.loss.lpl_t_min = 0.8
        config.loss.lpl_fraction = 0.25  # exact: ~8% of logit-normal(0, 1) times are >= 0.8
        config.loss.lpl_autoencoder = ""  # the VAE's diffusers directory, set on the command line
        config.sharding.rules = DIT_SHARDING_RULES + AUTOENCODER_SHARDING_RULES  # its decoder
    if paper == "conditioning":
        config.model.control_dim = 1
        config.loss.control_dropout = 0.1
        config.sample.control = (0.0,)  # unflipped samples
        if baseline in names:
            config.model.update(conditioning="adaln", control_schedule="constant")
        else:
            config.model.update(conditioning="attention", control_schedule="cosine")
        if resolution == 512:
            config.model.position_base_grid = LATENT_IMAGENET_SIDES[256] // 2
            config.path.resolution_shift = 2.0
            config.train.num_steps = 200_000
    if "smoke" in names:
        shrink_to_smoke(config)
        config.sample.time_grid = "uniform"
        config.sample.method = "euler"
        config.evaluate.fid_num_samples = 16
    return config


def setvae_config(data: dict[str, Any], *, batch_size: int, num_steps: int,
                  kl_weight: float, kl_warmup_steps: int) -> ml_collections.ConfigDict:
    """SetVAE (Kim et al., 2021; PAPERS.md section 11) on the point-cloud source `data`: the
    paper's network (`flowjax.models.SetVAE` defaults: hidden 64, 4 heads, latent 16, inducing
    points [1, 1, 2, 4, 8, 16, 32], a 4-component mixture in 32 dimensions) and optimiser (Adam
    1e-3, gradients clipped to norm 5); Chamfer + beta KL with beta warmed up linearly over
    `kl_warmup_steps` updates; held-out sets from the test split."""
    config = default_config("setvae")
    config.data = dict(source="point_clouds", **data)
    config.evaluate.data = dict(split="test", shuffle=False)
    config.loss.update(kl_weight=kl_weight, kl_warmup_steps=kl_warmup_steps)
    config.optim.update(name="adam", learning_rate=1e-3, grad_clip_norm=5.0, ema_decay=0.999)
    config.train.update(num_steps=num_steps, global_batch_size=batch_size, log_every=100)
    config.checkpoint.every_steps = 1_000
    config.sample.update(num_samples=batch_size, batch_size=batch_size, num_trajectories=8)
    config.evaluate.update(num_points=batch_size, batch_size=batch_size,
                           num_samples=batch_size)
    return config


def shrink_setvae_to_smoke(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A SetVAE config as a seconds-long CPU run: 64 points per set (Set-MultiMNIST keeps its
    sets of different sizes), a two-layer network of width 16, 3 updates of 8 sets; returns
    `config`, changed in place."""
    if config.data.name != "set_multimnist":
        config.data.num_points = min(config.data.num_points, 64)
    config.model.update(hidden_dim=16, num_heads=2, latent_dim=4, inducing=(1, 2), init_dim=8)
    config.loss.kl_warmup_steps = 2
    config.train.update(num_steps=3, global_batch_size=8, log_every=1)
    config.checkpoint.every_steps = 3
    config.sample.update(num_samples=8, batch_size=8, num_trajectories=4)
    config.evaluate.update(num_points=8, batch_size=8, num_samples=8, set_batch_size=4)
    return config


def compose_config(data: dict[str, Any], *, num_slots: int, num_steps: int,
                   batch_size: int) -> ml_collections.ConfigDict:
    """Learning to Compose (Jung et al., 2024; PAPERS.md section 11) on the scene source `data`:
    slot attention with 7 iterations and slots of size 192, `num_slots` slots; the one-shot
    decoder, the slot-conditioned prior (DDPM, 1,000 linear betas 0.00085 -> 0.012) and the
    composition path with weights composition 1, one-shot 1, diffusion 1, mask 0.5 and
    composition steps k in [20, 500); Adam 1e-4, gradients clipped to norm 5 (the authors'
    scripts); held-out scenes from the test split."""
    config = default_config("compose")
    config.data = dict(source="scenes", **data)
    config.evaluate.data = dict(split="test", shuffle=False)
    config.model.update(num_slots=num_slots, slot_size=192, iterations=7, mlp_hidden=192)
    config.optim.update(name="adam", learning_rate=1e-4, grad_clip_norm=5.0, ema_decay=0.999)
    config.train.update(num_steps=num_steps, global_batch_size=batch_size, log_every=100)
    config.checkpoint.every_steps = 5_000
    config.sample.update(num_samples=batch_size, batch_size=batch_size, num_trajectories=8)
    config.evaluate.update(num_points=512, batch_size=batch_size, num_samples=512)
    return config


def shrink_compose_to_smoke(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A compose config as a seconds-long CPU run: 16 x 16 synthetic scenes in pixel space, 3
    slots of size 16 with 2 iterations, a tiny encoder, decoder and prior, 3 updates of 8
    scenes; returns `config`, changed in place."""
    config.data = dict(source="scenes", name="shapes", image_size=16, max_objects=3)
    config.loss.autoencoder = ""
    config.model.update(num_slots=3, slot_size=16, iterations=2, mlp_hidden=16,
                        encoder_channels=(8, 8), encoder_downsample=1, decoder_channels=8,
                        decoder_upsamples=2, prior_hidden=16, prior_depth=1, prior_heads=2,
                        prior_patch_size=4)
    config.train.update(num_steps=3, global_batch_size=8, log_every=1)
    config.checkpoint.every_steps = 3
    config.sample.update(num_samples=8, batch_size=8, num_trajectories=4)
    config.evaluate.update(num_points=8, batch_size=8, num_samples=8)
    return config


def video_vq_config(data: dict[str, Any], *, batch_size: int, num_steps: int,
                    learning_rate: float) -> ml_collections.ConfigDict:
    """A 3D VQ video tokenizer (TATS 3D-VQGAN design without its GAN and perceptual losses;
    PAPERS.md section 11, MeBT) on the video source `data`: objective "video_vq" (L1 x 4 +
    codebook + 0.25 commitment), the "vqvae3d" network's defaults, Adam with TATS's gradient
    clipping (norm 1); held-out videos from the test split, reconstructed when sampling."""
    config = default_config("video_vq")
    config.data = dict(data)
    config.evaluate.data = dict(split="test", shuffle=False)
    config.optim.update(name="adam", learning_rate=learning_rate, grad_clip_norm=1.0)
    config.train.update(num_steps=num_steps, global_batch_size=batch_size, log_every=50)
    config.checkpoint.every_steps = 500
    config.sample.update(num_samples=batch_size, batch_size=batch_size, num_trajectories=4)
    config.evaluate.update(num_points=4 * batch_size, batch_size=batch_size,
                           num_samples=batch_size)
    return config


def shrink_video_vq_to_smoke(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A video tokenizer config as a seconds-long CPU run: 4-frame 16x16 videos, a width-8
    network with 64 codes of width 16, 3 updates of 4 videos; returns `config`, changed in
    place."""
    config.data.update(num_frames=4, canvas=16, sprite_size=8)
    config.model.update(hidden_channels=8, downsample=(2, 4, 4), codebook_size=64,
                        embedding_dim=16, norm_groups=4)
    config.train.update(num_steps=3, global_batch_size=4, log_every=1)
    config.checkpoint.every_steps = 3
    config.sample.update(num_samples=4, batch_size=4, num_trajectories=2)
    config.evaluate.update(num_points=4, batch_size=4, num_samples=4)
    return config


def mebt_config(data: dict[str, Any], *, batch_size: int, num_steps: int, learning_rate: float,
                curriculum_b: float = 0.0) -> ml_collections.ConfigDict:
    """MeBT (Yoo et al., CVPR 2023; PAPERS.md section 11) on the "video_tokens" source with
    the settings `data` (path, codebook_size): the paper's network (`flowjax.models.MeBT`
    defaults: d 1,024, 16 heads, 256 latents, 7 enc / 6 self then 6 dec / 5 lt2l blocks), the
    authors' AdamW (betas 0.9 / 0.95, weight decay 1e-4; they exempt biases, norms and
    embeddings from it, here every weight decays), the length curriculum with b =
    `curriculum_b` updates (0: none), and their evaluation's sampler (a MaskGIT draft of 32
    steps, then 2 revision rounds; `flowjax.train.objectives.mebt`). Held-out grids are read
    from the same file unless `evaluate.data.path` names another."""
    config = default_config("mebt")
    config.data = dict(source="video_tokens", **data)
    config.evaluate.data = dict(shuffle=False)
    config.loss.curriculum_b = curriculum_b
    config.optim.update(name="adamw", learning_rate=learning_rate, b1=0.9, b2=0.95,
                        weight_decay=1e-4, ema_decay=0.999)
    config.sharding.rules = MEBT_SHARDING_RULES
    config.train.update(num_steps=num_steps, global_batch_size=batch_size, log_every=100)
    config.checkpoint.every_steps = 5_000
    config.sample.update(num_samples=batch_size, batch_size=batch_size, num_trajectories=4)
    config.evaluate.update(num_points=4 * batch_size, batch_size=batch_size,
                           num_samples=batch_size)
    return config


def shrink_mebt_to_smoke(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A MeBT config as a seconds-long CPU run on its token file: width 32, 2 heads, 8
    latents, one layer of each kind (enc self enc dec lt2l dec), 3 updates of 4 grids, 4 draft
    steps and one revision round of 2 parts; returns `config`, changed in place."""
    config.model.update(hidden_dim=32, num_heads=2, num_latents=8, layers=mebt_layers(2, 2))
    if config.loss.curriculum_b:
        config.loss.curriculum_b = 1.0
    config.train.update(num_steps=3, global_batch_size=4, log_every=1)
    config.checkpoint.every_steps = 3
    config.sample.update(num_samples=4, batch_size=4, num_trajectories=2, steps=4,
                         revise_steps=2, revise_rounds=1)
    config.evaluate.update(num_points=4, batch_size=4, num_samples=4)
    return config



UNCERTAINTY_METHODS = UNCERTAINTY_MODEL_METHODS
"""The `model.method` variants of the Uncertainty Baselines configs."""


def uncertainty_config(data: dict[str, Any], method: str, *, model: str, batch_size: int,
                       num_steps: int, learning_rate: float, l2: float,
                       steps_per_epoch: int, optimizer: str = "sgd") -> ml_collections.ConfigDict:
    """A classifier of Uncertainty Baselines (Nado et al., 2021; PAPERS.md section 11) with
    `method` on the labelled source `data` (objective "classification"): MC dropout at rate 0.1
    with 10 passes, ensembles of 4, BatchEnsemble of 4, MIMO of 3 with batch repetitions 4 and
    input repetition 0.5 (the MIMO paper's CIFAR-10 settings), SNGP with its precision reset
    every `steps_per_epoch` updates (an epoch, as UB), heteroscedastic with 1,000 MC samples;
    L2 `l2` on the kernels in the loss; `optimizer` "sgd" (UB's: Nesterov momentum 0.9,
    `learning_rate` divided by 5 at 30%, 60% and 80% of the run, i.e. epochs 60 / 120 / 160 of
    200) or "adam" (a cosine decay); no parameter EMA (UB has none); held-out examples from the
    test split."""
    if method not in UNCERTAINTY_METHODS:
        raise ValueError(f"Unknown method {method!r}; expected one of {UNCERTAINTY_METHODS}.")
    config = default_config("classification")
    config.model = model_defaults(model)
    config.model.method = method
    if method == "dropout":
        config.model.dropout_rate = 0.1
    if method == "mimo":
        config.model.update(ensemble_size=3, mimo_batch_repetitions=4, mimo_input_repetition=0.5)
    config.model.gp_cov_reset_every = steps_per_epoch
    config.data = dict(data)
    config.evaluate.data = dict(split="test", shuffle=False)
    config.loss.l2 = l2
    if optimizer == "sgd":
        config.optim.update(name="sgd", momentum=0.9, nesterov=True, schedule="step",
                            decay_boundaries=(0.3, 0.6, 0.8), decay_factor=0.2)
    elif optimizer == "adam":
        config.optim.update(name="adam", schedule="cosine")
    else:
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}.")
    config.optim.update(learning_rate=learning_rate, ema_decay=0.0)
    config.train.update(num_steps=num_steps, global_batch_size=batch_size, log_every=100)
    config.checkpoint.every_steps = 10 * steps_per_epoch
    config.sample.update(num_samples=1024, batch_size=512, num_trajectories=16)
    config.evaluate.update(num_points=10_000, batch_size=512, num_samples=1024)
    return config


def shrink_uncertainty_to_smoke(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """An Uncertainty Baselines config as a seconds-long CPU run on the offline digits: the
    small network (one 4-channel convolution, width 8), 2 members / MC passes, 16 random
    features, 8 logit-noise samples, 3 updates of 8 examples, two corruptions at severities 1
    and 5; returns `config`, changed in place."""
    method, dropout = config.model.method, config.model.dropout_rate
    mimo = (config.model.mimo_input_repetition, config.model.mimo_batch_repetitions)
    config.model = model_defaults("small_classifier")
    config.model.update(method=method, dropout_rate=dropout, conv_channels=(4,), hidden_dim=8,
                        ensemble_size=2, mc_samples=2, gp_features=16, gp_projection_dim=4,
                        gp_cov_reset_every=3, het_mc_samples=8, mimo_input_repetition=mimo[0],
                        mimo_batch_repetitions=mimo[1])
    config.data = dict(source="digits", split="train")
    config.train.update(num_steps=3, global_batch_size=8, log_every=1)
    config.checkpoint.every_steps = 3
    config.sample.update(num_samples=8, batch_size=8, num_trajectories=4)
    config.evaluate.update(num_points=8, batch_size=8, num_samples=8,
                           ood_sets=("uniform_noise", "inverted"),
                           corruptions=("gaussian_noise", "contrast"), severities=(1, 5),
                           corruption_source="synthetic")
    return config
