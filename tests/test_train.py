"""The trainer on one device: config validation, accumulation, EMA, resume, signals, NaN."""

from __future__ import annotations

import json
import logging
import os
import signal

import ml_collections
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P
from train_testing import (
    checkpoint_steps,
    logged_steps,
    flat_state,
    hook_data,
    losses,
    start_worker,
    tiny_config,
    wait_for,
)

from flowjax import data
from flowjax.train import NonFiniteLossError, loop, optim, train
from flowjax.train.checkpoint import Checkpointer, abstract_with_shardings
from flowjax.train.setup import setup_run
from flowjax.parallel import leaf_partition_spec


def restore_state(config, workdir, step=None):
    run = setup_run(config)
    with Checkpointer(str(workdir)) as checkpointer:
        restored = checkpointer.restore_latest(
            abstract_with_shardings(run.abstract_state, run.shardings)
        )
    assert step is None or restored.step == step
    return restored.state


def data_position(workdir, step) -> dict:
    with open(os.path.join(workdir, "checkpoints", str(step), "data", "process_0-of-1.json")) as f:
        return json.load(f)


# Config validation ---------------------------------------------------------------------------


def _with_section(config, section, **values):
    """`config` with a section rebuilt (as a config file could), bypassing type-safe assignment."""
    config[section] = ml_collections.ConfigDict({**config[section].to_dict(), **values})
    return config


BAD_CONFIGS = {
    "unknown key": (
        lambda c: c.train.__setattr__("num_step", 5),
        r"Unknown config key 'train.num_step'\. Did you mean 'train.num_steps'",
    ),
    "wrong type": (
        lambda c: _with_section(c, "train", num_steps="100"),
        r"'train.num_steps' must be of type int",
    ),
    "unknown choice": (
        lambda c: c.optim.__setattr__("name", "rmsprop"),
        r"'optim.name' must be one of \['adam', 'adamw', 'sgd'\]",
    ),
    "decay boundaries out of order": (
        lambda c: c.optim.__setattr__("decay_boundaries", (0.6, 0.3)),
        r"'optim.decay_boundaries' must be increasing fractions of the run in \(0, 1\)",
    ),
    "batch not divisible": (
        lambda c: c.train.__setattr__("grad_accum_steps", 3),
        r"global_batch_size=64 must be divisible by .* 3",
    ),
    "mesh larger than the devices": (
        lambda c: c.sharding.__setattr__("mesh_shape", (2, 1, 1)),
        r"needs 2 devices, but 1 are available",
    ),
    "unknown dataset": (
        lambda c: c.data.__setattr__("name", "checkers"),
        r"Unknown toy distribution 'checkers'",
    ),
    "unknown data key": (
        lambda c: c.data.__setattr__("nmae", "checkerboard"),
        r"Unknown key\(s\) \['nmae'\]",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_fails_before_anything_is_built(case, tmp_path, monkeypatch):
    def not_reached(*args, **kwargs):
        raise AssertionError("validation should have failed before the run was set up")

    monkeypatch.setattr(loop, "setup_run", not_reached)
    config = tiny_config()
    mutate, message = BAD_CONFIGS[case]
    mutate(config)
    with pytest.raises(ValueError, match=message):
        train(config, str(tmp_path))


def test_unwritable_workdir_fails_before_anything_is_built(tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "setup_run", None)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="is not writable"):
        train(tiny_config(), str(blocker / "workdir"))


def test_sharding_rules_and_fsdp_default():
    sizes = {"data": 2, "fsdp": 4, "tensor": 2}
    rules = ((r"params/out/kernel", (None, "tensor")),)
    assert leaf_partition_spec("params/out/kernel", (512, 2), sizes, rules, 0) == P(None, "tensor")
    # No rule: the largest dimension divisible by fsdp=4, if the leaf is large enough.
    assert leaf_partition_spec("opt_state/0/mu/hidden/0/kernel", (3, 512), sizes, rules, 0) == P(
        None, "fsdp"
    )
    assert leaf_partition_spec("params/hidden/0/kernel", (3, 512), sizes, rules, 10**6) == P()
    assert leaf_partition_spec("params/hidden/0/bias", (3,), sizes, rules, 0) == P()
    with pytest.raises(ValueError, match="does not divide 3"):
        leaf_partition_spec("params/x", (3, 4), sizes, ((r"x", ("tensor",)),), 0)


# Optimiser pieces ----------------------------------------------------------------------------


def test_ema_decay_warms_up():
    assert float(optim.ema_decay(0, 0.999)) == pytest.approx(0.1)
    assert float(optim.ema_decay(90, 0.999)) == pytest.approx(91 / 100)
    assert float(optim.ema_decay(10**6, 0.999)) == pytest.approx(0.999)


def test_warmup_cosine_schedule():
    c = tiny_config(
        **{"optim.schedule": "cosine", "optim.warmup_steps": 10, "optim.final_lr_fraction": 0.1}
    )
    schedule = optim.learning_rate_schedule(c.optim, 110)
    assert float(schedule(0)) == 0.0
    assert float(schedule(10)) == pytest.approx(1e-3)
    assert float(schedule(110)) == pytest.approx(1e-4)


def test_step_schedule_and_nesterov_sgd_with_weight_decay():
    """The step schedule divides the rate by 5 at 30 / 60 / 80% of the run (after a warm-up);
    SGD's update with Nesterov momentum and coupled weight decay, against the recursion by hand:
    g_t = grad + wd theta, m_t = mu m_{t-1} + g_t, update = -lr (g_t + mu m_t)."""
    c = tiny_config(**{"optim.name": "sgd", "optim.schedule": "step", "optim.warmup_steps": 10,
                       "optim.learning_rate": 0.1, "optim.nesterov": True,
                       "optim.weight_decay": 0.01})
    schedule = optim.learning_rate_schedule(c.optim, 200)
    rates = [float(schedule(s)) for s in (5, 10, 59, 60, 119, 120, 159, 160, 199)]
    np.testing.assert_allclose(rates, [0.05, 0.1, 0.1, 0.02, 0.02, 0.004, 0.004, 8e-4, 8e-4],
                               rtol=1e-6)
    optimizer = optim.make_optimizer(c.optim, lambda step: 0.1)
    theta, m = np.array([1.0, -2.0]), np.zeros(2)
    state = optimizer.init(theta)
    for grad in (np.array([0.5, 0.25]), np.array([-1.0, 2.0])):
        update, state = optimizer.update(grad, state, theta)
        g = grad + 0.01 * theta
        m = 0.9 * m + g
        np.testing.assert_allclose(np.asarray(update), -0.1 * (g + 0.9 * m), rtol=1e-6)
        theta = theta + np.asarray(update)


def test_gradient_accumulation_equals_one_large_batch(tmp_path):
    """4 micro-batches of 16 take the same steps as one batch of 64 (float summation aside)."""
    settings = {"train.num_steps": 3, "optim.ema_decay": 0.0}
    one = flat_state(train(tiny_config(**settings), str(tmp_path / "one")))
    four = flat_state(
        train(tiny_config(**settings, **{"train.grad_accum_steps": 4}), str(tmp_path / "four"))
    )
    np.testing.assert_allclose(losses(tmp_path / "one"), losses(tmp_path / "four"), rtol=1e-5)
    for key in one:
        np.testing.assert_allclose(one[key], four[key], rtol=1e-4, atol=1e-6, err_msg=key)
    # With decay 0 the EMA is the parameters themselves.
    for key in one:
        if key.startswith("params/"):
            np.testing.assert_array_equal(one[key], one["ema_" + key])


# Resume, preemption, damage, NaN -------------------------------------------------------------


def test_resume_after_sigkill_is_exact(tmp_path):
    """2n steps straight == n steps, SIGKILL, resume, n more: params, optimiser, data."""
    n = 4
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    config = tiny_config(**{"train.num_steps": 2 * n, "checkpoint.every_steps": n})
    # The worker runs two steps past its checkpoint at n (logged, not saved), then hangs.
    worker = start_worker(
        f"--workdir={resumed}", f"--steps={2 * n}", f"--every={n}", f"--hang-at={n + 2}"
    )
    try:
        expected = flat_state(train(config, str(straight)))  # while the worker starts
        wait_for(
            lambda: os.path.isdir(resumed / "checkpoints" / str(n))
            and os.path.exists(resumed / "metrics.jsonl")
            and len(logged_steps(resumed)) == n + 2,
            what="checkpoint n and the lines of steps n+1, n+2",
        )
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.communicate()
    assert worker.returncode == -signal.SIGKILL
    assert checkpoint_steps(resumed) == [n]

    got = flat_state(train(config, str(resumed)))
    assert expected.keys() == got.keys()
    for key in expected:
        np.testing.assert_array_equal(expected[key], got[key], err_msg=key)
    assert data_position(straight, 2 * n) == data_position(resumed, 2 * n) == {"next_index": 2 * n}
    # The resumed run logged the same losses for steps n+1..2n, and the lines the killed run
    # wrote after its checkpoint were dropped: every step once.
    np.testing.assert_array_equal(losses(straight), losses(resumed))
    assert logged_steps(resumed) == list(range(1, 2 * n + 1))


def test_sigterm_saves_the_current_step_and_stops(tmp_path, monkeypatch):
    def terminate_at_step_7(index, batch):
        if index == 6:  # the batch of step 7
            os.kill(os.getpid(), signal.SIGTERM)
        return batch

    monkeypatch.setattr(data, "build_dataset", hook_data(terminate_at_step_7))
    previous = signal.getsignal(signal.SIGTERM)
    state = train(
        tiny_config(**{"train.num_steps": 50, "checkpoint.every_steps": 5}), str(tmp_path)
    )
    assert int(state.step) == 7
    assert checkpoint_steps(tmp_path) == [5, 7]
    assert data_position(tmp_path, 7) == {"next_index": 7}
    assert signal.getsignal(signal.SIGTERM) is previous  # handlers restored


def test_damaged_latest_checkpoint_falls_back_to_the_previous(tmp_path, caplog):
    config = tiny_config(**{"train.num_steps": 10, "checkpoint.every_steps": 5})
    train(config, str(tmp_path))
    assert checkpoint_steps(tmp_path) == [5, 10]
    first_run_losses = losses(tmp_path)
    state_dir = tmp_path / "checkpoints" / "10" / "state"
    for root, _, files in os.walk(state_dir):
        for name in files:
            with open(os.path.join(root, name), "wb") as f:
                f.write(b"garbage")

    with caplog.at_level(logging.WARNING, logger="flowjax"):
        state = train(config, str(tmp_path))
    assert "The checkpoint at step 10" in caplog.text and "cannot be read" in caplog.text
    assert "Falling back" in caplog.text
    assert int(state.step) == 10  # resumed at 5, trained 5 more, saved 10 again
    assert checkpoint_steps(tmp_path) == [5, 10]
    assert [d.split("-")[0] for d in os.listdir(tmp_path / "unreadable_checkpoints")] == ["10"]
    # Retrained from step 5 exactly as the first time; metrics.jsonl dropped the first run's
    # lines after step 5 on resume, so it holds steps 1..10 once each.
    np.testing.assert_array_equal(first_run_losses, losses(tmp_path))
    assert logged_steps(tmp_path) == list(range(1, 11))


def test_non_finite_loss_stops_without_saving_it(tmp_path, monkeypatch):
    def nan_at_step_7(index, batch):
        if index == 6:
            batch = {**batch, "x": np.full_like(batch["x"], np.nan)}
        return batch

    monkeypatch.setattr(data, "build_dataset", hook_data(nan_at_step_7))
    config = tiny_config(
        **{"train.num_steps": 10, "checkpoint.every_steps": 5, "train.log_every": 100}
    )
    with pytest.raises(NonFiniteLossError, match=r"at step 7 .*the last checkpoint is of step 5"):
        train(config, str(tmp_path))
    assert checkpoint_steps(tmp_path) == [5]
    state = flat_state(restore_state(config, tmp_path, step=5))
    assert all(np.all(np.isfinite(v)) for v in state.values())
