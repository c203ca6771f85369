"""Command line: train, sample from, or evaluate the flow of an ml-collections config.

    python -m flowjax.main --config=configs/fm_guide/checkerboard.py:demo \\
        --workdir=workdirs/demo --mode=train

`--config` is a Python file with `get_config(arg)`; the text after ":" is passed as `arg` (a
variant such as `smoke` or `demo`). Any value can be overridden on the command line, e.g.
`--config.train.num_steps=500 --config.sharding.mesh_shape="(4,2,1)"`; unknown keys and
values of the wrong type are refused before anything runs.

Modes:
  train     trains (resuming from the newest checkpoint in --workdir if there is one); a
            finished run then samples and evaluates when config.evaluate.after_training.
  sample    samples from the newest checkpoint: samples.npy, trajectories.npy, plots/*.png,
            sample_metrics.json.
  evaluate  held-out NLL (and toy sample metrics) of the newest checkpoint: metrics.json.

Multi-host (TPU pod slices, multi-node GPU): run the same command on every host with
`--config.distributed.initialize=true` (plus the coordinator address, process count and id where
JAX cannot detect the cluster). SIGTERM or Ctrl-C saves a checkpoint and exits; rerunning the
same command resumes.
"""

from __future__ import annotations

import logging

import jax
from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

from flowjax.train import inference, train

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file (configs/<paper>/<experiment>.py[:variant]).", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory of checkpoints, metrics and plots.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "sample", "evaluate"], "What to do.")
flags.mark_flags_as_required(["config", "workdir"])


def run(config, workdir: str, mode: str) -> list[str]:
    """Runs `mode`; returns lines saying what was written where (process 0 prints them)."""
    lines, flow, samples = [], None, None
    if mode == "train":
        state = train(config, workdir)
        step, num_steps = int(jax.device_get(state.step)), config.train.num_steps
        lines.append(
            f"Trained to step {step} of {num_steps}. Checkpoints: {workdir}/checkpoints; "
            f"training metrics: {workdir}/metrics.jsonl."
        )
        if step < num_steps:
            lines.append("Stopped early: rerun the same command to resume.")
            return lines
        if not config.evaluate.after_training:
            return lines
        flow = inference.load_trained_flow(config, workdir)
    if mode in ("train", "sample"):
        result = inference.sample(config, workdir, flow)
        samples = result["samples"]
        lines += [f"{what.capitalize()}: {_paths(path)}" for what, path in result["files"].items()]
    if mode in ("train", "evaluate"):
        result = inference.evaluate(config, workdir, flow, samples)
        lines.append(f"Metrics: {result['files']['metrics']}")
        lines += [f"  {k} = {v:.4g}" for k, v in result["metrics"].items()]
    return lines


def _paths(path: str | list[str]) -> str:
    return ", ".join(path) if isinstance(path, list) else path


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    absl_logging.set_verbosity(absl_logging.WARNING)  # library chatter (checkpointing)
    logging.getLogger("flowjax").setLevel(logging.INFO)
    lines = run(_CONFIG.value, _WORKDIR.value, _MODE.value)
    if jax.process_index() == 0:
        print("\n".join(lines), flush=True)


if __name__ == "__main__":
    app.run(main)
