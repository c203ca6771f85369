"""The trainer over several devices and processes gives the single-device result.

The runs with 8 virtual CPU devices happen in worker processes (tests/train_testing.py), since
the device count is fixed when JAX starts; the one-device reference runs in this process.
"""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
from train_testing import (
    checkpoint_steps,
    final_state,
    finish,
    flat_state,
    free_port,
    logged_steps,
    losses,
    partition_specs,
    start_worker,
    tiny_config,
    wait_for,
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


def start_processes(workdir, count: int, *args: str) -> list:
    """`count` jax.distributed workers (8 / count devices each) training one run in `workdir`
    on the (4, 2, 1) mesh."""
    port = free_port()
    return [
        start_worker(
            f"--workdir={workdir}",
            "--mesh=4,2,1",
            f"--accum={ACCUM}",
            f"--coordinator=127.0.0.1:{port}",
            f"--num-processes={count}",
            f"--process-id={i}",
            *args,
            devices=8 // count,
        )
        for i in range(count)
    ]


@pytest.fixture(scope="module")
def one_process_run(tmp_path_factory):
    """The reference: 1 process x 8 devices, 6 steps, checkpoints at 3 and 6."""
    workdir = tmp_path_factory.mktemp("single")
    finish(start_worker(f"--workdir={workdir}", "--mesh=4,2,1", f"--accum={ACCUM}", "--every=3",
                        devices=8))
    return workdir


@pytest.mark.slow
@pytest.mark.parametrize("count", [2, 4])
def test_processes_match_one_process(tmp_path, one_process_run, count):
    """2 processes x 4 devices and 4 x 2 (jax.distributed over loopback) == 1 process x 8."""
    for worker in start_processes(tmp_path / "multi", count, "--every=3"):
        finish(worker)
    assert_same_run(one_process_run, final_state(one_process_run), tmp_path / "multi")
    # Every process wrote its data position into every checkpoint.
    for step in (3, 6):
        data_dir = tmp_path / "multi" / "checkpoints" / str(step) / "data"
        assert sorted(os.listdir(data_dir)) == [
            "commit_success.txt", *[f"process_{i}-of-{count}.json" for i in range(count)]
        ]


@pytest.mark.slow
def test_killing_one_process_and_restarting_both_loses_nothing(tmp_path, one_process_run):
    """A 2-process run whose process 1 is killed with SIGKILL after step 5 (checkpoint at 3),
    then process 0 (as a scheduler restarting the job would), restarted on 2 processes: the
    same losses and state as the uninterrupted run, every step logged once."""
    workdir = tmp_path / "multi"
    workers = start_processes(workdir, 2, "--every=3", "--hang-at=5")
    try:
        wait_for(
            lambda: os.path.isdir(workdir / "checkpoints" / "3")
            and os.path.exists(workdir / "metrics.jsonl")
            and len(logged_steps(workdir)) == 5,
            timeout=240,
            what="checkpoint 3 and the lines of steps 4, 5",
        )
    finally:
        for worker in reversed(workers):
            worker.send_signal(signal.SIGKILL)
            worker.communicate()
    assert [w.returncode for w in workers] == [-signal.SIGKILL] * 2
    assert checkpoint_steps(workdir) == [3]
    for worker in start_processes(workdir, 2, "--every=3"):
        finish(worker)
    assert logged_steps(workdir) == list(range(1, 7))
    assert_same_run(one_process_run, final_state(one_process_run), workdir)


@pytest.mark.slow
def test_resume_on_another_process_count(tmp_path, one_process_run):
    """3 steps on 4 processes x 2 devices, then 3 more on 1 process x 8 devices from its
    checkpoint: the state is resharded by Orbax and the data position read from the old
    processes' files, so the run equals the uninterrupted one."""
    workdir = tmp_path / "run"
    for worker in start_processes(workdir, 4, "--every=3", "--steps=3"):
        finish(worker)
    finish(start_worker(f"--workdir={workdir}", "--mesh=4,2,1", f"--accum={ACCUM}", "--every=3",
                        devices=8))
    assert logged_steps(workdir) == list(range(1, 7))
    assert_same_run(one_process_run, final_state(one_process_run), workdir)
    with open(workdir / "checkpoints" / "6" / "data" / "process_0-of-1.json") as f:
        assert json.load(f) == {"next_index": 6}
