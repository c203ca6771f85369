"""Names in a config mapped to the library's objects: models, schedulers and paths.

A config names a model (`config.model.name`) and describes its probability path
(`config.path`); this module turns those names and settings into a Flax NNX module and into
the path an objective trains on, and is the one place where paths are built from a config:

  `build_path`           the affine path x_t = alpha_t x_1 + sigma_t x_0 of a scheduler (Flow
                         Matching Guide, Lipman et al., 2024, section 4.8);
  `build_discrete_path`  a mixture path (mask or uniform source; polynomial or kinetic-optimal
                         scheduler) or a metric-induced path on tokens (Guide section 7; Shaul
                         et al., 2024);
  `build_masking_path`   the mask path of masked diffusion language models with a linear or
                         cosine unmasking schedule (MDLM, Sahoo et al., 2024; MD4, Shi et al.,
                         2024);
  `build_geodesic_path`  the geodesic path on a manifold (`resolve_manifold`: the configured
                         one, or the one a toy dataset lives on; Guide section 5).

A new network becomes trainable from a config by adding one entry to `MODELS`, with the defaults
of its settings and the kind of data it reads (continuous points or discrete tokens); the
objectives of `flowjax.train.objectives` check that the model fits the data.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from flowjax import data, manifolds, paths
from flowjax.models import (
    MEBT_LAYERS,
    MLP,
    DiscreteMLP,
    DiT,
    FlowLanguageTransformer,
    GeneratorMLP,
    InfiniteMaskTransformer,
    ManifoldMLP,
    MeBT,
    SetVAE,
    SimFreeNODE,
    TextTransformer,
    UNet,
)
from flowjax.models.autoencoder import autoencoder_for_images
from flowjax.models.vqvae3d import VQVAE3D
from flowjax.models.slots import SlotComposer
from flowjax.models.uncertainty import small_classifier, wide_resnet_classifier

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """A model class, the defaults of its config settings (beyond `name` and `dtype`) and the
    kind of data it reads: "continuous" (float points, outputs of the same shape) or "discrete"
    (integer tokens, logits over the vocabulary; built with a `vocab_size`).

    The class is called as `cls(event_shape, num_classes=..., dtype=..., rngs=..., **settings)`
    plus the objective's model arguments (`Objective.model_kwargs`).
    """

    cls: Callable[..., nnx.Module]
    defaults: dict
    data_kind: str = "continuous"


_TEXT_BACKBONE = dict(
    size="tiny",
    hidden_dim=0,  # 0: the size's width, depth and heads
    depth=0,
    num_heads=0,
    cond_dim=128,
    mlp_ratio=4.0,
    dropout=0.0,
    remat="none",  # "full" or "dots": recompute block activations (jax.checkpoint)
)
"""The settings of the text transformer's backbone, shared by its variants."""

MODELS: dict[str, ModelEntry] = {
    # Neural ODE on paired data (objective simfree_node): encoders f, g, decoder h and a
    # velocity MLP on the embedding; the objective adds the target size and the embedding kind.
    "simfree_node": ModelEntry(
        SimFreeNODE,
        dict(
            latent_dim=64,
            encoder="mlp",
            encoder_hidden_dim=256,
            encoder_layers=2,
            cnn_channels=(32, 64),
            decoder_hidden_dim=256,
            decoder_layers=2,
            hidden_dim=256,
            num_layers=3,
            activation="relu",
        ),
    ),
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
    "discrete_mlp": ModelEntry(
        DiscreteMLP,
        dict(
            hidden_dim=128,
            num_layers=4,
            token_embed_dim=128,
            activation="swish",
            time_embedding="raw",
            time_embed_dim=64,
            class_embed_dim=64,
        ),
        data_kind="discrete",
    ),
    # Takes the objective's manifold (riemannian_flow_matching): tangent outputs, Fourier
    # features of torus angles.
    "manifold_mlp": ModelEntry(
        ManifoldMLP,
        dict(
            num_frequencies=1,
            hidden_dim=256,
            num_layers=4,
            activation="swish",
            time_embedding="raw",
            time_embed_dim=64,
            class_embed_dim=64,
        ),
    ),
    # SetVAE (objective setvae): sets of points (N, D) with masks; the paper's sizes.
    "setvae": ModelEntry(
        SetVAE,
        dict(
            hidden_dim=64,
            num_heads=4,
            latent_dim=16,
            inducing=(1, 1, 2, 4, 8, 16, 32),  # inducing points of the top-down layers
            init_dim=32,
            num_mixtures=4,
        ),
    ),
    # MeBT (objective mebt): video token grids (t, h, w), the paper's network by default.
    "mebt": ModelEntry(
        MeBT,
        dict(
            hidden_dim=1024,
            num_heads=16,
            num_latents=256,
            layers=MEBT_LAYERS,  # kinds "enc", "self", "dec", "lt2l" in order
            mlp_ratio=4.0,
            positions="learned",  # or "sinusoidal": factorised (t, h, w) embeddings
            remat="none",
        ),
        data_kind="discrete",
    ),
    # Learning to Compose (objective compose): slot attention, one-shot decoder and the
    # slot-conditioned DiT prior (flowjax.models.slots); the paper's slot sizes.
    "slot_composer": ModelEntry(
        SlotComposer,
        dict(
            num_slots=7,
            slot_size=192,
            iterations=7,
            mlp_hidden=192,
            encoder_channels=(64, 64, 64, 64),
            encoder_downsample=1,
            decoder_channels=64,
            decoder_upsamples=3,
            prior_hidden=192,
            prior_depth=4,
            prior_heads=4,
            prior_patch_size=2,
        ),
    ),
    # 3D VQ video tokenizer (objective video_vq; TATS 3D-VQGAN design): videos (T, H, W, C);
    # a small CPU size by default (TATS at 128 px: 32, (4, 8, 8), 16384, 256, groups 32).
    "vqvae3d": ModelEntry(
        VQVAE3D,
        dict(
            hidden_channels=16,
            downsample=(2, 4, 4),  # (time, height, width), powers of two
            codebook_size=512,
            embedding_dim=64,
            norm="group",  # "batch": frozen statistics of converted TATS checkpoints
            norm_groups=8,
            commitment_weight=0.25,
            normalize_codes=False,  # True: cosine lookup of l2-normalised codes (ViT-VQGAN)
            fsq_levels=(),  # e.g. (8, 6, 5): finite scalar quantisation, no learned codebook
        ),
    ),
    # Image networks (Flow Matching Guide's image recipes): images (H, W, C); `image_size` > 0
    # is checked against the data's images before anything is compiled.
    "unet": ModelEntry(
        UNet,
        dict(
            image_size=0,
            channels=128,
            channel_mults=(2, 2, 2),
            num_res_blocks=4,
            attention_factors=(2,),
            head_dim=64,
            dropout=0.0,
            norm_groups=32,
            remat="none",  # "full" or "dots": recompute block activations (jax.checkpoint)
        ),
    ),
    "dit": ModelEntry(
        DiT,
        dict(
            image_size=0,
            size="B",
            patch_size=2,
            hidden_dim=0,  # 0: the size's width, depth and heads
            depth=0,
            num_heads=0,
            mlp_ratio=4.0,
            # Berrada et al., 2024 (flowjax.models.dit): the label through adaLN or attention,
            # control metadata (the data's "control") with a cosine or constant strength, text
            # embeddings (the data's "context", width context_dim) as more attention tokens, and
            # positions interpolated from a model trained on position_base_grid tokens a side.
            conditioning="adaln",
            control_dim=0,
            context_dim=0,
            control_schedule="cosine",
            position_base_grid=0,
            remat="none",  # "full" or "dots": recompute block activations (jax.checkpoint)
        ),
    ),
    # The text transformer of discrete diffusion / flow language models ("DDiT"): token
    # sequences (L,); `causal=True` for the autoregressive baseline.
    "text_transformer": ModelEntry(
        TextTransformer, dict(_TEXT_BACKBONE, time_conditioning=True, causal=False), "discrete"
    ),
    # The infinite-mask text transformer of IMDM: masked positions read E[MASK] + MLP(eps), eps
    # of D_eps = noise_dim features of the kind `mask_noise` (flowjax.models.infinite_mask).
    "imdm_transformer": ModelEntry(
        InfiniteMaskTransformer,
        dict(
            _TEXT_BACKBONE,
            time_conditioning=False,
            noise_dim=768,
            mask_noise="uniform",
            noise_scale=1.0,
            num_masks=0,
        ),
        "discrete",
    ),
    # The text transformer of flow language models (FLM) and their flow maps (FMLM): reads the
    # (B, L, V) one-hot Gaussian state; `map_time` adds the end-time embedding of a flow map,
    # `learned_weighting` the loss weight w(t) (flowjax.models.flow_language).
    "flm_transformer": ModelEntry(
        FlowLanguageTransformer,
        dict(
            _TEXT_BACKBONE,
            time_conditioning=True,
            map_time=False,
            learned_weighting=False,
        ),
        "discrete",
    ),
    # The KL autoencoder of latent diffusion (objective "autoencoder"; diffusers' AutoencoderKL
    # design, SD's VAE by default): images (H, W, C) with sides divisible by 2^(levels - 1).
    "autoencoder_kl": ModelEntry(
        autoencoder_for_images,
        dict(
            block_out_channels=(128, 256, 512, 512),
            layers_per_block=2,
            latent_channels=4,
            norm_num_groups=32,
            scaling_factor=0.18215,
        ),
    ),
    # Uncertainty Baselines classifiers (objective classification; flowjax.models.uncertainty):
    # the method and its settings, on a Wide ResNet (WRN-28-10 by default) or the small digits
    # network. SNGP and heteroscedastic defaults are Uncertainty Baselines' CIFAR ones except
    # mean_field_factor (pi / 8, the paper's; UB tunes 25).
    **{name: ModelEntry(constructor, dict(
        backbone,
        method="deterministic",
        ensemble_size=4,
        dropout_rate=0.0,
        mc_samples=10,
        output_classes=0,  # 0: the data's number of classes (else checked against it)
        sn_bound=6.0,
        sn_iterations=1,
        gp_features=1024,
        gp_projection_dim=128,
        gp_length_scale=2.0,
        gp_ridge=1.0,
        gp_cov_momentum=-1.0,  # < 0: exact precision, reset every gp_cov_reset_every calls
        gp_cov_reset_every=0,
        gp_normalize_input=True,
        mean_field_factor=0.39269908169872414,  # pi / 8
        het_factors=3,
        het_temperature=1.5,
        het_mc_samples=1000,
        mimo_input_repetition=0.0,
        mimo_batch_repetitions=1,
    )) for name, constructor, backbone in (
        ("wide_resnet", wide_resnet_classifier, dict(depth=28, width=10)),
        ("small_classifier", small_classifier,
         dict(conv_channels=(16, 32), hidden_dim=64, num_hidden=1)),
    )},
    # Generator matching: velocity and binned jump heads.
    "generator_mlp": ModelEntry(
        GeneratorMLP,
        dict(
            hidden_dim=256,
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
    **model_kwargs,
) -> nnx.Module:
    """The network named by `model_config.name` for examples of shape `event_shape`.

    Parameters are float32; `model_config.dtype` ("float32" or "bfloat16") is the compute dtype.
    `model_kwargs` are the objective's extra arguments (e.g. `vocab_size` for discrete models).
    """
    settings = dict(model_config)
    entry = MODELS[settings.pop("name")]
    dtype = COMPUTE_DTYPES[settings.pop("dtype")]
    return entry.cls(
        tuple(event_shape),
        num_classes=num_classes,
        dtype=dtype,
        rngs=rngs,
        **settings,
        **model_kwargs,
    )


def build_path(path_config: ml_collections.ConfigDict) -> paths.AffineProbPath:
    """The affine probability path x_t = alpha_t x_1 + sigma_t x_0 of the configured scheduler,
    with its signal-to-noise ratio divided by `path.resolution_shift` when that is set and not 1
    (`paths.ShiftedScheduler`; convex schedulers only)."""
    scheduler = SCHEDULERS[path_config.scheduler](path_config)
    shift = path_config.get("resolution_shift", 1.0)
    if shift != 1.0:
        scheduler = paths.ShiftedScheduler(scheduler, shift)
    return paths.AffineProbPath(scheduler)


def build_discrete_path(
    path_config: ml_collections.ConfigDict, data_vocab: int
) -> paths.DiscretePath:
    """The discrete path of `path_config` over a data vocabulary of `data_vocab` tokens (the
    mask source adds one token, id `data_vocab`)."""
    c = path_config
    if c.kind == "metric":
        if c.source != "uniform":
            raise ValueError(
                "The metric-induced path starts from the uniform distribution; set "
                "path.source='uniform' with path.kind='metric'."
            )
        if c.embeddings:
            distance = paths.EmbeddingDistance(
                load_embeddings(c.embeddings, data_vocab),
                scale=c.distance_scale,
                power=c.distance_power,
            )
        else:
            distance = paths.TokenDistance(scale=c.distance_scale, power=c.distance_power)
        return paths.MetricInducedProbPath(
            data_vocab, distance, paths.PowerBeta(c=c.beta_c, a=c.beta_a)
        )
    source = paths.MaskSource(data_vocab + 1) if c.source == "mask" else paths.UniformSource(data_vocab)
    if c.scheduler == "kinetic_optimal":
        scheduler = paths.KineticOptimalScheduler.for_source(source)
    else:
        scheduler = paths.PolynomialScheduler(n=c.polynomial_n)
    return paths.MixtureDiscreteProbPath(scheduler, source)


def load_embeddings(path: str, data_vocab: int) -> np.ndarray:
    """Token embeddings (V, d) from a .npy file, one row per token of the data vocabulary."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"path.embeddings={path!r} does not exist: give a .npy file of token embeddings "
            f"(V, d), e.g. np.save(path, gpt2.embedding) for a tokenizer of V tokens."
        )
    embeddings = np.load(path)
    if embeddings.ndim != 2 or embeddings.shape[0] != data_vocab:
        raise ValueError(
            f"path.embeddings={path!r} holds an array of shape {embeddings.shape}; expected "
            f"({data_vocab}, d), one row per token of the data."
        )
    return embeddings


def build_masking_path(
    path_config: ml_collections.ConfigDict, data_vocab: int
) -> paths.MixtureDiscreteProbPath:
    """The mask path p_t(x^i | x_1) = (1 - kappa_t) delta_mask + kappa_t delta_{x_1^i} with kappa_t
    of `paths.MaskedDiffusionScheduler(path.schedule, path.eps_start, path.eps_end)`; the mask
    is token `data_vocab`."""
    c = path_config
    scheduler = paths.MaskedDiffusionScheduler(c.schedule, c.eps_start, c.eps_end)
    return paths.MixtureDiscreteProbPath(scheduler, paths.MaskSource(data_vocab + 1))


def resolve_manifold(name: str, toy: str | None) -> manifolds.Manifold:
    """The manifold named by path.manifold ("S2", "T2", "S2xT1xR3", ...), or, when `name` is "",
    the one the toy dataset `toy` lives on."""
    toy_manifold = data.toy_manifold(toy) if toy is not None else None
    if not name:
        if toy_manifold is None:
            raise ValueError(
                "Set path.manifold (e.g. 'S2', 'T2' or 'S2xT1xR3') to say where the data live; "
                "only the manifold toys (torus_gaussians, sphere_vmf) imply it."
            )
        return toy_manifold
    manifold = manifolds.parse_manifold(name)
    if toy_manifold is not None and manifold != toy_manifold:
        raise ValueError(
            f"path.manifold={name!r} is {manifold}, but the toy {toy!r} lives on "
            f"{toy_manifold}; set path.manifold='' to use the toy's."
        )
    return manifold


def build_geodesic_path(
    path_config: ml_collections.ConfigDict, manifold: manifolds.Manifold
) -> paths.GeodesicProbPath:
    """The geodesic path on `manifold` with kappa_t of path.scheduler ("cond_ot": t,
    "polynomial": t^polynomial_n)."""
    return paths.GeodesicProbPath(SCHEDULERS[path_config.scheduler](path_config), manifold)

