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
  export    an autoencoder run ("autoencoder" objective) as a diffusers checkpoint with its
            measured scaling factor: <workdir>/autoencoder.
  plan      the preflight (`flowjax.train.plan`): the train step compiled for the config's mesh
            without allocating parameters; a table of bytes per device (parameters, optimiser,
            EMA, activations), FLOPs and collectives, also <workdir>/plan.json. With
            --plan_devices=N it compiles for N virtual CPU devices (e.g. 256 for a pod's mesh);
            --plan_budget_gb fails when a device would need more; --plan_topology=v5e:16x16
            compiles for that TPU slice on a host without TPUs (needs libtpu).
  couplings a masked diffusion or IMDM teacher's samples with their starts and eps seeds, for
            ReDi distillation (`flowjax.train.couplings`): --couplings_num samples of
            --couplings_steps steps into --couplings_out (default <workdir>/couplings.npz).

Multi-host (TPU pod slices, multi-node GPU): run the same command on every host with
`--config.distributed.initialize=true` (plus the coordinator address, process count and id where
JAX cannot detect the cluster). SIGTERM or Ctrl-C saves a checkpoint and exits; rerunning the
same command resumes.

A mistake of the user's (a missing config file, an unknown variant or key, a bad value, a
missing dataset, weights file or checkpoint, a training run whose loss became non-finite) is
printed as a few plain lines on stderr, before anything is compiled where it can be known then,
and the command exits with status 2; a traceback means a bug.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import sys

import jax
from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

from flowjax.train import (
    ConfigError,
    NonFiniteLossError,
    ShardingError,
    couplings,
    inference,
    load_config_file,
    train,
)
from flowjax.train import plan as plan_lib
from flowjax.train.setup import setup_run
from flowjax.train.trained import MissingCheckpointError

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file (configs/<paper>/<experiment>.py[:variant]).", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory of checkpoints, metrics and plots.")
_MODE = flags.DEFINE_enum(
    "mode", "train", ["train", "sample", "evaluate", "couplings", "export", "plan"],
    "What to do (export: an autoencoder run as a diffusers checkpoint; plan: the preflight).",
)
_COUPLINGS_NUM = flags.DEFINE_integer("couplings_num", 10_000, "Couplings to write.")
_COUPLINGS_STEPS = flags.DEFINE_integer("couplings_steps", 1024, "The teacher's steps.")
_COUPLINGS_OUT = flags.DEFINE_string("couplings_out", "", "Couplings file (.npz).")
_COUPLINGS_PERTURBED = flags.DEFINE_bool(
    "couplings_perturbed", False, "Start from held-out data masked at a uniform time."
)
_PLAN_DEVICES = flags.DEFINE_integer(
    "plan_devices", 0, "--mode=plan: compile for this many virtual CPU devices (0: the visible "
    "devices)."
)
_PLAN_BUDGET = flags.DEFINE_float(
    "plan_budget_gb", 0.0, "--mode=plan: fail when a device needs more GiB than this (0: none)."
)
_PLAN_TOPOLOGY = flags.DEFINE_string(
    "plan_topology", "", "--mode=plan: compile for this TPU slice (e.g. v5e:16x16; needs libtpu)."
)
flags.mark_flags_as_required(["config", "workdir"])


def run(config, workdir: str, mode: str) -> list[str]:
    """Runs `mode`; returns lines saying what was written where (process 0 prints them)."""
    lines, flow, samples = [], None, None
    if mode == "couplings":
        path = couplings.write_couplings(
            config,
            workdir,
            _COUPLINGS_OUT.value or os.path.join(workdir, "couplings.npz"),
            _COUPLINGS_NUM.value,
            steps=_COUPLINGS_STEPS.value,
            seed=config.sample.seed,
            perturbed=_COUPLINGS_PERTURBED.value,
        )
        return [f"Couplings: {path}"]
    if mode == "plan":
        return _plan(config, workdir)
    if mode == "export":
        result = inference.export_autoencoder(config, workdir)
        return [f"Autoencoder: {result['files']['autoencoder']}"] + [
            f"  {k} = {v:.4g}" for k, v in result["metrics"].items()
        ]
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
        flow = inference.TrainedFlow(setup_run(config), state, step)  # the state in memory
    if mode in ("train", "sample"):
        result = inference.sample(config, workdir, flow)
        samples = result["samples"]
        lines += [f"{what.capitalize()}: {_paths(path)}" for what, path in result["files"].items()]
    if mode in ("train", "evaluate"):
        result = inference.evaluate(config, workdir, flow, samples)
        lines.append(f"Metrics: {result['files']['metrics']}")
        lines += [f"  {k} = {v:.4g}" for k, v in result["metrics"].items()]
    return lines


def _plan(config, workdir: str) -> list[str]:
    """The preflight table (`flowjax.train.plan`), also written to <workdir>/plan.json."""
    wanted = _PLAN_DEVICES.value
    if wanted and jax.device_count() != wanted:
        raise ConfigError([
            f"--plan_devices={wanted}, but JAX started with {jax.device_count()} devices: the "
            "virtual devices must be set before JAX starts (run flowjax.main directly, or set "
            f"XLA_FLAGS=--xla_force_host_platform_device_count={wanted} JAX_PLATFORMS=cpu)."
        ])
    result = plan_lib.plan(config, budget_gb=_PLAN_BUDGET.value or None,
                           topology=_PLAN_TOPOLOGY.value or None)
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "plan.json")
    with open(path, "w") as f:
        json.dump(result.to_json(), f, indent=1)
    return [result.table(), f"Plan: {path}"]


def _paths(path: str | list[str]) -> str:
    return ", ".join(path) if isinstance(path, list) else path


USER_ERRORS = (ConfigError, MissingCheckpointError, NonFiniteLossError, ShardingError)
# (PlanError is a ConfigError)
"""Errors that are the user's to fix: printed plainly, without a traceback."""


def user_error(lines: list[str]) -> None:
    """Prints `lines` on stderr and exits with status 2."""
    print("\n".join(["flowjax: " + lines[0], *lines[1:]]), file=sys.stderr, flush=True)
    sys.exit(2)


def _unknown_override_keys(config, overrides: list[str]) -> list[str]:
    """The overridden keys (dotted names after --config.) that `config` does not have, each
    with the closest existing key."""
    unknown = []
    for name in overrides:
        section, parts = config, name.split(".")
        for depth, part in enumerate(parts):
            keys = list(section.keys()) if hasattr(section, "keys") else []
            if part not in keys:
                close = difflib.get_close_matches(part, keys, n=1)
                hint = f" (did you mean {'.'.join([*parts[:depth], close[0]])!r}?)" if close else ""
                unknown.append(f"{name!r}{hint}")
                break
            section = section[part]
    return unknown


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with the config file loaded first: a missing file, a bad variant or
    unknown keys in the overrides (all of them) become a plain user error, as does a value
    that absl cannot parse."""
    devices = next((a.split("=", 1)[1] for a in argv[1:] if a.startswith("--plan_devices=")), "")
    if "--mode=plan" in argv and devices.isdigit() and int(devices) > 0:
        # Virtual CPU devices exist only if asked for before JAX starts its backend.
        os.environ["JAX_PLATFORMS"] = "cpu"
        os.environ["XLA_FLAGS"] = (
            f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}"
        ).strip()
    config_arg = next((a.split("=", 1)[1] for a in argv[1:] if a.startswith("--config=")), None)
    if config_arg is not None:
        path, _, variant = config_arg.partition(":")
        if not os.path.isfile(path):
            user_error(
                [
                    f"the config file {path!r} does not exist.",
                    "Pass --config=configs/<paper>/<experiment>.py[:variant], e.g. "
                    "--config=configs/fm_guide/checkerboard.py:demo.",
                ]
            )
        try:
            config = load_config_file(path, variant or None)
        except ValueError as error:  # e.g. an unknown variant
            user_error([str(error)])
        overrides = [
            a[len("--config.") :].split("=", 1)[0] for a in argv[1:] if a.startswith("--config.")
        ]
        unknown = _unknown_override_keys(config, overrides)
        if unknown:
            user_error(
                [
                    f"{path} has no config key {', '.join(unknown)} (overridden on the command "
                    "line).",
                    "Overrides must name existing keys, e.g. --config.train.num_steps=500.",
                ]
            )
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        user_error([str(error).strip().splitlines()[-1], "See --helpshort."])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    absl_logging.set_verbosity(absl_logging.WARNING)  # library chatter (checkpointing)
    logging.getLogger("flowjax").setLevel(logging.INFO)
    try:
        lines = run(_CONFIG.value, _WORKDIR.value, _MODE.value)
    except USER_ERRORS as error:
        user_error(str(error).splitlines())
    if jax.process_index() == 0:
        print("\n".join(lines), flush=True)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
