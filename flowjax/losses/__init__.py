"""Training objectives."""

from flowjax.losses.cfm import REGRESSION_TARGETS, cfm_loss, cfm_loss_per_sample
from flowjax.losses.time_sampling import TIME_DISTRIBUTIONS, sample_time

__all__ = [
    "REGRESSION_TARGETS",
    "TIME_DISTRIBUTIONS",
    "cfm_loss",
    "cfm_loss_per_sample",
    "sample_time",
]
