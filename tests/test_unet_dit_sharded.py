"""The image networks train sharded: 8 virtual CPU devices on a (data 2, fsdp 2, tensor 2) mesh
with the networks' tensor-parallel rules give the one-device losses, and the rules really split
the kernels.

The 8-device run happens in a worker process (this file run as a script), since the device count
is fixed when JAX starts; the one-device reference runs in the test process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "configs", "fm_guide", "digits.py")


def tiny_config(variant: str, mesh: tuple[int, int, int]):
    """digits smoke (UNet or DiT) for 3 updates of 16 images, every divisible leaf shardable."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("digits_config", CONFIG)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config(variant)
    config.train.global_batch_size = 16
    config.sharding.mesh_shape = mesh
    config.sharding.fsdp_min_size = 0
    config.evaluate.after_training = False
    config.checkpoint.async_save = False
    return config


def train_and_record(variant: str, mesh, workdir: str) -> dict:
    """Trains; returns the logged losses and the partition spec of every parameter."""
    from flowjax.train import train
    from flowjax.parallel import path_string

    state = train(tiny_config(variant, mesh), workdir)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        losses = [json.loads(line)["loss"] for line in f]
    import jax

    specs = {
        path_string(path): str(leaf.sharding.spec)
        for path, leaf in jax.tree_util.tree_flatten_with_path(state.params)[0]
    }
    return {"losses": losses, "specs": specs}


def run_sharded(variant: str, tmp_path) -> dict:
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
           "JAX_PLATFORMS": "cpu"}
    out = tmp_path / "sharded.json"
    result = subprocess.run(
        [sys.executable, __file__, variant, str(tmp_path / "sharded"), str(out)],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.slow  # two train-step compiles of a few minutes each on a loaded 2-core machine
@pytest.mark.parametrize(
    "variant, kernel, spec",
    [
        ("dit_smoke", "blocks/0/fc1/kernel", "P('fsdp', 'tensor')"),
        ("smoke", "down/0/blocks/0/conv1/kernel", "P(None, None, 'fsdp', 'tensor')"),
    ],
)
def test_sharded_training_matches_one_device(variant, kernel, spec, tmp_path):
    sharded = run_sharded(variant, tmp_path)
    reference = train_and_record(variant, (1, 1, 1), str(tmp_path / "one"))
    np.testing.assert_allclose(sharded["losses"], reference["losses"], rtol=2e-4)
    assert sharded["specs"][kernel] == spec


if __name__ == "__main__":
    variant, workdir, out = sys.argv[1:]
    record = train_and_record(variant, (2, 2, 2), workdir)
    with open(out, "w") as f:
        json.dump(record, f)
