"""Sample-quality and likelihood metrics: images, toys, language models, point clouds and
object segmentations."""

from flowjax.metrics.digits_classifier import (
    DigitsClassifier,
    digits_classes,
    digits_features,
    digits_frechet_distance,
    load_digits_classifier,
)
from flowjax.metrics.factorization import (
    conditional_total_correlation,
    expected_total_correlation,
    factorization_bound,
    masked_sampler_validity,
    independent_validity,
    repeated_token_total_correlation,
    sequence_validity,
    total_correlation,
)
from flowjax.metrics.frechet import (
    FeatureStatistics,
    feature_statistics,
    frechet_distance,
    frechet_distance_to_reference,
    load_reference_statistics,
    merge_statistics,
)
from flowjax.metrics.inception import (
    InceptionV3,
    inception_feature_fn,
    inception_metrics,
    inception_statistics,
    load_inception,
)
from flowjax.metrics.inception_score import (
    ScoreStatistics,
    inception_score,
    inception_score_from_probs,
)
from flowjax.metrics.mixture import fraction_near_components
from flowjax.metrics.pointcloud import (
    DISTANCES,
    chamfer_distance,
    coverage,
    earth_movers_distance,
    metrics_from_distances,
    minimum_matching_distance,
    one_nn_accuracy,
    pairwise_distances,
    point_cloud_metrics,
)
from flowjax.metrics.segmentation import (
    adjusted_rand_index,
    fg_adjusted_rand_index,
    matched_ious,
    mean_iou,
    segment_iou_matrix,
)
from flowjax.metrics.text import (
    bits_per_byte,
    generative_perplexity,
    perplexity_metrics,
    unigram_entropy,
)
from flowjax.metrics.toy import (
    BOUNDED_SUPPORT,
    CLOSED_FORM_DENSITY,
    energy_distance,
    fraction_in_support,
    negative_log_likelihood,
    true_negative_log_likelihood,
)

__all__ = [
    "BOUNDED_SUPPORT",
    "CLOSED_FORM_DENSITY",
    "DigitsClassifier",
    "bits_per_byte",
    "conditional_total_correlation",
    "expected_total_correlation",
    "factorization_bound",
    "masked_sampler_validity",
    "independent_validity",
    "repeated_token_total_correlation",
    "sequence_validity",
    "total_correlation",
    "generative_perplexity",
    "perplexity_metrics",
    "unigram_entropy",
    "FeatureStatistics",
    "InceptionV3",
    "ScoreStatistics",
    "digits_classes",
    "digits_features",
    "digits_frechet_distance",
    "energy_distance",
    "feature_statistics",
    "frechet_distance",
    "frechet_distance_to_reference",
    "inception_feature_fn",
    "inception_metrics",
    "inception_score",
    "inception_score_from_probs",
    "inception_statistics",
    "load_digits_classifier",
    "load_inception",
    "load_reference_statistics",
    "merge_statistics",
    "fraction_in_support",
    "fraction_near_components",
    "negative_log_likelihood",
    "true_negative_log_likelihood",
    "DISTANCES",
    "chamfer_distance",
    "coverage",
    "earth_movers_distance",
    "metrics_from_distances",
    "minimum_matching_distance",
    "one_nn_accuracy",
    "pairwise_distances",
    "point_cloud_metrics",
    "adjusted_rand_index",
    "fg_adjusted_rand_index",
    "matched_ious",
    "mean_iou",
    "segment_iou_matrix",
]
