"""Progress and training logs on process 0: live progress with an ETA, metrics as JSON lines and
TensorBoard event files.

`Progress` reports a loop of known length (training steps, sampling or evaluation batches): a
tqdm bar when stderr is a terminal, otherwise a `logging` line at most every
`PROGRESS_EVERY_SECONDS` and at the end, each with the rate and the estimated time left, so that a
long run under a batch scheduler shows where it is.

`MetricsLog` writes training metrics: `<workdir>/metrics.jsonl` gets one line per logging step,
{"step", "loss", "grad_norm", "learning_rate", "steps_per_second", "time"} (the metrics averaged
over the steps since the last line); TensorBoard event files (tensorboardX) in
`<workdir>/tensorboard` get the same scalars under "train/", and `write_images` adds the figures
a run draws (sample grids, plots). On resume from step k the lines of steps after k (written
between the checkpoint and a crash) are dropped, so every step appears once.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

import matplotlib.image
import tqdm
from tensorboardX import SummaryWriter

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
PROGRESS_EVERY_SECONDS = 30.0


def format_duration(seconds: float) -> str:
    """"1:02:03", "2:03" or "0:07": hours only when there are any."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Progress of a loop of `total` units (`unit`: "step", "batch", "sample"), from `initial`.

    A tqdm bar on a terminal; otherwise a log line "<desc>: n/total units, r units/s, ETA m:ss"
    at most every `every_seconds` and when the loop ends (never with `every_seconds=None`, for a
    loop that logs lines of its own). A no-op unless `enabled`.
    """

    def __init__(
        self,
        total: int,
        desc: str,
        unit: str,
        *,
        initial: int = 0,
        enabled: bool = True,
        every_seconds: float | None = PROGRESS_EVERY_SECONDS,
    ):
        self.total, self.desc, self.unit, self.enabled = total, desc, unit, enabled
        self.count = self._start = initial
        self._every = every_seconds
        self._start_time = self._last_report = time.perf_counter()
        self._bar = None
        if enabled and sys.stderr.isatty():
            self._bar = tqdm.tqdm(
                total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True
            )

    @property
    def on_terminal(self) -> bool:
        """Whether a live bar is drawn (stderr is a terminal)."""
        return self._bar is not None

    def set_postfix(self, **postfix: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix(postfix, refresh=False)

    @property
    def rate(self) -> float:
        """Units per second since the start."""
        elapsed = time.perf_counter() - self._start_time
        return (self.count - self._start) / elapsed if elapsed > 0 else 0.0

    def eta_seconds(self) -> float | None:
        rate = self.rate
        return (self.total - self.count) / rate if rate > 0 else None

    def status(self) -> str:
        eta = self.eta_seconds()
        left = "?" if eta is None else format_duration(eta)
        units = self.unit + ("es" if self.unit.endswith(("ch", "s")) else "s")
        return (
            f"{self.desc}: {self.count}/{self.total} {units}, {self.rate:.3g} {units}/s, "
            f"ETA {left}"
        )

    def update(self, n: int = 1) -> None:
        if not self.enabled:
            return
        self.count += n
        if self._bar is not None:
            self._bar.update(n)
            return
        if self._every is None:
            return
        now = time.perf_counter()
        if now - self._last_report >= self._every or self.count >= self.total:
            self._last_report = now
            log.info(self.status())

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def drop_steps_after(filename: str, step: int) -> int:
    """Removes the lines of `filename` (JSON lines with a "step") whose step is after `step`;
    returns how many were removed. The file is replaced atomically."""
    if not os.path.exists(filename):
        return 0
    with open(filename) as f:
        lines = [line for line in f if line.strip()]
    kept = [line for line in lines if json.loads(line)["step"] <= step]
    if len(kept) < len(lines):
        partial = filename + ".tmp"
        with open(partial, "w") as f:
            f.writelines(kept)
        os.replace(partial, filename)
    return len(lines) - len(kept)


class MetricsLog:
    """Writes training metrics; every method is a no-op unless `enabled` (process 0)."""

    def __init__(self, workdir: str, *, start_step: int, num_steps: int, enabled: bool):
        self.enabled = enabled
        self._last = (start_step, time.perf_counter())
        self.progress = Progress(
            num_steps, "train", "step", initial=start_step, enabled=enabled, every_seconds=None
        )
        if not enabled:
            return
        filename = os.path.join(workdir, METRICS_FILE)
        dropped = drop_steps_after(filename, start_step)
        if dropped:
            log.info(
                "Dropped %d lines of %s after step %d, the step this run resumes from.",
                dropped,
                filename,
                start_step,
            )
        self._file = open(filename, "a")
        self._writer = SummaryWriter(
            os.path.join(workdir, TENSORBOARD_DIR), purge_step=start_step + 1
        )

    def advance(self, steps: int = 1) -> None:
        self.progress.update(steps)

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
        for name, value in record.items():
            if name != "step":
                self._writer.add_scalar(f"train/{name}", value, step)
        self._writer.flush()
        if not self.progress.on_terminal:
            eta = (self.progress.total - step) / record["steps_per_second"]
            log.info(
                "step %d/%d: %s, ETA %s",
                step,
                self.progress.total,
                ", ".join(f"{k}={v:.4g}" for k, v in record.items() if k != "step"),
                format_duration(eta),
            )
        else:
            self.progress.set_postfix(loss=f"{metrics['loss']:.4f}")

    def close(self) -> None:
        if self.enabled:
            self.progress.close()
            self._file.close()
            self._writer.close()

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def write_images(workdir: str, step: int, images: dict[str, str]) -> None:
    """Adds PNG files (tag -> path) to the run's TensorBoard events at `step` (process 0)."""
    with SummaryWriter(os.path.join(workdir, TENSORBOARD_DIR)) as writer:
        for tag, path in images.items():
            picture = matplotlib.image.imread(path)[..., :3]
            writer.add_image(tag, picture, step, dataformats="HWC")
