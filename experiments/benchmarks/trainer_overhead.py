"""Speed of flowjax's trainer: its steps/s, its overhead over a bare compiled step, and the
PyTorch reference's training loop (flow_matching 1.0.10) on the same model, on one CPU machine.

For each variant of `configs/fm_guide/checkerboard.py` (the paper setting: a 4 x 512 Swish MLP,
batch 4096, Adam at 1e-3; and `demo`: 4 x 256, batch 1024, Adam with warm-up, cosine decay and
clipping), in float32:

  trainer       `flowjax.train.train(config, workdir)` in a fresh temporary workdir: the grain
                data pipeline, the compiled step (loss, gradient, Adam, EMA), the host check of
                the metrics at every logging step, metrics.jsonl, and Orbax checkpoints (async,
                as configured). The run is `log_every + timed_steps` steps long. The first
                logging interval (steps 1 .. log_every) holds the compilation and is not timed;
                the time per step is the trainer's own clock over the rest: the sum of
                (steps / steps_per_second) of the metrics.jsonl lines after the first, i.e. the
                perf_counter time from the logging step `log_every` to the last one. Both ends
                of that window follow a host read of the step's metrics, so all work of the
                window's steps is finished inside it. Logging is as configured; checkpoints are
                saved every min(configured every_steps, timed_steps) steps, so that the window
                holds one save (its start or its middle; the save at the last step comes after
                the last line and is outside). For the paper setting this is one save per 200
                steps instead of per 2000: the trainer's figure is, if anything, pessimistic.
  bare step     the trainer's own compiled step (`flowjax.train.step.compile_train_step` with the
                run's `setup_run` objects and `init_train_state`), called `timed_steps` times in
                a Python loop on batches drawn from the same pipeline and placed on the device
                beforehand; a few untimed steps first (compilation), then the block is timed up
                to `jax.block_until_ready` of the last state and metrics.
                overhead = trainer time per step / bare time per step - 1.
  minimal step  for reference, the flowjax step of `vs_flow_matching.py` (same model and batch,
                data drawn inside the jitted step, plain `optax.adam`, no EMA, no sharding
                annotations), timed as there in blocks of `--minimal-steps` steps.
  peer loop     a plain PyTorch loop on the same MLP (`nn.Linear` + `nn.SiLU`, the 2D example
                network of `vs_flow_matching.py`): checkerboard batch, x_0 and t drawn in the
                loop, flow_matching's `AffineProbPath(CondOTScheduler())`, mean squared error to
                dx_t, `torch.optim.Adam` (for `demo` also `clip_grad_norm_` and the same warm-up
                + cosine learning rate through `LambdaLR`), `loss.item()` at every logging step.
                A few untimed steps, then blocks of `timed_steps` steps. It keeps no EMA and
                writes no checkpoints; the flowjax trainer does both.

The trainer and bare-step repetitions alternate (trainer, bare, trainer, bare, ...) so that a
change of machine load hits both alike; the median over `--reps` is reported, with the load
average before every measurement. The overhead is also given in process CPU time (all threads:
XLA's, grain's prefetch thread, Orbax's writers), read at the same points (for the trainer by a
subclass of its `MetricsLog` that reads the clock when a line is written): on a machine shared
with other work the wall times of single repetitions scatter by tens of percent, the CPU time
per step much less, and on a CPU every extra host cycle of the trainer is taken from XLA's
threads, so the CPU overhead is the steadier estimate of what the trainer adds.

The peer runs first, in its own virtual environment and process (machine description and peer
set-up are those of `harness.py`; the network and the minimal step those of
`vs_flow_matching.py`), so that no idle JAX thread pool competes with it. JAX is pinned to the
CPU. torch's OpenMP threads suffer far more than XLA's from other processes on the same cores
(on this project's shared 2-core VM the peer's demo step took 15x its quiet time at a load of
5, flowjax's 2x), so the flowjax / peer ratio is only meaningful from a quiet machine: check the
load averages in the results.

Run, from the repository root:

    .venv/bin/python experiments/benchmarks/trainer_overhead.py
    .venv/bin/python experiments/benchmarks/trainer_overhead.py --variants demo --reps 5
    .venv/bin/python experiments/benchmarks/trainer_overhead.py --quick      # smoke check

The table is printed and written as JSON to
`experiments/benchmarks/results/trainer_overhead_<tag>.json` (tag as in `harness.py`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # also when loaded by path (tests)
    sys.path.insert(0, str(HERE))
import harness  # noqa: E402  (timing, machine, peer environment, results)
import vs_flow_matching as vs  # noqa: E402  (the 2D example: MLP, FLOP count, minimal step)

CONFIG_FILE = harness.REPO_ROOT / "configs" / "fm_guide" / "checkerboard.py"
VARIANTS = {"paper": None, "demo": "demo"}  # name -> the config file's variant argument
TIMED_STEPS = {"paper": 200, "demo": 500}  # default timed window per variant
UNTIMED_STEPS = 3  # bare step and peer: untimed steps before timing (compilation, allocator)
SHARED_LOAD = 1.0  # a load average above this is reported as a shared machine


# ----------------------------------------------------------------------------------------------
# Cases: the checkerboard config of a variant, as run here
# ----------------------------------------------------------------------------------------------


def load_config(variant: str, timed_steps: int):
    """The variant's config, `log_every + timed_steps` steps long, one save per window."""
    from flowjax.train import load_config_file

    config = load_config_file(CONFIG_FILE, VARIANTS.get(variant, variant))
    config.train.num_steps = config.train.log_every + timed_steps
    config.checkpoint.every_steps = min(config.checkpoint.every_steps, timed_steps)
    config.evaluate.after_training = False  # train() does not evaluate; kept off for clarity
    return config


def describe_case(variant: str, config, timed_steps: int) -> dict[str, Any]:
    """What both sides need to know about a case (plain JSON: the peer has no ml_collections)."""
    if config.model.num_layers != vs.NUM_LAYERS:
        raise ValueError(
            f"The peer's MLP has {vs.NUM_LAYERS} hidden layers; variant {variant!r} has "
            f"{config.model.num_layers}."
        )
    o = config.optim
    return {
        "variant": variant,
        "hidden": config.model.hidden_dim,
        "num_layers": config.model.num_layers,
        "activation": config.model.activation,
        "batch": config.train.global_batch_size,
        "learning_rate": o.learning_rate,
        "schedule": o.schedule,
        "warmup_steps": o.warmup_steps,
        "final_lr_fraction": o.final_lr_fraction,
        "grad_clip_norm": o.grad_clip_norm,
        "ema_decay": o.ema_decay,
        "num_steps": config.train.num_steps,
        "log_every": config.train.log_every,
        "checkpoint_every": config.checkpoint.every_steps,
        "async_save": config.checkpoint.async_save,
        "timed_steps": timed_steps,
    }


def step_flops(case: dict[str, Any]) -> int:
    """Matmul FLOPs of one training step (the count of vs_flow_matching.py)."""
    return vs.workload_flops(vs.Workload("train", case["batch"], case["hidden"]), None, "flowjax")


# ----------------------------------------------------------------------------------------------
# flowjax side
# ----------------------------------------------------------------------------------------------


def window_seconds(metrics_file: Path, first_step: int) -> tuple[float, int]:
    """(seconds, steps) from the metrics line at `first_step` to the last line, by the trainer's
    own steps_per_second of every line after it."""
    records = [json.loads(line) for line in metrics_file.read_text().splitlines() if line]
    steps = [r["step"] for r in records]
    if first_step not in steps or steps[-1] <= first_step:
        raise RuntimeError(f"{metrics_file} has no lines after step {first_step}: {steps}")
    seconds, previous = 0.0, first_step
    for r in records:
        if r["step"] > first_step:
            seconds += (r["step"] - previous) / r["steps_per_second"]
            previous = r["step"]
    return seconds, previous - first_step


def run_trainer(config) -> dict[str, Any]:
    """One `flowjax.train.train` run in a fresh workdir; its timed window per step.

    Besides the trainer's own wall clock (metrics.jsonl), the process CPU time of the window is
    read at the same two logging steps, by a subclass of the trainer's `MetricsLog` put in its
    place for the run.
    """
    from unittest import mock

    import jax

    from flowjax.train import loop
    from flowjax.train.logs import METRICS_FILE

    cpu_marks: dict[int, float] = {}

    class ClockedMetricsLog(loop.MetricsLog):
        def write(self, step, metrics):
            cpu_marks[step] = time.process_time()
            super().write(step, metrics)

    with (
        tempfile.TemporaryDirectory(prefix="trainer_overhead_") as workdir,
        mock.patch.object(loop, "MetricsLog", ClockedMetricsLog),
    ):
        start = time.perf_counter()
        state = loop.train(config, workdir)
        jax.block_until_ready(state)
        total = time.perf_counter() - start
        seconds, steps = window_seconds(Path(workdir) / METRICS_FILE, config.train.log_every)
        first = config.train.log_every
        cpu_seconds = cpu_marks[first + steps] - cpu_marks[first]
        saved = sorted(int(p.name) for p in (Path(workdir) / "checkpoints").iterdir()
                       if p.name.isdigit())
    return {
        "s_per_step": seconds / steps,
        "cpu_s_per_step": cpu_seconds / steps,
        "window_s": seconds,
        "window_steps": steps,
        "total_s": total,
        "final_step": int(jax.device_get(state.step)),
        "checkpoints_kept": saved,
    }


class BareStep:
    """The trainer's compiled step of `config`, on batches from its pipeline placed beforehand."""

    def __init__(self, config, num_batches: int):
        import jax

        from flowjax import data
        from flowjax.train.setup import setup_run
        from flowjax.parallel import batch_sharding, global_batch
        from flowjax.train.state import init_train_state
        from flowjax.train.step import compile_train_step

        run = setup_run(config)
        self.state = init_train_state(run.model_fn, run.optimizer, config.seed, run.shardings)
        self.step = compile_train_step(
            run.shardings,
            graphdef=run.graphdef,
            objective=run.objective,
            optimizer=run.optimizer,
            schedule=run.schedule,
            config=config,
            mesh=run.mesh,
        )
        iterator = data.build_dataset(
            config.data, global_batch_size=config.train.global_batch_size, seed=config.seed
        )
        sharding = batch_sharding(run.mesh)
        self.batches = [global_batch(next(iterator), sharding) for _ in range(num_batches)]
        jax.block_until_ready(self.batches)
        self.metrics = None
        self.run(UNTIMED_STEPS)  # compiles

    def run(self, num_steps: int | None = None):
        """`num_steps` (default: all batches) steps; returns once they are computed."""
        import jax

        state, metrics = self.state, self.metrics
        for batch in self.batches[:num_steps]:
            state, metrics = self.step(state, batch)
        self.state, self.metrics = jax.block_until_ready((state, metrics))
        return self.metrics

    def time(self) -> dict[str, float]:
        """Wall and process CPU seconds per step of one pass over the batches."""
        start, cpu_start = time.perf_counter(), time.process_time()
        self.run()
        n = len(self.batches)
        return {
            "s_per_step": (time.perf_counter() - start) / n,
            "cpu_s_per_step": (time.process_time() - cpu_start) / n,
        }

    def compilations(self) -> int:
        return self.step._cache_size()


def run_flowjax_case(variant: str, config, case, reps: int, minimal_steps: int) -> dict[str, Any]:
    """The trainer and its bare step (alternating, `reps` each), then the minimal step."""
    import jax

    harness.log(f"flowjax {variant}: compiling the bare step ...")
    bare = BareStep(config, case["timed_steps"])
    trainer_runs, bare_times = [], []
    for rep in range(reps):
        load = harness.load_average()
        harness.log(f"flowjax {variant}: trainer run {rep + 1}/{reps} (load {load:.2f}) ...")
        trainer_runs.append({**run_trainer(config), "load_before": load})
        load = harness.load_average()
        harness.log(f"flowjax {variant}: bare step {rep + 1}/{reps} (load {load:.2f}) ...")
        bare_times.append({**bare.time(), "load_before": load})
    final_loss = float(jax.device_get(bare.metrics["loss"]))

    load = harness.load_average()
    harness.log(f"flowjax {variant}: minimal step of vs_flow_matching.py (load {load:.2f}) ...")
    workload = vs.Workload("train", case["batch"], case["hidden"])
    minimal, _ = vs.flowjax_run_workload(
        workload, vs.make_inputs([workload]), reps, minimal_steps
    )
    minimal["load_before"] = load

    def median(runs, key="s_per_step"):
        return statistics.median(r[key] for r in runs)

    return {
        "trainer": {
            "s_per_step": median(trainer_runs),
            "cpu_s_per_step": median(trainer_runs, "cpu_s_per_step"),
            "runs": trainer_runs,
        },
        "bare_step": {
            "s_per_step": median(bare_times),
            "cpu_s_per_step": median(bare_times, "cpu_s_per_step"),
            "runs": bare_times,
            "compilations": bare.compilations(),
            "final_loss": final_loss,
        },
        "minimal_step": minimal,
        "overhead": median(trainer_runs) / median(bare_times) - 1.0,
        "cpu_overhead": (
            median(trainer_runs, "cpu_s_per_step") / median(bare_times, "cpu_s_per_step") - 1.0
        ),
        "overhead_per_rep": [
            t["s_per_step"] / b["s_per_step"] - 1.0 for t, b in zip(trainer_runs, bare_times)
        ],
    }


# ----------------------------------------------------------------------------------------------
# Peer side: a plain PyTorch training loop (runs in the peer environment, with --peer)
# ----------------------------------------------------------------------------------------------


def lr_factor(case: dict[str, Any]):
    """step -> learning-rate factor: the trainer's linear warm-up, then constant or cosine."""
    import math

    warmup, total, final = case["warmup_steps"], case["num_steps"], case["final_lr_fraction"]

    def factor(step: int) -> float:
        if step < warmup:
            return step / warmup
        if case["schedule"] != "cosine":
            return 1.0
        progress = min((step - warmup) / max(total - warmup, 1), 1.0)
        return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def peer_run_case(case: dict[str, Any], reps: int) -> dict[str, Any]:
    """Times `reps` blocks of `timed_steps` steps of the PyTorch loop."""
    import torch
    from flow_matching.path import AffineProbPath
    from flow_matching.path.scheduler import CondOTScheduler

    torch.manual_seed(vs.SEED)
    weights = harness.torch_default_init(
        np.random.default_rng(vs.SEED), vs.layer_shapes(case["hidden"])
    )
    model = vs.torch_mlp(weights)
    path = AffineProbPath(scheduler=CondOTScheduler())
    optimizer = torch.optim.Adam(model.parameters(), lr=case["learning_rate"])
    scheduled = case["schedule"] != "constant" or case["warmup_steps"] > 0
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(case)) if scheduled else None
    batch, clip, log_every = case["batch"], case["grad_clip_norm"], case["log_every"]
    losses: list[float] = []

    def step():
        x_1 = vs.torch_checkerboard(batch)
        x_0 = torch.randn_like(x_1)
        t = torch.rand(batch)
        sample = path.sample(t=t, x_0=x_0, x_1=x_1)
        loss = torch.pow(model(sample.x_t, sample.t) - sample.dx_t, 2).mean()
        optimizer.zero_grad()
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        return loss

    def block():
        for i in range(1, case["timed_steps"] + 1):
            loss = step()
            if i % log_every == 0:
                losses.append(loss.item())  # the host read of a logging step
        return loss.item()

    for _ in range(UNTIMED_STEPS):
        step()
    runs = []
    for _ in range(reps):
        load = harness.load_average()
        times, final_loss = harness.time_calls(block, lambda out: out, 1, 0)
        runs.append({"s_per_step": times[0] / case["timed_steps"], "load_before": load})
    return {
        "s_per_step": statistics.median(r["s_per_step"] for r in runs),
        "runs": runs,
        "final_loss": final_loss,
    }


def peer_main(exchange: Path) -> None:
    spec, _ = harness.read_exchange(exchange)
    env = harness.peer_environment()
    env["cases"] = {}
    for case in spec["cases"]:
        harness.log(f"peer {case['variant']}: {spec['reps']} x {case['timed_steps']} steps ...")
        env["cases"][case["variant"]] = peer_run_case(case, spec["reps"])
    harness.write_exchange(exchange, env)


# ----------------------------------------------------------------------------------------------
# Table and main
# ----------------------------------------------------------------------------------------------


def summarise(cases: list[dict], flowjax_results: dict, peer_env: dict | None) -> list[dict]:
    rows = []
    for case in cases:
        name, r = case["variant"], flowjax_results[case["variant"]]
        row = {
            "variant": name,
            "model": f"{case['num_layers']}x{case['hidden']} {case['activation']}",
            "batch": case["batch"],
            "log_every": case["log_every"],
            "checkpoint_every": case["checkpoint_every"],
            "timed_steps": case["timed_steps"],
            "trainer_steps_per_s": 1.0 / r["trainer"]["s_per_step"],
            "bare_steps_per_s": 1.0 / r["bare_step"]["s_per_step"],
            "minimal_steps_per_s": 1.0 / r["minimal_step"]["median_s"],
            "overhead": r["overhead"],
            "cpu_overhead": r["cpu_overhead"],
            "trainer_gflops": harness.gflops(step_flops(case), r["trainer"]["s_per_step"]),
        }
        if peer_env:
            peer_s = peer_env["cases"][name]["s_per_step"]
            row["peer_steps_per_s"] = 1.0 / peer_s
            row["trainer_vs_peer"] = peer_s / r["trainer"]["s_per_step"]
        rows.append(row)
    return rows


def measurement_loads(flowjax_results: dict, peer_env: dict | None) -> list[float]:
    """The 1-minute load averages taken before every timed measurement."""
    measurements = []
    for r in flowjax_results.values():
        measurements += [*r["trainer"]["runs"], *r["bare_step"]["runs"], r["minimal_step"]]
    for r in (peer_env or {}).get("cases", {}).values():
        measurements += r["runs"]
    return [m["load_before"] for m in measurements if m.get("load_before") is not None]


def format_table(rows: list[dict]) -> str:
    header = (
        f"{'variant':<8} {'model':<14} {'batch':>5} {'log/ckpt':>9} | {'trainer':>8} "
        f"{'bare step':>9} {'overhead':>8} {'cpu ovh':>8} | {'minimal':>8} | {'peer loop':>9} "
        f"{'trainer/peer':>12}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        peer = r.get("peer_steps_per_s")
        lines.append(
            f"{r['variant']:<8} {r['model']:<14} {r['batch']:>5} "
            f"{str(r['log_every']) + '/' + str(r['checkpoint_every']):>9} | "
            f"{r['trainer_steps_per_s']:8.2f} {r['bare_steps_per_s']:9.2f} "
            f"{100 * r['overhead']:+7.1f}% {100 * r['cpu_overhead']:+7.1f}% | "
            f"{r['minimal_steps_per_s']:8.2f} | "
            f"{format(peer, '9.2f') if peer else '-':>9} "
            f"{(format(r['trainer_vs_peer'], '.2f') + 'x') if peer else '-':>12}"
        )
    lines += [
        "",
        "steps/s, medians; trainer: flowjax.train.train without its compilation interval; bare "
        "step: the trainer's compiled step in a Python loop; overhead: trainer / bare - 1 in "
        "wall time, cpu ovh: the same in process CPU time; minimal: vs_flow_matching.py's step; "
        "peer loop: PyTorch + flow_matching",
    ]
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--variants", default="paper,demo", help=f"comma-separated, among {list(VARIANTS)}")
    add("--quick", action="store_true", help="the smoke config, tiny windows: a smoke check")
    add("--reps", type=int, default=None, help="repetitions of every measurement (3; quick 1)")
    add("--timed-steps", type=int, default=None, help=f"timed steps (default {TIMED_STEPS})")
    add("--minimal-steps", type=int, default=20, help="steps per block of the minimal step")
    harness.add_peer_arguments(parser)
    harness.add_results_arguments(parser)
    args = parser.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if args.quick:
        args.variants = ["smoke"]
        args.minimal_steps = 2
    unknown = sorted(set(args.variants) - set(VARIANTS) - {"smoke"})
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose among {list(VARIANTS)}")
    harness.fill_defaults(args, {"reps": (3, 1)})
    return args


def build_cases(args) -> list[tuple[str, Any, dict]]:
    """(variant, config, case description) per variant."""
    out = []
    for variant in args.variants:
        timed = args.timed_steps or TIMED_STEPS.get(variant, 10)
        config = load_config(variant, timed)
        if variant == "smoke":  # the peer's MLP has vs.NUM_LAYERS hidden layers
            config.model.num_layers = vs.NUM_LAYERS
        out.append((variant, config, describe_case(variant, config, timed)))
    return out


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.peer:
        peer_main(args.exchange)
        return
    machine = harness.start_on_cpu()
    cases = build_cases(args)
    descriptions = [case for _, _, case in cases]

    peer_env, _ = harness.run_peer(args, __file__, {"cases": descriptions, "reps": args.reps})
    results = {
        variant: run_flowjax_case(variant, config, case, args.reps, args.minimal_steps)
        for variant, config, case in cases
    }
    machine["load_average_at_end"] = harness.load_averages()

    rows = summarise(descriptions, results, peer_env)
    loads = measurement_loads(results, peer_env)
    shared = bool(loads) and max(loads) > SHARED_LOAD
    table = format_table(rows)
    cpus = machine["cpus_available_to_process"] or machine["logical_cpus"]
    if loads:
        table += (
            f"\n1-minute load average before the measurements: {min(loads):.2f} .. "
            f"{max(loads):.2f} on {cpus} CPUs"
            + ("; a shared machine: other work ran alongside" if shared else "")
        )
    if args.quick:
        table += "\n--quick: the smoke config, tiny windows: a smoke check, not a measurement"
    report = {
        **harness.report_header(
            "flowjax trainer vs its bare step vs the PyTorch reference loop, CPU, float32"
        ),
        "settings": {
            "reps": args.reps,
            "untimed_steps": UNTIMED_STEPS,
            "minimal_steps_per_block": args.minimal_steps,
            "trainer_timing": (
                "metrics.jsonl steps_per_second of the lines after the first (the first logging "
                "interval holds the compilation)"
            ),
            "overhead": "trainer s/step / bare step s/step - 1 (medians)",
        },
        "shared_machine": shared,
        "load_averages_before_measurements": loads,
        "machine": machine,
        "cases": descriptions,
        "rows": rows,
        "flowjax": {"environment": harness.flowjax_environment(), "cases": results},
        "peer": peer_env,
    }
    harness.write_results(harness.results_path("trainer_overhead", args, machine), report, table)


if __name__ == "__main__":
    main()
