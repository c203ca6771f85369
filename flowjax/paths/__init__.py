"""Probability paths: pure functions of (x_0, x_1, t) and their schedulers."""

from flowjax.paths import analytic
from flowjax.paths.analytic import GaussianMixture
from flowjax.paths.affine import AffineProbPath, CondOTProbPath, PathSample, expand_time
from flowjax.paths.schedule_transform import ScheduleTransformedModel
from flowjax.paths.schedulers import (
    CondOTScheduler,
    ConvexScheduler,
    CosineScheduler,
    LinearVPScheduler,
    PolynomialScheduler,
    Scheduler,
    SchedulerOutput,
    VPScheduler,
)

__all__ = [
    "AffineProbPath",
    "CondOTProbPath",
    "CondOTScheduler",
    "ConvexScheduler",
    "CosineScheduler",
    "LinearVPScheduler",
    "PathSample",
    "PolynomialScheduler",
    "GaussianMixture",
    "ScheduleTransformedModel",
    "Scheduler",
    "SchedulerOutput",
    "VPScheduler",
    "analytic",
    "expand_time",
]
