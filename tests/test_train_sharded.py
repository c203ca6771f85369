"""The trainer over several devices and processes gives the single-device result.

The runs with 8 virtual CPU devices happen in worker processes (tests/train_testing.py), since
the device count is fixed when JAX starts; the one-device reference runs in this process.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from train_testing import (
    final_state,
    finish,
    flat_state,
    free_port,
    losses,
    partition_specs,
    start_worker,
    tiny_config,
)

from flowjax.train import train

ACCUM = 2  # every run accumulates over 2 micro-batches, so that is sharded too


def assert_same_run(reference_dir, reference_state, workdir, rtol=1e-4, atol=1e-6):
    np.testing.assert_allclose(losses(workdir), losses(reference_dir), rtol=1e-5)
    state = final_state(workdir)
    assert state.keys() == reference_state.keys()
    for key in reference_state:
        np.testing.assert_allclose(
            state[key], reference_state[key], rtol=rtol, atol=atol, err_msg=key
        )


def run_meshes(tmp_path, meshes: dict[str, str]) -> None:
    """Trains tiny_config on 8 devices with each mesh, and on this process's one device."""
    worker = start_worker(
        *[f"--workdir={tmp_path / name}" for name in meshes],
        *[f"--mesh={mesh}" for mesh in meshes.values()],
        f"--accum={ACCUM}",
        devices=8,
    )
    one_device = tiny_config(**{"train.grad_accum_steps": ACCUM})
    reference = flat_state(train(one_device, str(tmp_path / "one")))
    finish(worker)
    for name in meshes:
        assert_same_run(tmp_path / "one", reference, tmp_path / name)


def test_data_and_fsdp_meshes_match_one_device(tmp_path):
    run_meshes(tmp_path, {"data8": "8,1,1", "data4_fsdp2": "4,2,1"})
    # The (4, 2, 1) run really split parameters and Adam moments over "fsdp" (fsdp_min_size=0).
    specs = partition_specs(tmp_path / "data4_fsdp2")
    assert specs["params/hidden/1/kernel"] == specs["opt_state/0/mu/hidden/1/kernel"]
    assert "fsdp" in specs["params/hidden/1/kernel"]
    assert specs["params/hidden/0/kernel"] == "P(None, 'fsdp')"  # (3, 16): the divisible dim
    assert specs["step"] == "P()"


@pytest.mark.slow
def test_tensor_axis_rule_matches_one_device(tmp_path):
    run_meshes(tmp_path, {"data2_fsdp2_tensor2": "2,2,2"})
    # The sharding rule of tiny_config split this kernel over both "fsdp" and "tensor".
    specs = partition_specs(tmp_path / "data2_fsdp2_tensor2")
    assert specs["params/hidden/1/kernel"] == "P('fsdp', 'tensor')"


@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path):
    """2 processes x 4 devices (jax.distributed over loopback) == 1 process x 8 devices."""
    single = start_worker(
        f"--workdir={tmp_path / 'single'}",
        "--mesh=4,2,1",
        f"--accum={ACCUM}",
        "--every=3",
        devices=8,
    )
    finish(single)
    port = free_port()
    workers = [
        start_worker(
            f"--workdir={tmp_path / 'multi'}",
            "--mesh=4,2,1",
            f"--accum={ACCUM}",
            "--every=3",
            f"--coordinator=127.0.0.1:{port}",
            "--num-processes=2",
            f"--process-id={i}",
            devices=4,
        )
        for i in range(2)
    ]
    for worker in workers:
        finish(worker)
    assert_same_run(tmp_path / "single", final_state(tmp_path / "single"), tmp_path / "multi")
    # Both processes wrote their data position into every checkpoint.
    for step in (3, 6):
        data_dir = tmp_path / "multi" / "checkpoints" / str(step) / "data"
        assert sorted(os.listdir(data_dir)) == [
            "commit_success.txt",
            "process_0-of-2.json",
            "process_1-of-2.json",
        ]
