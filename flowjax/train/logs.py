"""Training logs on process 0: a progress bar, metrics as JSON lines, optional TensorBoard.

`<workdir>/metrics.jsonl` gets one line per logging step: {"step", "loss", "grad_norm",
"learning_rate", "steps_per_second", "time"} (the metrics averaged over the steps since the last
line). TensorBoard event files go to `<workdir>/tensorboard` when a writer is importable
(tensorboardX, or flax.metrics.tensorboard with TensorFlow); neither is a dependency. The
tqdm bar (step, loss, steps/s, ETA) is drawn when stderr is a terminal; otherwise each logging
step is also written to the `logging` module.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable

import tqdm

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"

ScalarWriter = Callable[[str, float, int], None]


def tensorboard_writer(logdir: str) -> tuple[ScalarWriter, Callable[[], None]] | None:
    """(write_scalar(tag, value, step), close) of an installed TensorBoard writer, or None."""
    try:
        from tensorboardX import SummaryWriter  # optional

        writer = SummaryWriter(logdir)
        return writer.add_scalar, writer.close
    except ImportError:
        pass
    try:
        from flax.metrics import tensorboard  # optional, needs TensorFlow

        writer = tensorboard.SummaryWriter(logdir)
        return writer.scalar, writer.close
    except ImportError:
        return None


class MetricsLog:
    """Writes training metrics; every method is a no-op unless `enabled` (process 0)."""

    def __init__(self, workdir: str, *, start_step: int, num_steps: int, enabled: bool):
        self.enabled = enabled
        self._last = (start_step, time.perf_counter())
        if not enabled:
            return
        self._file = open(os.path.join(workdir, METRICS_FILE), "a")
        self._tensorboard = tensorboard_writer(os.path.join(workdir, "tensorboard"))
        self._bar = tqdm.tqdm(
            total=num_steps,
            initial=start_step,
            desc="train",
            unit="step",
            dynamic_ncols=True,
            disable=not sys.stderr.isatty(),
        )

    def advance(self, steps: int = 1) -> None:
        if self.enabled:
            self._bar.update(steps)

    def write(self, step: int, metrics: dict[str, float]) -> None:
        """Records the metrics of `step` (means since the previous call) with the step rate."""
        last_step, last_time = self._last
        now = time.perf_counter()
        self._last = (step, now)
        if not self.enabled:
            return
        record = {
            "step": step,
            **metrics,
            "steps_per_second": (step - last_step) / (now - last_time),
        }
        self._file.write(json.dumps({**record, "time": time.time()}) + "\n")
        self._file.flush()
        if self._tensorboard is not None:
            write_scalar, _ = self._tensorboard
            for name, value in record.items():
                if name != "step":
                    write_scalar(f"train/{name}", value, step)
        if self._bar.disable:
            log.info(
                "step %d: %s",
                step,
                ", ".join(f"{k}={v:.4g}" for k, v in record.items() if k != "step"),
            )
        else:
            self._bar.set_postfix(loss=f"{metrics['loss']:.4f}", refresh=False)

    def close(self) -> None:
        if self.enabled:
            self._bar.close()
            self._file.close()
            if self._tensorboard is not None:
                self._tensorboard[1]()

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
