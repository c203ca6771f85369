"""Helpers for the trainer tests, and a worker that trains in a separate process.

The worker (`python tests/train_testing.py --workdir=... [options]`) exists because some tests
need a process of their own: one with 8 virtual CPU devices (XLA_FLAGS must be set before JAX
starts), one of several `jax.distributed` processes, or one that is killed with SIGKILL.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time

import grain
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FINAL_STATE_FILE = "final_state.npz"
SPECS_FILE = "partition_specs.json"


def repo_config(path: str, variant: str | None = None):
    """The config of the experiment file at `path` (relative to the repository), as the
    command line's --config=path:variant gives it."""
    from flowjax.train import load_config_file

    return load_config_file(os.path.join(REPO, path), variant)


def run_cli(*args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
    """`python -m flowjax.main *args` from the repository root on one CPU device."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run(
        [sys.executable, "-m", "flowjax.main", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )


def set_field(section: str, name: str, value):
    """A config mutation: config[section][name] = value (for tables of bad configs)."""

    def mutate(config):
        config[section][name] = value
        return config

    return mutate


def tiny_config(**overrides):
    """A seconds-long checkerboard run: tiny MLP, batch 64, no end-of-run sampling.

    `overrides` maps dotted keys to values, e.g. {"train.num_steps": 8}.
    """
    from flowjax.train import default_config

    config = default_config()
    config.data = dict(source="toy", name="checkerboard")
    config.model.hidden_dim = 16
    config.model.num_layers = 2
    config.train.num_steps = 6
    config.train.global_batch_size = 64
    config.train.log_every = 1
    config.checkpoint.every_steps = 1000
    config.checkpoint.max_to_keep = 5
    config.sharding.fsdp_min_size = 0  # shard every divisible leaf when there is an fsdp axis
    config.sharding.rules = ((r"hidden/1/kernel$", ("fsdp", "tensor")),)
    config.evaluate.after_training = False
    for key, value in overrides.items():
        section, name = key.split(".") if "." in key else (None, key)
        target = config if section is None else config[section]
        target[name] = value
    return config


def flat_state(state) -> dict[str, np.ndarray]:
    """The train state's arrays by path ("params/hidden/0/kernel", ...), as NumPy (the key as
    its raw data)."""
    import jax

    from flowjax.train.inference import to_host
    from flowjax.parallel import path_string

    flat = {}
    for key_path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        flat[path_string(key_path)] = to_host(leaf)
    return flat


def losses(workdir: str) -> np.ndarray:
    """The per-logging-step losses of metrics.jsonl."""
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return np.array([json.loads(line)["loss"] for line in f])


def checkpoint_steps(workdir) -> list[int]:
    directory = os.path.join(workdir, "checkpoints")
    return sorted(int(d) for d in os.listdir(directory) if d.isdigit())


def logged_steps(workdir) -> list[int]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line)["step"] for line in f]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_worker(*args: str, devices: int = 1, script: str = __file__) -> subprocess.Popen:
    """Starts `script` (by default this file's trainer) as a worker process with `devices`
    virtual CPU devices."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}"
    )
    env["JAX_PLATFORMS"] = "cpu"
    return subprocess.Popen(
        [sys.executable, os.path.abspath(script), *args],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen, timeout: float = 240) -> str:
    """Waits for a worker; returns its output, raising if it failed."""
    output, _ = process.communicate(timeout=timeout)
    if process.returncode != 0:
        raise AssertionError(f"worker exited with {process.returncode}:\n{output[-5000:]}")
    return output


def wait_for(predicate, timeout: float = 120, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


class HookedIterator(grain.DatasetIterator):
    """A data iterator that passes every batch through hook(index, batch) -> batch.

    `index` is the batch's position in the stream (0 for the first batch of a run), so a hook
    can act at a chosen training step; the state is the wrapped iterator's.
    """

    def __init__(self, parent: grain.DatasetIterator, hook):
        super().__init__(parent)
        self._hook = hook

    def __next__(self):
        index = self._parent.get_state()["next_index"]
        return self._hook(index, next(self._parent))

    def get_state(self):
        return self._parent.get_state()

    def set_state(self, state):
        self._parent.set_state(state)


def hook_data(hook):
    """A stand-in for `flowjax.data.build_dataset` whose iterators apply `hook`."""
    from flowjax import data

    build_dataset = data.build_dataset
    return lambda *args, **kwargs: HookedIterator(build_dataset(*args, **kwargs), hook)


def hang_at(num_batches: int):
    """A hook that hangs when batch `num_batches` (0-based) is requested."""

    def hook(index, batch):
        if index >= num_batches:
            time.sleep(3600)
        return batch

    return hook


def _worker() -> None:
    """Trains tiny_config once per --workdir / --mesh pair; saves each final state (process 0)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", action="append", required=True)
    parser.add_argument("--mesh", action="append", help="sharding.mesh_shape, e.g. 4,2,1")
    parser.add_argument("--accum", type=int, default=1, help="train.grad_accum_steps")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--every", type=int, default=1000, help="checkpoint.every_steps")
    parser.add_argument("--hang-at", type=int, default=None, help="hang when asked for this batch")
    parser.add_argument("--coordinator", default="", help="host:port of jax.distributed")
    parser.add_argument("--num-processes", type=int, default=0)
    parser.add_argument("--process-id", type=int, default=-1)
    args = parser.parse_args()

    import jax

    from flowjax import data
    from flowjax.train import train

    if args.hang_at is not None:
        data.build_dataset = hook_data(hang_at(args.hang_at))
    meshes = args.mesh or ["-1,1,1"] * len(args.workdir)
    for workdir, mesh in zip(args.workdir, meshes, strict=True):
        config = tiny_config(
            **{
                "sharding.mesh_shape": tuple(int(s) for s in mesh.split(",")),
                "train.grad_accum_steps": args.accum,
                "train.num_steps": args.steps,
                "checkpoint.every_steps": args.every,
                "distributed.initialize": bool(args.coordinator),
                "distributed.coordinator_address": args.coordinator,
                "distributed.num_processes": args.num_processes,
                "distributed.process_id": args.process_id,
            }
        )
        state = train(config, workdir)
        flat = flat_state(state)
        specs = {k: str(v.spec) for k, v in flat_shardings(state).items()}
        if jax.process_index() == 0:
            np.savez(os.path.join(workdir, FINAL_STATE_FILE), **flat)
            with open(os.path.join(workdir, SPECS_FILE), "w") as f:
                json.dump(specs, f)


def final_state(workdir) -> dict[str, np.ndarray]:
    """The final state a worker saved in `workdir`."""
    with np.load(os.path.join(workdir, FINAL_STATE_FILE)) as saved:
        return dict(saved)


def partition_specs(workdir) -> dict[str, str]:
    """The PartitionSpec (as text) of each state leaf of a worker's final state."""
    with open(os.path.join(workdir, SPECS_FILE)) as f:
        return json.load(f)


def flat_shardings(state) -> dict:
    """The sharding of each leaf of the state, by path."""
    import jax

    from flowjax.parallel import path_string

    return {
        path_string(k): leaf.sharding for k, leaf in jax.tree_util.tree_flatten_with_path(state)[0]
    }


if __name__ == "__main__":
    sys.path.insert(0, REPO)
    _worker()


def save_process_result(compute) -> None:
    """The entry point of a 2-process loopback worker started by `start_worker(...,
    script=<test file>)` with --coordinator, --process-id and --out: joins the run and saves
    `compute()` (a dict of arrays) as <out>/process_<id>.npz."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--coordinator", required=True)
    parser.add_argument("--process-id", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    import jax

    jax.distributed.initialize(args.coordinator, num_processes=2, process_id=args.process_id)
    np.savez(os.path.join(args.out, f"process_{args.process_id}.npz"), **compute())
