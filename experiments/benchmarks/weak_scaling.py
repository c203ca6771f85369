"""Weak scaling of the trainer: the same examples per device on 1, 2, 4 and 8 devices, and on
2 processes, for a DiT-S and the tiny text model. Indicative on a CPU host: the virtual devices
of `--xla_force_host_platform_device_count` share the host's cores, so on 2 cores the work per
step grows with the device count while the compute does not; the table shows what the sharded
step costs beyond that (its collectives and partitioning), not the speed-up of real chips.

Workloads (float32, the trainer of `python -m flowjax.main --mode=train`, fresh workdir):
  dit_s   `configs/fm_guide/digits.py:dit` with model.size="S" (DiT-S/2: width 384, depth 12,
          6 heads) on 8x8 digits, `--per-device` examples per device (default 8).
  text    `configs/mdlm/lm1b.py:mdlm,smoke` (the tiny MDLM text transformer on a synthetic
          language), `--per-device` sequences per device.
Runs: N = 1, 2, 4, 8 virtual devices in one process (mesh (N, 1, 1): data parallel) and
2 processes x 4 devices (jax.distributed over loopback, mesh (8, 1, 1)). Each run trains
`log_every + timed_steps` steps; the time per step is the trainer's own clock after the first
logging interval (which holds the compilation): the sum of steps / steps_per_second of the
later metrics.jsonl lines. Weak-scaling efficiency = t(1 device) / t(N devices); the ideal on
C real cores shared by N virtual devices is min(1, C / N).

    nice -n 0 .venv/bin/python experiments/benchmarks/weak_scaling.py
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import harness

REPO = Path(__file__).resolve().parents[2]
WORKLOADS = {
    "dit_s": ("configs/fm_guide/digits.py:dit", ["--config.model.size=S", "--config.model.hidden_dim=0",
                                                  "--config.model.depth=0", "--config.model.num_heads=0"]),
    "text": ("configs/mdlm/lm1b.py:mdlm,smoke", []),
}
RUNS = ((1, 1), (1, 2), (1, 4), (1, 8), (2, 4))  # (processes, devices per process)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def step_seconds(workdir: Path) -> float:
    """Seconds per step after the first logging interval (the trainer's clock)."""
    lines = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    steps = [line["step"] for line in lines]
    seconds = sum(
        (b - a) / line["steps_per_second"] for a, b, line in zip(steps, steps[1:], lines[1:])
    )
    return seconds / (steps[-1] - steps[0])


def train(workload: str, processes: int, devices: int, args: argparse.Namespace) -> float:
    config, extra = WORKLOADS[workload]
    total = processes * devices
    workdir = Path(tempfile.mkdtemp(prefix=f"weak_{workload}_{total}_"))
    command = [
        sys.executable, "-m", "flowjax.main", f"--config={config}", f"--workdir={workdir}",
        "--mode=train", *extra,
        f"--config.train.num_steps={args.log_every + args.timed_steps}",
        f"--config.train.log_every={args.log_every}",
        f"--config.train.global_batch_size={args.per_device * total}",
        f"--config.sharding.mesh_shape=({total},1,1)",
        "--config.checkpoint.every_steps=100000",
        "--config.evaluate.after_training=false",
        f"--config.sample.batch_size={args.per_device * total}",
    ]
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    if processes > 1:
        port = free_port()
        command += ["--config.distributed.initialize=true",
                    f"--config.distributed.coordinator_address=127.0.0.1:{port}",
                    f"--config.distributed.num_processes={processes}"]
    workers = [
        subprocess.Popen(command + ([f"--config.distributed.process_id={i}"] if processes > 1
                                    else []),
                         cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
        for i in range(processes)
    ]
    for worker in workers:
        output, _ = worker.communicate()
        if worker.returncode:
            raise RuntimeError(f"{workload} on {processes} x {devices} failed:\n{output[-3000:]}")
    seconds = step_seconds(workdir)
    shutil.rmtree(workdir)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", choices=sorted(WORKLOADS),
                        default=sorted(WORKLOADS))
    parser.add_argument("--per-device", type=int, default=8)
    parser.add_argument("--log-every", type=int, default=5)
    parser.add_argument("--timed-steps", type=int, default=20)
    harness.add_results_arguments(parser)
    args = parser.parse_args()
    machine = harness.describe_machine()
    report = {**harness.report_header("weak_scaling"), "machine": machine,
              "settings": {k: v for k, v in vars(args).items() if k not in ("out",)},
              "runs": {}}
    rows = ["| workload | processes x devices | examples / step | s / step | efficiency |",
            "|---|---|---|---|---|"]
    with harness.benchmark_running_flag():
        for workload in args.workloads:
            base = None
            for processes, devices in RUNS:
                harness.log(f"{workload}: {processes} x {devices}")
                seconds = train(workload, processes, devices, args)
                base = seconds if base is None else base
                total = processes * devices
                report["runs"][f"{workload}/{processes}x{devices}"] = {
                    "seconds_per_step": seconds, "efficiency": base / seconds,
                    "examples_per_step": args.per_device * total,
                }
                rows.append(f"| {workload} | {processes} x {devices} | {args.per_device * total} "
                            f"| {seconds:.4f} | {base / seconds:.2f} |")
    report["load_average_at_end"] = harness.load_averages()
    rows.append(f"\nload average at start {machine.get('load_average_at_start')}, "
                f"at end {report['load_average_at_end']}")
    path = args.out or harness.results_file("weak_scaling", args.tag or harness.machine_tag(machine))
    harness.write_results(path, report, "\n".join(rows))


if __name__ == "__main__":
    main()
