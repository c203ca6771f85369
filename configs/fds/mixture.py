"""Flow Divergence Sampler (Cha et al., 2026, arXiv:2604.04646) on a Gaussian mixture.

Target: 8 isotropic Gaussians of standard deviation 0.25 and weight 1/8, centred on a circle of
radius 4, reached from x_0 ~ N(0, I) along the CondOT path. The velocity is the exact marginal
velocity (`flowjax.paths.analytic.marginal_velocity`): there is no training error, so any change
in sample quality is the sampler's.

Protocol (`experiments/fds/run.py`): for Euler and Heun with 5, 10 and 20 uniform steps, the
same x_0 are sampled plainly and with FDS. Reported: the fraction of samples within 3 standard
deviations of a component (`flowjax.metrics.fraction_near_components`; a component's own samples:
98.9%), the energy distance to data, model passes (forward + JVP) and wall time.

Paper setting: perturbation scale 1e-2 with the linear schedule 1 - t, stop time 0.5, one
candidate, Hutchinson's divergence with one fixed probe (exact in 2-D), reuse of an accepted
direction; the paper reports gains on ImageNet-256 and text-to-image models, no 2-D numbers.
Here: exact divergence of the step's averaged velocity (for Heun the Heun-averaged velocity),
the floor -1/(1 - t) on (the exact velocity never goes below it), scale 0.1 and no reuse. In
2-D a perturbation of norm 1e-2 * sqrt(2) barely moves a sample, and reusing accepted
directions makes samples drift steadily (towards low divergence, i.e. away from the mixture)
once there are many refined steps: the `sweep` variant, on other x_0 (seed 1), is where scale
0.1 without reuse was chosen.

Expected result: see experiments/fds/README.md (FDS raises the in-support fraction at 5 and 10
steps for Euler and Heun; the energy distance improves for Euler at 5 and 10 steps only).

Hardware: a CPU; about 6 minutes on 2 busy cores (the sweep: 15).

Variants (`--config=configs/fds/mixture.py:<variant>`):
  (none)  the table.
  sweep   FDS scales 0.03, 0.1, 0.3, each with and without reuse, on seed 1 (6,000 samples).
  smoke   a few hundred samples, for tests.
"""

from __future__ import annotations

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.target = "mixture"
    config.name = "mixture" if arg is None else f"mixture_{arg}"  # of the result files
    config.mixture = dict(num_components=8, radius=4.0, std=0.25)
    config.support_num_std = 3.0
    config.seed = 0
    config.methods = ("euler", "heun")
    config.num_steps = (5, 10, 20)
    config.num_samples = 20_000
    config.num_data = 10_000
    config.energy_points = 2_000  # energy distance: mean over chunks of this many points
    config.timing_repeats = 3
    config.batch_size = 1_000
    config.fds = dict(  # FlowDivergenceSampler's settings
        scale=0.1,
        schedule="linear",
        stop_time=0.5,
        num_candidates=1,
        reuse_accepted=False,
        divergence_floor=True,
        divergence_of="step",
        exact_divergence=True,
        num_probes=1,
        probe="rademacher",
    )
    config.variants = (dict(),)  # one row per variant: overrides of config.fds
    if arg == "sweep":
        config.seed = 1
        config.num_samples = 6_000
        config.timing_repeats = 1
        config.variants = tuple(
            dict(scale=scale, reuse_accepted=reuse)
            for scale in (0.03, 0.1, 0.3)
            for reuse in (True, False)
        )
    elif arg == "smoke":
        config.num_steps = (5,)
        config.num_samples = 400
        config.num_data = 400
        config.energy_points = 200
        config.timing_repeats = 1
    elif arg is not None:
        raise ValueError(
            f"Unknown variant {arg!r} of the FDS mixture config; use 'sweep' or 'smoke'."
        )
    return config
