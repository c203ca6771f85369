"""Training objectives."""

from flowjax.losses.autoencoder import (
    RECONSTRUCTION_LOSSES,
    autoencoder_loss,
    gaussian_kl,
)
from flowjax.losses.cfm import REGRESSION_TARGETS, cfm_loss, cfm_loss_per_sample, cfm_regression
from flowjax.losses.discrete import (
    DISCRETE_LOSSES,
    cross_entropy,
    discrete_elbo,
    discrete_loss,
    elbo_bits_per_token,
    generalized_kl,
)
from flowjax.losses.distillation import sdtt_loss
from flowjax.losses.flm import flm_loss, flow_map_loss, map_times, one_call_loss
from flowjax.losses.generator_matching import (
    flow_bregman,
    generator_matching_loss,
    jump_bregman,
)
from flowjax.losses.lpl import clean_estimate, feature_loss, lpl_loss, outlier_mask
from flowjax.losses.riemannian import riemannian_cfm_loss
from flowjax.losses.simfree_node import (
    backprop_node_loss,
    check_pairs,
    simfree_node_loss,
    simfree_node_loss_terms,
    simfree_node_times,
    target_vectors,
)
from flowjax.losses.time_sampling import TIME_DISTRIBUTIONS, sample_time

__all__ = [
    "DISCRETE_LOSSES",
    "RECONSTRUCTION_LOSSES",
    "REGRESSION_TARGETS",
    "autoencoder_loss",
    "gaussian_kl",
    "TIME_DISTRIBUTIONS",
    "cfm_loss",
    "cfm_loss_per_sample",
    "cfm_regression",
    "clean_estimate",
    "cross_entropy",
    "discrete_elbo",
    "discrete_loss",
    "elbo_bits_per_token",
    "feature_loss",
    "flow_bregman",
    "generalized_kl",
    "lpl_loss",
    "outlier_mask",
    "generator_matching_loss",
    "jump_bregman",
    "riemannian_cfm_loss",
    "sdtt_loss",
    "flm_loss",
    "flow_map_loss",
    "map_times",
    "one_call_loss",
    "backprop_node_loss",
    "check_pairs",
    "simfree_node_loss",
    "simfree_node_loss_terms",
    "simfree_node_times",
    "target_vectors",
    "sample_time",
]
