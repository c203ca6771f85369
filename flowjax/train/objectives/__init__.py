"""Training objectives: what the trainer learns, how it samples and how it evaluates.

`base` holds the contract (`Objective`, `DataSpec`) and the registry `OBJECTIVES`; each other
module is one objective, with its paper and equations in its docstring:

  flow_matching            continuous flow matching on affine paths (Lipman et al., 2024).
  discrete_flow_matching   discrete flow matching: mixture and metric-induced paths (Guide
                           section 7; Shaul et al., 2024).
  riemannian_flow_matching flow matching on manifolds (Chen & Lipman, 2024).
  generator_matching       flows, jumps and their superposition (Holderrieth et al., 2024).
  simfree_node             neural ODEs on paired data (Kim et al., 2024).
  masked_diffusion         masked diffusion language models (MDLM, Sahoo et al., 2024; MD4,
                           Shi et al., 2024).
  imdm                     the Infinite Mask Diffusion Model: masked diffusion whose masks carry
                           continuous labels eps; with SDTT / ReDi distillation (also for
                           masked_diffusion).
  flm                      flow language models over one-hot tokens (FLM) and their flow maps
                           (FMLM; Lee et al., 2026).
  setvae                   hierarchical VAEs over sets of points with attentive bottlenecks
                           (SetVAE, Kim et al., 2021).
  mebt                     masked token modelling of video token grids with the memory-efficient
                           bidirectional transformer (MeBT, Yoo et al., 2023).
  compose                  object-centric learning by slot attention with a composition
                           objective (Learning to Compose, Jung et al., 2024).
  video_vq                 3D VQ video tokenizers (TATS 3D-VQGAN without its GAN
                           and perceptual losses; Ge et al., 2022), for MeBT.
  classification           classifiers with predictive uncertainty: deterministic, MC dropout,
                           deep ensembles, BatchEnsemble, MIMO, SNGP, heteroscedastic
                           (Uncertainty Baselines, Nado et al., 2021).
  autoregressive           the left-to-right language model baseline (teacher forcing, KV-cache
                           sampling).

Importing this package imports every objective module, which registers its class.
"""

from flowjax.train.objectives.base import (
    OBJECTIVES,
    Batch,
    BatchFn,
    DataSpec,
    Objective,
    build_objective,
    conditioning,
    drop_labels,
    dropout_seeds,
    objective_class,
)
from flowjax.train.objectives.autoencoder import AutoencoderObjective
from flowjax.train.objectives.autoregressive import Autoregressive
from flowjax.train.objectives.classification import ClassificationObjective
from flowjax.train.objectives.compose import ComposeObjective
from flowjax.train.objectives.discrete import DiscreteFlowMatching
from flowjax.train.objectives.flm import FlowLanguageModel
from flowjax.train.objectives.flow_matching import FlowMatching
from flowjax.train.objectives.generator_matching import GeneratorMatching
from flowjax.train.objectives.imdm import InfiniteMaskDiffusion
from flowjax.train.objectives.masked_diffusion import MaskedDiffusion
from flowjax.train.objectives.mebt import MeBTObjective
from flowjax.train.objectives.riemannian import RiemannianFlowMatching
from flowjax.train.objectives.setvae import SetVAEObjective
from flowjax.train.objectives.simfree_node import SimFreeNODEObjective
from flowjax.train.objectives.video_vq import VideoVQObjective

__all__ = [
    "OBJECTIVES",
    "AutoencoderObjective",
    "Autoregressive",
    "Batch",
    "BatchFn",
    "ClassificationObjective",
    "ComposeObjective",
    "DataSpec",
    "DiscreteFlowMatching",
    "FlowLanguageModel",
    "FlowMatching",
    "GeneratorMatching",
    "InfiniteMaskDiffusion",
    "MaskedDiffusion",
    "MeBTObjective",
    "Objective",
    "RiemannianFlowMatching",
    "SetVAEObjective",
    "SimFreeNODEObjective",
    "VideoVQObjective",
    "build_objective",
    "conditioning",
    "drop_labels",
    "dropout_seeds",
    "objective_class",
]
