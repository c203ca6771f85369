"""Flax NNX networks for velocity, posterior and generator fields, text transformers, GPT-2 and
the KL autoencoder of latent diffusion, and set networks (Set Transformer blocks, SetVAE)."""

from flowjax.models.autoencoder import AutoencoderConfig, AutoencoderKL
from flowjax.models.conditioning import ControlEmbedding, noisy_replicate_padding
from flowjax.models.convert_autoencoder import load_autoencoder_kl
from flowjax.models.convert_gpt2 import load_gpt2
from flowjax.models.convert_i3d import load_i3d
from flowjax.models.discrete_mlp import DiscreteMLP
from flowjax.models.distillation import Frozen, TeacherStudent
from flowjax.models.dit import DIT_SIZES, DiT
from flowjax.models.embeddings import batch_time, control_strength, sinusoidal_embedding
from flowjax.models.flow_language import FlowLanguageTransformer, LossWeighting
from flowjax.models.generator_mlp import BinnedJumpHead, GeneratorMLP, GeneratorOutput
from flowjax.models.gpt2 import GPT2, GPT2Config
from flowjax.models.i3d import InceptionI3d
from flowjax.models.infinite_mask import (
    MASK_NOISE_KINDS,
    InfiniteMaskEmbedding,
    InfiniteMaskTransformer,
)
from flowjax.models.manifold_mlp import ManifoldMLP, manifold_features
from flowjax.models.mebt import MEBT_LAYERS, MEBT_SHARDING_RULES, MeBT, mebt_layers
from flowjax.models.mlp import MLP
from flowjax.models.set_attention import InducedSetAttentionBlock, MultiheadAttentionBlock
from flowjax.models.setvae import SetVAE
from flowjax.models.simfree_node import SimFreeNODE
from flowjax.models.slots import SlotAttention, SlotComposer
from flowjax.models.transformer import (
    TEXT_TRANSFORMER_SHARDING_RULES,
    TEXT_TRANSFORMER_SIZES,
    TextTransformer,
)
from flowjax.models.uncertainty import (
    UncertaintyClassifier,
    small_classifier,
    wide_resnet_classifier,
)
from flowjax.models.unet import UNet
from flowjax.models.vqvae3d import VQVAE3D, tokenize_videos
from flowjax.models.convert_tats import load_tats_vqgan

__all__ = [
    "AutoencoderConfig",
    "AutoencoderKL",
    "DIT_SIZES",
    "DiT",
    "BinnedJumpHead",
    "ControlEmbedding",
    "DiscreteMLP",
    "GPT2",
    "GPT2Config",
    "GeneratorMLP",
    "FlowLanguageTransformer",
    "Frozen",
    "GeneratorOutput",
    "InceptionI3d",
    "InducedSetAttentionBlock",
    "InfiniteMaskEmbedding",
    "InfiniteMaskTransformer",
    "LossWeighting",
    "MASK_NOISE_KINDS",
    "MEBT_LAYERS",
    "MEBT_SHARDING_RULES",
    "MLP",
    "ManifoldMLP",
    "MeBT",
    "MultiheadAttentionBlock",
    "SetVAE",
    "SlotAttention",
    "SlotComposer",
    "SimFreeNODE",
    "TEXT_TRANSFORMER_SHARDING_RULES",
    "TEXT_TRANSFORMER_SIZES",
    "TeacherStudent",
    "TextTransformer",
    "UNet",
    "UncertaintyClassifier",
    "small_classifier",
    "wide_resnet_classifier",
    "VQVAE3D",
    "batch_time",
    "control_strength",
    "load_autoencoder_kl",
    "load_gpt2",
    "load_tats_vqgan",
    "load_i3d",
    "manifold_features",
    "mebt_layers",
    "noisy_replicate_padding",
    "sinusoidal_embedding",
    "tokenize_videos",
]
