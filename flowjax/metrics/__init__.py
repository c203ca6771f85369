"""Sample-quality and likelihood metrics."""

from flowjax.metrics.mixture import fraction_near_components
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
    "energy_distance",
    "fraction_in_support",
    "fraction_near_components",
    "negative_log_likelihood",
    "true_negative_log_likelihood",
]
