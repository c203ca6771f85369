"""Local explanations of any callable model: attribution methods, the metrics of their
properties (faithfulness, robustness, complexity, homogeneity; Chen et al., 2022), LIME
surrogates and the regions where a surrogate is guaranteed faithful (Havasi et al., 2024)."""

from flowjax.explain.explainers import (
    Explainer,
    gradient_x_input,
    integrated_gradients,
    lime_explainer,
    model_output,
    smoothgrad,
    vanilla_gradient,
    weights_explainer,
)
from flowjax.explain.guarantee import (
    SERIES_CONSTANT,
    GuaranteeRegion,
    guarantee_region,
    largest_empty_box,
    surrogate_agreement,
)
from flowjax.explain.lime import LinearSurrogate, lime_explanation, lime_surrogate
from flowjax.explain.properties import (
    FeatureCurve,
    attribution_entropy,
    deletion_curve,
    gini_sparsity,
    group_gap,
    infidelity,
    insertion_curve,
    local_lipschitz,
    max_sensitivity,
)
