"""Checkpoints of a run: the train state, the data iterator's position and the config.

One `orbax.checkpoint.CheckpointManager` in `<workdir>/checkpoints` writes, per saved step, an
`ocp.args.Composite` of three items:

  state   the TrainState pytree (StandardSave; sharded arrays are written by every process),
  data    the grain iterator's state (grain's own checkpoint handler, one file per process),
  config  the run's config as JSON, for the record.

The data position is the index of the next global batch, the same in every process's file
(`flowjax.data.pipeline`), so a run saved by n processes resumes on m != n: Orbax reshards the
state onto the new mesh, and each new process reads the position the old ones agree on
(`saved_data_position`).

Restoring the newest checkpoint gives back the exact state and the exact next batch. If the
newest cannot be read (a damaged or truncated file), the previous one is tried, with a warning
that names the step and the error; once an older step has been restored, the unreadable ones are
moved to `<workdir>/unreadable_checkpoints/` (never deleted) so that the run can save those step
numbers again. If no checkpoint can be read, nothing is moved and the error is raised.

Paths are `etils.epath.Path`s, so the work directory may be local or on a bucket (gs://...);
step directories are found through Orbax's own step naming (`ocp.step.standard_name_format`),
never by formatting the step number by hand.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, NamedTuple

import grain
import jax
import ml_collections
import orbax.checkpoint as ocp
from etils import epath
from jax.experimental import multihost_utils

from flowjax.train.state import TrainState

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
UNREADABLE_DIR = "unreadable_checkpoints"


class Restored(NamedTuple):
    step: int
    state: TrainState


def abstract_with_shardings(abstract_state: Any, shardings: Any) -> Any:
    """ShapeDtypeStructs carrying the target shardings: the layout a restore reads into."""
    return jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract_state, shardings
    )


def saved_data_position(step_path: epath.Path) -> dict[str, Any]:
    """The data iterator state a checkpoint written by any number of processes holds: every
    process's file must give the same global position."""
    files = sorted((step_path / "data").glob("process_*-of-*.json"))
    if not files:
        raise FileNotFoundError(f"No data position (process_*-of-*.json) in {step_path / 'data'}.")
    positions = {f.name: json.loads(f.read_text()) for f in files}
    first = positions[files[0].name]
    if any(p != first for p in positions.values()):
        raise ValueError(
            f"The processes that wrote {step_path} saved different data positions ({positions}), "
            "so it cannot be resumed on another process count; resume with the old count."
        )
    return first


class Checkpointer:
    """Saves and restores (state, data position, config) under `<workdir>/checkpoints`."""

    def __init__(self, workdir: str, *, max_to_keep: int | None = None, async_save: bool = False):
        self.workdir = epath.Path(workdir)
        self.directory = self.workdir / CHECKPOINT_DIR
        self._name_format = ocp.step.standard_name_format()
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep,
                enable_async_checkpointing=async_save,
                create=True,
                step_name_format=self._name_format,
            ),
        )

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def save(
        self,
        step: int,
        state: TrainState,
        data_iterator: grain.DatasetIterator,
        config: ml_collections.ConfigDict,
    ) -> None:
        """Writes checkpoint `step` (in the background when async; see `wait`)."""
        self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                data=grain.checkpoint.CheckpointSave(data_iterator),
                config=ocp.args.JsonSave(config.to_dict()),
            ),
            force=True,
        )

    def restore_latest(
        self, abstract_state: Any, data_iterator: grain.DatasetIterator | None = None
    ) -> Restored | None:
        """The newest readable checkpoint, or None if there is none.

        Args:
          abstract_state: ShapeDtypeStructs (with shardings) of the TrainState to read into.
          data_iterator: if given, set to the saved position (resuming training); if None only
            the state is read (sampling, evaluation).
        """
        steps = self.all_steps()
        unreadable = []
        for step in reversed(steps):
            items = {"state": ocp.args.StandardRestore(abstract_state)}
            # Saved by this many processes: grain reads this process's own file.
            same_count = data_iterator is not None and (
                self._step_path(step) / "data"
                / f"process_{jax.process_index()}-of-{jax.process_count()}.json"
            ).exists()
            if same_count:
                items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
            try:
                restored = self._manager.restore(step, args=ocp.args.Composite(**items))
                if data_iterator is not None and not same_count:
                    data_iterator.set_state(saved_data_position(self._step_path(step)))
            except Exception as error:  # orbax raises many types for damaged files
                log.warning(
                    "The checkpoint at step %d in %s cannot be read (%s: %s). Falling back to "
                    "the checkpoint before it.",
                    step,
                    self.directory,
                    type(error).__name__,
                    error,
                )
                unreadable.append((step, error))
                continue
            if unreadable:
                self._set_aside([s for s, _ in unreadable])
            log.info("Restored the checkpoint at step %d from %s.", step, self.directory)
            return Restored(step, restored.state)
        if unreadable:
            step, error = unreadable[0]
            raise RuntimeError(
                f"None of the checkpoints in {self.directory} (steps {steps}) can be read; the "
                f"newest (step {step}) failed with {type(error).__name__}: {error}. If the model, "
                "optimiser or data config changed since they were written, restore the old "
                "config or start in a new --workdir; nothing was deleted."
            ) from error
        return None

    def _step_path(self, step: int) -> epath.Path:
        return ocp.step.find_step_path(self.directory, self._name_format, step=step)

    def restore_config(self) -> ml_collections.ConfigDict | None:
        """The config saved with the newest checkpoint, or None if there is no checkpoint."""
        steps = self.all_steps()
        if not steps:
            return None
        args = ocp.args.Composite(config=ocp.args.JsonRestore())
        return ml_collections.ConfigDict(self._manager.restore(steps[-1], args=args).config)

    def _set_aside(self, steps: list[int]) -> None:
        """Moves unreadable step directories to <workdir>/unreadable_checkpoints/."""
        if jax.process_index() == 0:
            target_root = self.workdir / UNREADABLE_DIR
            target_root.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%Y%m%d-%H%M%S")
            for step in steps:
                source = ocp.step.find_step_path(self.directory, self._name_format, step=step)
                target = target_root / f"{source.name}-{stamp}"
                source.rename(target)
                log.warning("Moved the unreadable checkpoint of step %d to %s.", step, target)
        multihost_utils.sync_global_devices("flowjax_set_aside_unreadable_checkpoints")
        self._manager.reload()

    def wait(self) -> None:
        """Blocks until background writes are finished (and raises their errors)."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
