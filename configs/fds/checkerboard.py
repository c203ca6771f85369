"""Flow Divergence Sampler (Cha et al., 2026, arXiv:2604.04646) on the trained 2D checkerboard.

Model: the velocity MLP of `configs/fm_guide/checkerboard.py:demo` (CondOT path, velocity
prediction), its EMA parameters, trained first with

    python -m flowjax.main --config=configs/fm_guide/checkerboard.py:demo \\
        --workdir=workdirs/fds_checkerboard

(`config.workdir`; about a minute on 2 CPU cores) and loaded with
`flowjax.train.inference.load_trained_flow`.

Protocol (`experiments/fds/run.py`): as for `configs/fds/mixture.py`: Euler and Heun with 5, 10
and 20 uniform steps, the same x_0 sampled plainly and with FDS; reported: the fraction of
samples inside the checkerboard's 8 squares (`flowjax.metrics.fraction_in_support`), the
energy distance to data, model passes (forward + JVP) and wall time.

Paper setting: see `configs/fds/mixture.py`; the FDS settings are the ones chosen there (exact
divergence of the step's averaged velocity, scale 0.1, linear schedule, stop time 0.5, one
candidate, no reuse, the floor -1/(1 - t), which a CondOT velocity also satisfies where it is
exact), and also scale 0.3 (the board's squares, of side 2, are larger than the mixture's
components).

Expected result: see experiments/fds/README.md.

Hardware: a CPU; about 10 minutes on 2 busy cores after training.

Variants (`--config=configs/fds/checkerboard.py:<variant>`):
  (none)  the table.
  smoke   a few hundred samples, for tests.
"""

from __future__ import annotations

import pathlib

import ml_collections

from flowjax.train import load_config_file

TRAIN_CONFIG = pathlib.Path(__file__).resolve().parents[1] / "fm_guide" / "checkerboard.py"


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.target = "checkerboard"
    config.name = "checkerboard" if arg is None else f"checkerboard_{arg}"  # of the result files
    config.flow = load_config_file(TRAIN_CONFIG, "demo")
    config.workdir = "workdirs/fds_checkerboard"
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
    config.variants = (dict(), dict(scale=0.3))  # one row per variant: overrides of config.fds
    if arg == "smoke":
        config.num_steps = (5,)
        config.num_samples = 400
        config.num_data = 400
        config.energy_points = 200
        config.timing_repeats = 1
    elif arg is not None:
        raise ValueError(f"Unknown variant {arg!r} of the FDS checkerboard config; use 'smoke'.")
    return config
