"""The training loop: resume or start, run the compiled step, log, checkpoint, stop cleanly.

`train(config, workdir)` runs updates until `config.train.num_steps`, resuming from the newest
readable checkpoint in `workdir` if there is one. It saves every `checkpoint.every_steps`, at
the end, and at the current step when SIGTERM / SIGINT arrives (then returns early). Losses and
gradient norms stay on the device between logging steps; at every logging step and before every
save they are checked on the host, and a non-finite value stops the run with a
`NonFiniteLossError` naming the first bad step, before that state can be saved.
"""

from __future__ import annotations

import contextlib
import gc
import logging

import jax
import ml_collections
import numpy as np

from flowjax import data
from flowjax.train.checkpoint import Checkpointer, abstract_with_shardings
from flowjax.train.config import validate_config
from flowjax.train.judge import check_judge
from flowjax.train.logs import MetricsLog
from flowjax.train.preemption import StopSignals
from flowjax.train.setup import initialize_distributed, setup_run
from flowjax.parallel import batch_sharding, global_batch
from flowjax.train.init_from import load_init_weights
from flowjax.train.state import TrainState, init_train_state
from flowjax.train.step import Metrics, compile_train_step

log = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """A training step produced a NaN or infinite loss or gradient."""


def train(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
    """Trains the model of `config` in `workdir` up to `config.train.num_steps` updates.

    Returns the final state: after `num_steps` updates, or earlier if stopped by a signal
    (its `step` says which; a checkpoint of it is in `<workdir>/checkpoints`).
    """
    # Setup -----------------------------------------------------------------------------------
    initialize_distributed(config)
    validate_config(config, workdir)
    if config.evaluate.after_training:
        check_judge(config)  # the judge of the evaluation after training, before training
    run = setup_run(config)
    is_main = jax.process_index() == 0
    log.info(
        "Model %s with %d parameters; mesh %s over %d devices in %d processes.",
        config.model.name,
        run.num_params,
        dict(run.mesh.shape),
        jax.device_count(),
        jax.process_count(),
    )
    data_iterator = data.build_dataset(
        config.data,
        global_batch_size=config.train.global_batch_size,
        seed=config.seed,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )
    num_steps, log_every = config.train.num_steps, config.train.log_every

    with Checkpointer(
        workdir,
        max_to_keep=config.checkpoint.max_to_keep,
        async_save=config.checkpoint.async_save,
    ) as checkpointer:
        # Resume or start -----------------------------------------------------------------------
        restored = checkpointer.restore_latest(
            abstract_with_shardings(run.abstract_state, run.shardings), data_iterator
        )
        if restored is None:
            log.info("No checkpoint in %s: starting from scratch.", checkpointer.directory)
            state, step = (
                init_train_state(run.model_fn, run.optimizer, config.seed, run.shardings),
                0,
            )
            if config.train.init_from:
                state = jax.device_put(
                    load_init_weights(config, state, run.mesh), run.shardings
                )
        else:
            state, step = restored.state, restored.step
        train_step = compile_train_step(
            run.shardings,
            graphdef=run.graphdef,
            objective=run.objective,
            optimizer=run.optimizer,
            schedule=run.schedule,
            config=config,
            mesh=run.mesh,
        )
        sharding = batch_sharding(run.mesh)
        last_saved = restored.step if restored else None

        # Loop ----------------------------------------------------------------------------------
        pending: list[Metrics] = []  # device metrics of the steps since the last check
        with (
            StopSignals(sync_every=log_every) as signals,
            MetricsLog(
                workdir, start_step=step, num_steps=num_steps, enabled=is_main
            ) as metrics_log,
            frozen_gc(),
        ):
            while step < num_steps:
                batch = global_batch(next(data_iterator), sharding)
                state, metrics = train_step(state, batch)
                step += 1
                pending.append(metrics)
                metrics_log.advance()
                stop = signals.should_stop(step)
                save = stop or step % config.checkpoint.every_steps == 0 or step == num_steps
                if save or step % log_every == 0:
                    metrics_log.write(step, checked_means(pending, step, last_saved))
                    pending = []
                if save:
                    checkpointer.save(step, state, data_iterator, config)
                    last_saved = step
                if stop:
                    log.warning(
                        "Stopped by %s at step %d; checkpoint saved.", signals.received, step
                    )
                    break
        checkpointer.wait()
    return state


def checked_means(pending: list[Metrics], step: int, last_saved: int | None) -> dict[str, float]:
    """Means of the metrics of steps step - len(pending) + 1 .. step, once all are finite.

    Raises:
      NonFiniteLossError: naming the first step whose loss or gradient norm is NaN / inf.
    """
    history = jax.device_get(pending)
    first = step - len(history) + 1
    saved = (
        "no checkpoint was written"
        if last_saved is None
        else f"the last checkpoint is of step {last_saved}"
    )
    for offset, metrics in enumerate(history):
        if not (np.isfinite(metrics["loss"]) and np.isfinite(metrics["grad_norm"])):
            raise NonFiniteLossError(
                f"Non-finite training loss at step {first + offset} (loss={metrics['loss']}, "
                f"grad_norm={metrics['grad_norm']}). Training stopped without saving this state; "
                f"{saved}. Lower optim.learning_rate, set "
                "optim.grad_clip_norm or check the data for NaN / inf."
            )
    return {name: float(np.mean([m[name] for m in history])) for name in history[0]}


@contextlib.contextmanager
def frozen_gc():
    """Keeps the objects that exist when the loop starts out of Python's cyclic garbage collector.

    With JAX, Flax and Orbax loaded there are a few hundred thousand of them, and the objects
    left by the compilation of the first step soon set off a full collection that walks them
    all: about half a second on a small CPU, in the middle of the run (3 to 5% of a 500-step
    window of the checkerboard demo). Frozen objects are skipped by the collector but still
    freed by reference counting; `gc.unfreeze` hands them back when the loop ends, so cyclic
    garbage among them waits at most until then.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
