"""Flow Matching with General Discrete Paths: A Kinetic-Optimal Perspective (Shaul et al., 2024):
kinetic-optimal and metric-induced paths on the 2D discrete checkerboard.

The paper's experiments are text, crystals and ImageNet in VQ tokens (its ImageNet results use
metric-induced paths in code space); this is the same construction on the Guide's 2D discrete
checkerboard (`configs/fm_guide/discrete_checkerboard.py`, whose model, data, optimiser and
sampler settings it keeps), where the three paths can be compared by their ELBO against the true
entropy, 6.5 bits per token:

  mask     the kinetic-optimal mixture path of a mask source, kappa_t = sin^2(pi t / 2).
  uniform  the kinetic-optimal mixture path of a uniform source,
           kappa_t = 1 - sin^2((1 - t) W) / sin^2 W, W = arccos(1 / sqrt(128)).
  metric   the metric-induced path p_t(x | x_1) = softmax(-beta_t d(x, x_1)) per coordinate,
           d(x, y) = |x - y| / 16 (the distance of the bin centres in data units),
           beta_t = 3 (t / (1 - t))^0.9, with its closed-form kinetic-optimal velocity: mass moves
           only toward bins closer to the data, so samples grow out of blurred squares.

Loss: the generalized KL (the ELBO) for the mixture paths. The metric path's generalized KL costs
O(V^2) per token (the marginal velocity sums over all x_1), so it is trained with the
cross-entropy (O(V)) and evaluated with the same ELBO as the others.

Expected result: all three sample the board; the ELBOs lie above 6.5 bits per token (measured
numbers in experiments/kinetic_optimal/README.md).

Hardware: a CPU is fine (as the Guide's example).

Variants (`--config=configs/kinetic_optimal/checkerboard.py:<path>[,<size>]`):
  path    "mask" (default), "uniform" or "metric".
  size    (none) the paper-size run; "demo" (a few minutes on 2 CPU cores) or "smoke" (tests).
"""

from __future__ import annotations

import importlib.util
import pathlib

import ml_collections

PATHS = ("mask", "uniform", "metric")


def _guide_config():
    """configs/fm_guide/discrete_checkerboard.py, the setting this config starts from."""
    file = pathlib.Path(__file__).resolve().parents[1] / "fm_guide" / "discrete_checkerboard.py"
    spec = importlib.util.spec_from_file_location("fm_guide_discrete_checkerboard", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    guide = _guide_config()
    path, size = guide.parse_variant(arg, PATHS)
    config = guide.get_config("uniform" if path == "uniform" else "mask")
    if path == "metric":
        config.path.kind = "metric"
        config.path.source = "uniform"
        config.path.distance_scale = 1.0 / 16.0
        config.path.distance_power = 1.0
        config.path.beta_c = 3.0
        config.path.beta_a = 0.9
        config.loss.name = "cross_entropy"
        config.evaluate.batch_size = 1024  # the ELBO holds (batch, 2, V, V) arrays
    else:
        config.path.scheduler = "kinetic_optimal"
    guide.apply_size(config, size)
    return config
