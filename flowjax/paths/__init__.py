"""Probability paths: pure functions of (x_0, x_1, t) and their schedulers (affine, geodesic,
discrete mixture and metric-induced)."""

from flowjax.paths import analytic, jump
from flowjax.paths.analytic import GaussianMixture
from flowjax.paths.affine import AffineProbPath, CondOTProbPath, PathSample, expand_time
from flowjax.paths.discrete import (
    CategoricalSource,
    DiscretePath,
    DiscretePathSample,
    DiscreteSource,
    MaskSource,
    MixtureDiscreteProbPath,
    UniformSource,
)
from flowjax.paths.geodesic import GeodesicProbPath
from flowjax.paths.jump import MixtureJumpGenerator
from flowjax.paths.one_hot import (
    ArgmaxTime,
    MonotoneTable,
    OneHotGaussianPath,
    argmax_probability,
    one_hot_velocity,
)
from flowjax.paths.kinetic_optimal import (
    KineticOptimalScheduler,
    continuity_residual,
    divergence_free_velocity,
    kinetic_optimal_rates,
    kinetic_optimal_velocity,
)
from flowjax.paths.metric_induced import (
    EmbeddingDistance,
    MetricInducedProbPath,
    PowerBeta,
    TokenDistance,
)
from flowjax.paths.schedule_transform import ScheduleTransformedModel
from flowjax.paths.schedulers import (
    CondOTScheduler,
    ConvexScheduler,
    CosineScheduler,
    LinearVPScheduler,
    MASKING_SCHEDULES,
    MaskedDiffusionScheduler,
    PolynomialScheduler,
    Scheduler,
    SchedulerOutput,
    ShiftedScheduler,
    VPScheduler,
    resolution_shift,
)

__all__ = [
    "AffineProbPath",
    "ArgmaxTime",
    "CategoricalSource",
    "DiscretePath",
    "DiscretePathSample",
    "DiscreteSource",
    "EmbeddingDistance",
    "KineticOptimalScheduler",
    "MASKING_SCHEDULES",
    "MaskedDiffusionScheduler",
    "MaskSource",
    "MetricInducedProbPath",
    "MixtureJumpGenerator",
    "MonotoneTable",
    "OneHotGaussianPath",
    "MixtureDiscreteProbPath",
    "PowerBeta",
    "TokenDistance",
    "UniformSource",
    "continuity_residual",
    "divergence_free_velocity",
    "kinetic_optimal_rates",
    "kinetic_optimal_velocity",
    "CondOTProbPath",
    "CondOTScheduler",
    "ConvexScheduler",
    "CosineScheduler",
    "GeodesicProbPath",
    "LinearVPScheduler",
    "PathSample",
    "PolynomialScheduler",
    "GaussianMixture",
    "ScheduleTransformedModel",
    "Scheduler",
    "SchedulerOutput",
    "ShiftedScheduler",
    "VPScheduler",
    "resolution_shift",
    "analytic",
    "argmax_probability",
    "jump",
    "one_hot_velocity",
    "expand_time",
]
