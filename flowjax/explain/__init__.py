"""Local explanations of any callable model: attribution methods and the metrics of their
properties (faithfulness, robustness, complexity, homogeneity; Chen et al., 2022)."""

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
