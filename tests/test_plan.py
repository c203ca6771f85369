"""The preflight (`flowjax.train.plan`, `--mode=plan`): its bytes per device equal those of the
state actually placed on 8 virtual devices, its FLOPs agree with the analytic matmul count of
the MLP, rematerialised DiT blocks show their recomputation, and a mesh that does not divide
the model or a budget too small is refused as a plain user error, before anything is
allocated."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# XLA's default optimisations (not the tests' fast compile): the plan reads the real program.
ENV = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
       "JAX_PLATFORMS": "cpu"}

WORKER = r"""
import json, jax
from flowjax.train import load_config_file
from flowjax.train.plan import GROUPS, PlanError, plan
from flowjax.train.setup import setup_run
from flowjax.train.state import init_train_state

out = {}
config = load_config_file("configs/fm_guide/digits.py", "dit")
config.sharding.mesh_shape = (2, 4, 1)
config.train.global_batch_size = 64
config.sample.batch_size = config.evaluate.batch_size = 64
p = plan(config)
run = setup_run(config)
state = init_train_state(run.model_fn, run.optimizer, 0, run.shardings)
placed = {}
for group in GROUPS:
    placed[group] = sum(shard.data.nbytes for leaf in jax.tree.leaves(getattr(state, group))
                        for shard in leaf.addressable_shards if shard.device == jax.devices()[0])
out["dit"] = {"plan": {g.name: g.bytes_per_device for g in p.groups}, "placed": placed,
              "collectives": p.collectives, "temp": p.temp_bytes}

config.model.remat = "full"
out["dit"]["flops_remat"] = plan(config).flops_per_step
out["dit"]["flops"] = p.flops_per_step
config.model.remat = "none"

mlp = load_config_file("configs/fm_guide/checkerboard.py")
mlp.sharding.mesh_shape = (8, 1, 1)
mlp.train.global_batch_size = 1024
mlp.sample.batch_size = mlp.evaluate.batch_size = 1024
q = plan(mlp)
out["mlp"] = {"flops": q.flops_per_step, "hidden": mlp.model.hidden_dim,
              "layers": mlp.model.num_layers, "collectives": q.collectives}

bad = load_config_file("configs/fm_guide/digits.py", "dit")
bad.sharding.mesh_shape = (1, 1, 8)  # the DiT's 128 heads' width splits, its 3 x 128 ... too
bad.model.hidden_dim = 36
bad.model.num_heads = 4
bad.train.global_batch_size = 64
bad.sample.batch_size = bad.evaluate.batch_size = 64
try:
    plan(bad)
    out["divide"] = None
except PlanError as error:
    out["divide"] = str(error)
try:
    plan(config, budget_gb=1e-4)
    out["budget"] = None
except PlanError as error:
    out["budget"] = str(error)
print(json.dumps(out))
"""


@pytest.mark.slow
def test_plan_matches_placed_arrays_flops_and_refuses_what_does_not_fit():
    result = subprocess.run([sys.executable, "-c", WORKER], cwd=ROOT, env=ENV,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    dit = out["dit"]
    for group, placed in dit["placed"].items():
        planned = dit["plan"][group]
        assert abs(planned - placed) <= 0.05 * max(placed, 1), (group, planned, placed)
    assert dit["plan"]["params"] > 0 and dit["temp"] > 0
    # Rematerialised blocks run their forward pass twice (the memory it saves shows at scale:
    # DiT-XL/2's activations fall tenfold, README).
    assert dit["flops_remat"] > 1.15 * dit["flops"], (dit["flops_remat"], dit["flops"])
    assert dit["collectives"]["all-reduce"] >= 1  # gradients are reduced over the batch axes
    # 8-way data parallel: each device runs the MLP on 128 points, forward and backward.
    h, layers = out["mlp"]["hidden"], out["mlp"]["layers"]
    shapes = [(3, h)] + [(h, h)] * (layers - 1) + [(h, 2)]
    forward = 2 * 128 * sum(a * b for a, b in shapes)
    assert 2.9 * forward < out["mlp"]["flops"] < 3.5 * forward, (out["mlp"]["flops"], forward)
    assert "does not divide" in out["divide"]
    assert "over the budget" in out["budget"]


def test_plan_command_prints_the_table_and_fails_plainly(tmp_path):
    command = [sys.executable, "-m", "flowjax.main", "--mode=plan",
               "--config=configs/fm_guide/checkerboard.py", f"--workdir={tmp_path}",
               "--plan_devices=4", "--config.sharding.mesh_shape=(2,2,1)",
               "--config.sample.batch_size=64", "--config.evaluate.batch_size=64"]
    env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
    ok = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert "GiB / device" in ok.stdout and "fsdp 2" in ok.stdout
    record = json.loads((tmp_path / "plan.json").read_text())
    assert record["devices"] == 4 and record["peak_bytes"] > 0
    too_small = subprocess.run(command + ["--plan_budget_gb=0.0001"], cwd=ROOT, env=env,
                               capture_output=True, text=True)
    assert too_small.returncode == 2 and "over the budget" in too_small.stderr
    assert "Traceback" not in too_small.stderr


def test_a_tpu_topology_needs_libtpu_or_compiles_for_it(tmp_path):
    """Where libtpu is installed the plan compiles for a 2x2 v5e slice on this host; where it is
    not, asking for a topology is a plain error naming what to install."""
    import importlib.util

    command = [sys.executable, "-m", "flowjax.main", "--mode=plan",
               "--config=configs/fm_guide/checkerboard.py", f"--workdir={tmp_path}",
               "--plan_topology=v5e:2x2", "--config.sharding.mesh_shape=(2,2,1)",
               "--config.sample.batch_size=64", "--config.evaluate.batch_size=64"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if importlib.util.find_spec("libtpu") is None:
        assert result.returncode == 2 and "libtpu" in result.stderr
        assert "Traceback" not in result.stderr
    else:
        assert result.returncode == 0, result.stderr[-3000:]
        assert "4 TPU v5 lite devices" in result.stdout
        # A step too large for a v5e chip's 16 GiB: the TPU compiler's own figure, plainly.
        too_large = subprocess.run(
            command + ["--config.model.hidden_dim=16384", "--config.train.global_batch_size=262144"],
            cwd=ROOT, capture_output=True, text=True)
        assert too_large.returncode == 2, too_large.stderr[-3000:]
        assert "does not fit a device of v5e:2x2" in too_large.stderr
        assert "Traceback" not in too_large.stderr
